"""The `tressel` command line: one subcommand per module in `tressel.commands`.

Each command module defines `register(subparsers)`, which adds its parser and sets
`func=run`. Command modules import heavy libraries (torch, pxr) inside `run`, so that
`tressel --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tressel import __version__
from tressel.errors import TresselError

# Order here is the order in `tressel --help`.
COMMAND_MODULES = [
    "generate",
    "batch",
    "farm",
    "models",
    "conformance",
    "daemon",
    "submit",
    "hosts",
    "review",
    "synth",
    "train",
    "eval",
    "usd_info",
    "fit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tressel",
        description="Turn a photo of a person into a USD hair groom (DiffLocks model).",
        epilog="Run `tressel COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"tressel {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tressel.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(args, verbose=args.verbose)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


def run_command(args: argparse.Namespace, verbose: bool = False) -> int:
    """Run a parsed command: its exit code, 1 after a TresselError (printed), 130 on Ctrl-C.

    Shared by `tressel` and `python -m tressel.daemon`, which parses only the daemon command.
    """
    configure_logging(verbose)
    try:
        return int(args.func(args) or 0)
    except TresselError as exc:
        print(f"tressel {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tressel {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

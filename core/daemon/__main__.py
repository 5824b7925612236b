"""`python -m tressel.daemon start|stop|status|logs`: the `tressel daemon` command on its own.

The client starts daemons this way when no `tressel` script is at hand, and it loads nothing
but this one command (so it starts however the rest of the CLI is configured).
"""

from __future__ import annotations

import argparse
import sys

from tressel.cli import run_command
from tressel.commands import daemon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tressel.daemon")
    holder = parser.add_subparsers(dest="command", required=True)
    daemon.register(holder)
    args = parser.parse_args(["daemon", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())

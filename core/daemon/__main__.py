"""`python -m tressel.daemon start|stop|status|logs`: the `tressel daemon` command on its own.

The client starts daemons this way when no `tressel` script is at hand, and it loads nothing
but this one command (so it starts however the rest of the CLI is configured).
"""

from __future__ import annotations

import argparse
import logging
import sys

from tressel.commands import daemon
from tressel.errors import TresselError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tressel.daemon")
    holder = parser.add_subparsers(dest="command", required=True)
    daemon.register(holder)
    args = parser.parse_args(["daemon", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except TresselError as exc:
        print(f"tressel daemon: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

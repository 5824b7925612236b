"""`tressel review`: open the standalone review tool (the PySide6 app in hosts/standalone)."""

from __future__ import annotations

import argparse
import sys


def _review_app():
    """`tressel_review.app`, importable once the review tool's folder is on `sys.path`.

    The tool ships as host data (hosts/standalone, `tressel/data/hosts/standalone` in a
    wheel), like the DCC hosts; it runs in this environment, so PySide6, numpy and pxr are
    there. Importing `app` itself imports only the standard library.
    """
    from tressel.hosting.install import host_source

    folder = str(host_source("standalone"))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from tressel_review import app

    return app


def register(subparsers: argparse._SubParsersAction) -> None:
    from tressel.errors import TresselError

    try:
        app = _review_app()
    except (ImportError, OSError, TresselError) as exc:  # a broken install: --help still works
        p = subparsers.add_parser("review", help="open the review tool (unavailable: "
                                                 f"{exc})")
        p.set_defaults(func=run)
        return
    p = subparsers.add_parser(
        "review", help="open the review tool: queue photos, watch jobs, compare grooms in 3D",
        description=app.DESCRIPTION, epilog=app.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    app.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.errors import TresselError

    try:
        import PySide6  # noqa: F401
    except ImportError as exc:
        raise TresselError(f"the review tool needs PySide6 ({exc}): install Tressel with its "
                           "gui extra, `pip install 'tressel[gui]'`") from exc
    return _review_app().run(args)


def main(argv: list[str] | None = None) -> int:
    """The `tressel-review` console script: `tressel review` without the `tressel`."""
    from tressel.cli import main as cli_main

    return cli_main(["review", *(sys.argv[1:] if argv is None else argv)])

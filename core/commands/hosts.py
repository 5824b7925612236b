"""`tressel hosts install|status`: make Maya, Houdini and Blender load Tressel's hosts."""

from __future__ import annotations

import argparse
from pathlib import Path

HOSTS = ("maya", "houdini", "blender")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "hosts",
        help="install the Maya, Houdini and Blender hosts; show what is installed",
        description=(
            "Write the file each DCC reads at start-up (a Maya module, a Houdini package, a "
            "Blender extension) where that DCC looks for the current user, pointing at this "
            "Tressel's host code and telling it how to start this environment's daemon. "
            "Re-running install replaces the earlier install; nothing else of the user's is "
            "touched."
        ),
        epilog=(
            "examples:\n  tressel hosts install maya\n"
            "  tressel hosts install houdini --dir ~/houdini20.5/packages\n"
            "  tressel hosts install blender --uninstall\n"
            "  tressel hosts install blender --zip tressel_blender.zip\n  tressel hosts status"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="hosts_action", metavar="ACTION", required=True)
    inst = actions.add_parser(
        "install", help="install (or with --uninstall remove) one DCC host",
        description="Install one DCC host for the current user (see `tressel hosts --help`).",
    )
    inst.add_argument("host", choices=HOSTS, help="the DCC")
    inst.add_argument(
        "--dir", "--modules-dir", "--packages-dir", "--extensions-dir", dest="target_dir",
        type=Path, default=None, metavar="DIR",
        help="install into DIR instead of the DCC's per-user folder (Maya modules folder, "
             "Houdini packages folder, Blender extensions repository)",
    )
    inst.add_argument("--uninstall", action="store_true", help="remove what install wrote")
    inst.add_argument("--zip", type=Path, default=None, metavar="OUT.zip",
                      help="blender only: write the extension as a zip for Blender's Install "
                           "from Disk instead of installing it")
    inst.set_defaults(func=run)
    status = actions.add_parser("status", help="list the installed hosts and where they point")
    status.add_argument("--dir", dest="target_dir", type=Path, default=None, metavar="DIR",
                        help="also look in DIR (as given to install --dir)")
    status.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.hosting.install import installer, prepare_hosts_python

    if args.hosts_action == "status":
        return _status(args.target_dir)
    host = installer(args.host)
    if args.uninstall:
        removed = host.uninstall(args.target_dir)
        if not removed:
            print(f"no Tressel {args.host} host installed in "
                  f"{args.target_dir or host.default_dir()}")
        for path in removed:
            print(f"removed {path}")
        return 0
    if getattr(args, "zip", None) is not None:
        if not hasattr(host, "build_zip"):
            from tressel.errors import ConfigError

            raise ConfigError(f"--zip is for blender only: install {args.host} without it")
        python_dir = prepare_hosts_python()
        out = host.build_zip(args.zip)
        print(f"wrote the Tressel {args.host} extension: {out}")
        print("  install it in Blender: Edit > Preferences > Get Extensions > Install from Disk")
        print(f"  tressel.client for the DCC's Python: {python_dir}")
        return 0
    python_dir = prepare_hosts_python()
    done = host.install(args.target_dir)
    print(f"installed the Tressel {args.host} host: {done.path}")
    print(f"  host code: {done.source}")
    print(f"  tressel.client for the DCC's Python: {python_dir}")
    if done.note:
        print(f"  {done.note}")
    return 0


def _status(extra_dir: Path | None) -> int:
    from tressel.errors import TresselError
    from tressel.hosting.install import HOST_MODULES, hosts_python_dir, installer

    for name in HOST_MODULES:
        try:
            host = installer(name)
        except TresselError as exc:
            print(f"{name:8s} unavailable: {exc}")
            continue
        dirs = [None] + ([extra_dir] if extra_dir else [])
        installs = [i for d in dirs for i in host.find(d)]
        if not installs:
            print(f"{name:8s} not installed (would go to {host.default_dir()})")
        for item in installs:
            state = "ok" if item.valid else "BROKEN (its host code is gone: reinstall)"
            print(f"{name:8s} {item.path}  ->  {item.source}  [{state}]")
    print(f"tressel.client for DCCs: {hosts_python_dir()}")
    return 0

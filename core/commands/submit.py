"""`tressel submit IMAGE`: run a job on the daemon (started if needed) and save the layer."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit",
        help="send a photo to the daemon and save the groom it makes",
        description=(
            "Upload IMAGE to the Tressel daemon, follow the job's progress and download the "
            "USD layer. A daemon is started in the background when none runs (--no-start "
            "turns that off). An identical earlier request is answered from the daemon's "
            "cache at once."
        ),
        epilog="examples: tressel submit portrait.jpg -o portrait.usdc --seed 3; "
        "tressel submit /farm/in/a.png --server-path --no-wait",
    )
    p.add_argument("image", help="the photo (JPEG, PNG, TIFF or EXR)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="layer to write (default: IMAGE_STEM_groom.usdc in this folder)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--bundle", help="model bundle name or folder (default: the daemon's)")
    p.add_argument("--format", choices=["usdc", "usda"], default=None,
                   help="layer format (default: from --output's extension, else usdc)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="generation parameter, e.g. steps=30 (value read as JSON); repeatable")
    p.add_argument("--write-option", action="append", default=[], metavar="KEY=VALUE",
                   help="USD writer option (value read as JSON); repeatable")
    p.add_argument("--server-path", action="store_true",
                   help="IMAGE is a path on the daemon's machine under an --allow-root folder")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")
    p.add_argument("--no-start", action="store_true", help="fail if no daemon is running")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after seconds")
    p.add_argument("--quiet", action="store_true", help="print no progress")
    p.set_defaults(func=run)


def _pairs(items: list[str], what: str) -> dict:
    from tressel.errors import ConfigError

    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE, e.g. steps=30")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def run(args: argparse.Namespace) -> int:
    from tressel.client import connect
    from tressel.errors import TresselError

    fmt = args.format or (args.output.suffix.lstrip(".") if args.output
                          and args.output.suffix in (".usdc", ".usda") else "usdc")
    output = args.output or Path(f"{Path(args.image).stem}_groom.{fmt}")
    client = connect(autostart=not args.no_start)
    job = client.submit(
        args.image, seed=args.seed, bundle=args.bundle, format=fmt,
        params=_pairs(args.param, "--param"),
        write_options=_pairs(args.write_option, "--write-option"),
        server_path=args.server_path,
    )
    if args.no_wait:
        print(job.id)
        return 0
    tty = sys.stderr.isatty()
    last = [""]

    def progress(phase: str, step: int, total: int) -> None:
        if args.quiet:
            return
        text = (f"queued, {step} job(s) ahead" if phase == "queued"
                else f"{phase} {step}/{total}" if total else phase)
        if tty:
            print(f"\r{text:<60}", end="", file=sys.stderr, flush=True)
        elif text.split()[0] != last[0].split()[0] if last[0] else True:
            print(text, file=sys.stderr, flush=True)  # one line per phase in logs
        last[0] = text

    try:
        info = client.wait(job.id, progress=progress, timeout=args.timeout)
    except TimeoutError:
        raise TresselError(
            f"job {job.id} did not finish within {args.timeout:g} s (--timeout); it goes on "
            f"in the daemon: fetch it later, or cancel it with DELETE /v1/jobs/{job.id}"
        ) from None
    finally:
        if tty and not args.quiet and last[0]:
            print(file=sys.stderr)
    path = client.fetch_result(job.id, output)
    note = " (from cache)" if info.cached else ""
    print(f"{path}{note}")
    return 0

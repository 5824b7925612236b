"""`tressel synth`: write a dataset of procedural grooms with frontal renders and metadata."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate synthetic grooms (strands + render + metadata) for training",
        description=(
            "Grow COUNT seeded procedural grooms on Tressel's scalp (buzz to long; straight, "
            "wavy, curly, coily; partings, bangs, volume, gravity, clumping, frizz), render "
            "each from the front and write one folder per groom: strands.npz, render.png, "
            "meta.json (format `tressel-synth/1`, see tressel/synth/dataset.py). Re-running "
            "with the same options completes an interrupted dataset."
        ),
        epilog="example: tressel synth --count 200 --out data/synth --seed 0",
    )
    p.add_argument("--count", type=int, required=True, help="number of grooms")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--strands", type=int, default=4096, help="strands per groom (default 4096)")
    p.add_argument("--size", type=int, default=224, help="render size in pixels (default 224)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.progress import TqdmProgress
    from tressel.synth.dataset import synthesize

    progress = TqdmProgress(unit="groom")
    try:
        out = synthesize(args.out, args.count, args.seed, args.strands, args.size, progress)
    finally:
        progress.close()
    print(f"wrote {args.count} grooms to {out}")
    return 0

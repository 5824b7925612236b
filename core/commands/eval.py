"""`tressel eval`: strand metrics of a model on held-out synthetic grooms, with and without the image."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a model on held-out synthetic grooms (and an image-ignoring baseline)",
        description=(
            "For each groom of a `tressel synth` dataset, generate hair from its render with the "
            "model, and again with the image ignored (the unconditional denoiser), and compare "
            "both with the ground-truth strands: root-matched point-to-point distance, chamfer "
            "distance, and precision/recall/F1 of points within 5, 10 and 20 mm."
        ),
        epilog="example: tressel eval --data runs/demo/data/heldout --model tressel-demo",
    )
    p.add_argument("--data", type=Path, required=True, help="held-out dataset folder")
    p.add_argument("--model", default=None,
                   help="bundle name or folder (default: the usual model choice)")
    p.add_argument("--count", type=int, default=None, help="evaluate only the first N grooms")
    p.add_argument("--max-strands", type=int, default=3000,
                   help="strands generated per groom (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.bundles import default_bundle
    from tressel.progress import TqdmProgress
    from tressel.synth.dataset import write_json
    from tressel.train.evaluate import eval_record, evaluate, format_summary

    bundle = default_bundle(args.model)
    progress = TqdmProgress(unit="groom")
    try:
        result = evaluate(bundle, args.data, args.count, args.max_strands, args.seed, progress)
    finally:
        progress.close()
    print(f"model {bundle.name} ({bundle.short_hash}) on {len(result.per_groom)} grooms of "
          f"{args.data} in {result.seconds:.0f}s")
    print(format_summary(result))
    if args.json:
        write_json(args.json, eval_record(bundle, args.data, result))
    return 0

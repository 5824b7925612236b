"""`tressel usd-info LAYER`: summarise a groom layer and check it with USD's validators."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "usd-info",
        help="summarise a USD groom layer (strands, guides, material, provenance) and validate it",
        description=(
            "Print what a groom layer holds: strand and guide counts, points per strand, curve "
            "basis, units, level-of-detail variants, the predicted material and the "
            "provenance (image hash, model bundle, seed, sampler settings). With --validate, "
            "also run OpenUSD's validators (pxr.UsdValidation) on every level of detail; the "
            "exit status is 1 when any reports an error."
        ),
        epilog="example: tressel usd-info out/astronaut_groom.usdc --validate",
    )
    p.add_argument("layer", type=Path, help="a .usdc/.usda groom layer")
    p.add_argument("--validate", action="store_true", help="run pxr.UsdValidation on the layer")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tressel.errors import TresselError

    if not args.layer.is_file():  # before pxr is imported (a second or more)
        raise TresselError(f"groom layer not found: {args.layer}: check the path")
    from tressel.usd.info import layer_summary
    from tressel.usd.validate import validate_layer

    summary = layer_summary(args.layer)
    issues = []
    if args.validate:
        for lod in summary.get("lod_variants") or [None]:
            for issue in validate_layer(args.layer, lod=lod):
                issues.append({"lod": lod, "severity": issue.severity, "name": issue.name,
                               "message": issue.message, "sites": issue.sites})
        summary["validation"] = issues
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        for key, value in summary.items():
            if key == "validation":
                continue
            if isinstance(value, dict):
                print(f"{key}:")
                for name, item in value.items():
                    print(f"  {name}: {item}")
            else:
                print(f"{key}: {value}")
        if args.validate:
            print(f"validation: {len(issues)} issue(s)")
            for issue in issues:
                where = f" [{issue['lod']}]" if issue["lod"] else ""
                print(f"  {issue['severity']}{where} {issue['name']}: {issue['message']}")
    return 1 if any(issue["severity"] == "error" for issue in issues) else 0

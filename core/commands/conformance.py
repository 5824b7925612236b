"""`tressel conformance DIR`: check this implementation against DiffLocks conformance vectors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "conformance",
        help="check the model code against DiffLocks conformance vectors",
        description=(
            "Run every case of a `difflocks-conformance/1` vector folder (manifest.json plus "
            "weights and .npz arrays) in float32 on the CPU, print one line per case with its "
            "largest error and tolerance, and a final `N passed, M failed` line. Exit status is "
            "0 only when every case passes."
        ),
        epilog="example: tressel conformance ../shared/difflocks/vectors --debug",
    )
    p.add_argument("vectors", type=Path, help="folder holding manifest.json")
    p.add_argument("-k", "--case", action="append", default=[],
                   help="run only cases whose name contains this text (repeatable)")
    p.add_argument("--debug", action="store_true",
                   help="also compare intermediate debug arrays (never decide pass/fail)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tressel.conformance import load_cases, run_case

    # The vectors pin float32 maths: no TF32 anywhere (vectors/README.md §3).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        cases = load_cases(args.vectors)
    except (FileNotFoundError, ValueError) as exc:
        print(f"tressel conformance: error: {exc}", file=sys.stderr)
        return 2
    if args.case:
        cases = [c for c in cases if any(k in c.name for k in args.case)]
    passed = failed = 0
    for case in cases:
        result = run_case(case, debug=args.debug)
        status = "PASS" if result.ok else "FAIL"
        decisive = [c for c in result.comparisons if not c.output.startswith("debug:")]
        if result.error:
            detail = result.error
        elif decisive:
            worst = max(decisive, key=lambda c: c.worst_ratio)
            detail = (f"max_err {worst.max_error:.3g} on {worst.output} "
                      f"(atol {worst.atol:.3g}, rtol {worst.rtol:.3g}, "
                      f"{worst.worst_ratio:.3g} of tolerance)")
            if worst.message:
                detail += f" {worst.message}"
        else:
            detail = "no outputs compared"
        print(f"{status} {case.name} [{case.kind}] {detail} {result.seconds:.1f}s", flush=True)
        if args.debug or not result.ok:
            for comp in result.comparisons:
                if not comp.ok or args.debug:
                    print(f"    {'ok ' if comp.ok else 'BAD'} {comp.output}: max_err "
                          f"{comp.max_error:.3g} ({comp.worst_ratio:.3g} of tol) {comp.message}")
        passed += result.ok
        failed += not result.ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1

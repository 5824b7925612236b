"""`tressel generate IMAGE [IMAGE...] -o OUT`: photo(s) to USD groom(s) with progress bars."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from tressel.commands.job_options import (
    add_item_options,
    add_run_options,
    generate_params,
    parse_interval,
    parse_strands,
    write_options,
)
from tressel.outputs import GROOM_SUFFIXES, OutputOptions
from tressel.progress import TqdmProgress

__all__ = ["output_paths", "parse_interval", "parse_strands", "register", "run"]

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="turn portrait photo(s) into USD hair groom(s)",
        description=textwrap.fill(
            "Find the face, run the DiffLocks model and write the groom as a USD BasisCurves "
            "layer, with the face crop (OUT_crop.png) and the predicted hair material "
            "(OUT_material.json) beside it. With several images, OUT is a folder and each "
            "groom is named after its image.", 78),
        epilog=("examples:\n"
                "  tressel generate portrait.jpg -o groom.usdc\n"
                "  tressel generate a.jpg b.png -o grooms/ --seed 7 --strands 0.5x --npz"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="JPEG, PNG, TIFF or EXR photo of a person")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="groom file (.usdc, .usda; default .usdc) or, for several images, a "
                        "folder")
    add_run_options(p)
    add_item_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def output_paths(images: list[Path], output: Path) -> list[Path]:
    """The groom path for each image (several images: OUT is a folder)."""
    if len(images) == 1 and not (output.is_dir() or str(output).endswith(os.sep)):
        return [output if output.suffix.lower() in GROOM_SUFFIXES else
                output.with_name(output.name + ".usdc")]
    stems: dict[str, int] = {}
    paths = []
    for image in images:
        stem = image.stem
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:  # two inputs with one name from different folders
            stem = f"{stem}_{stems[stem]}"
        paths.append(output / f"{stem}.usdc")
    return paths


def run(args: argparse.Namespace) -> int:
    from tressel.bundles import default_bundle
    from tressel.errors import ConfigError

    for image in args.images:
        if not image.is_file():
            raise ConfigError(f"input image {image} does not exist")
    params = generate_params(args)
    bundle = default_bundle(args.model)
    grooms = output_paths(args.images, args.output)
    failures = 0
    for image, groom in zip(args.images, grooms):
        try:
            generate_one(image, groom, bundle, params, args)
        except Exception as exc:
            from tressel.errors import Cancelled, TresselError

            if len(args.images) == 1 or isinstance(exc, Cancelled) or \
                    not isinstance(exc, TresselError):
                raise
            failures += 1
            print(f"tressel generate: {image}: {exc}", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(args.images)} image(s) failed", file=sys.stderr)
        return 1
    return 0


def generate_one(image: Path, groom: Path, bundle: Any, params: Any,
                 args: argparse.Namespace) -> None:
    from tressel.outputs import job_request, write_job_outputs
    from tressel.pipeline import run_generate

    progress = TqdmProgress(image.name, enabled=not args.no_progress)
    try:
        result = run_generate(image, bundle, params, progress=progress)
    finally:
        progress.close()
    options = OutputOptions(write=write_options(args), npz=args.npz)
    request = job_request(result.hair.provenance.image_sha256, bundle, params, options)
    written = write_job_outputs(result, groom, options, request)
    hair = result.hair
    # The groom first: it is the file the user asked for.
    print(f"{image}: {hair.num_strands} strands x {hair.points_per_strand} points -> "
          + ", ".join(str(p) for p in [written[-1], *written[:-1]]))

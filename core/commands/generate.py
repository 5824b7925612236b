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
    generate_values,
    parse_interval,
    parse_strands,
    write_options,
)
from tressel.errors import ConfigError
from tressel.outputs import GROOM_SUFFIXES, OutputOptions

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
        suffix = output.suffix.lower()
        if suffix in GROOM_SUFFIXES:
            return [output]
        if suffix and not suffix[1:].isdigit():  # "groom.v2"-style names are not extensions
            raise ConfigError(
                f"-o {output}: a groom is a USD layer, not {suffix}: name it .usdc (or .usda "
                "for small, readable output), or give no extension for .usdc"
            )
        return [output.with_name(output.name + ".usdc")]
    stems: dict[str, int] = {}
    paths = []
    for image in images:
        stem = image.stem
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:  # two inputs with one name from different folders
            stem = f"{stem}_{stems[stem]}"
        paths.append(output / f"{stem}.usdc")
    return paths


def check_inputs(images: list[Path]) -> None:
    """Every input exists, is a file and can be read (before any slow import)."""
    for image in images:
        if not image.exists():
            raise ConfigError(f"input image {image} does not exist: check the path")
        if not image.is_file():
            raise ConfigError(f"input image {image} is not a file: give the path of a photo")
        try:
            with open(image, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise ConfigError(f"cannot read input image {image}: {exc.strerror}: check its "
                              "permissions") from None


def check_output_folder(folder: Path) -> None:
    """`folder` exists and is writable, or can be created (its nearest existing parent is a
    writable folder)."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot write to {folder}: {existing} is a file, not a folder: "
                          "choose another -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {folder}: {existing} is not writable: choose "
                          "another -o or fix its permissions")


def run(args: argparse.Namespace) -> int:
    # Everything that can be checked without the model is checked before torch is imported
    # (seconds): a typo should fail at once.
    from tressel.bundles import default_bundle
    from tressel.cpu_threads import fixed_threads

    check_inputs(args.images)
    fixed_threads()  # a bad $TRESSEL_THREADS fails here, not after the model loaded
    grooms = output_paths(args.images, args.output)
    for folder in dict.fromkeys(g.parent for g in grooms):
        check_output_folder(folder)
    values = generate_values(args)
    if args.alembic:
        from tressel.export.alembic import require_alembic

        require_alembic()
    bundle = default_bundle(args.model)

    from tressel.pipeline import GenerateParams

    params = GenerateParams(**values)
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
    from tressel.cpu_threads import cpu_job_threads
    from tressel.outputs import job_request, write_job_outputs
    from tressel.pipeline import run_generate
    from tressel.progress import TqdmProgress

    progress = TqdmProgress(image.name, enabled=not args.no_progress)
    try:
        # Threads chosen per image: a DCC may have started (or stopped) work since the last one.
        with cpu_job_threads(params.device, image.name):
            result = run_generate(image, bundle, params, progress=progress)
    finally:
        progress.close()
    options = OutputOptions(write=write_options(args), npz=args.npz, alembic=args.alembic)
    request = job_request(result.hair.provenance.image_sha256, bundle, params, options)
    written = write_job_outputs(result, groom, options, request)
    hair = result.hair
    # The groom first: it is the file the user asked for.
    print(f"{image}: {hair.num_strands} strands x {hair.points_per_strand} points -> "
          + ", ".join(str(p) for p in [written[-1], *written[:-1]]))
    line = collision_line(hair.provenance.operations)
    if line:
        print(f"{image}: {line}")


def collision_line(operations: dict[str, Any]) -> str:
    """Penetration before and after collision handling, from a groom's provenance."""
    if "collision:pointsInsideBefore" not in operations:
        return ""
    return (f"collision: {operations['collision:pointsInsideBefore']} strand points in "
            f"{operations['collision:strandsInsideBefore']} strands were inside the head "
            f"(deepest {operations['collision:maxDepthBefore'] * 1e3:.2f} mm), "
            f"{operations['collision:pointsInsideAfter']} after; "
            f"{operations['collision:strandsMoved']} strands moved, lengths within "
            f"{operations['collision:maxLengthChange'] * 100:.3g}%")

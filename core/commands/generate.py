"""`tressel generate IMAGE [IMAGE...] -o OUT`: photo(s) to USD groom(s) with progress bars."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from tressel.progress import TqdmProgress

log = logging.getLogger(__name__)

GROOM_SUFFIXES = (".usdc", ".usda", ".usd")


def parse_strands(text: str) -> tuple[float, int | None]:
    """`0.5x` scales the density (fewer strands), a plain integer caps the strand count."""
    text = text.strip().lower()
    try:
        if text.endswith("x"):
            scale = float(text[:-1])
            if scale <= 0:
                raise ValueError
            return scale, None
        cap = int(text)
        if cap < 1:
            raise ValueError
        return 1.0, cap
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--strands {text!r}: give a density scale like 0.5x or a maximum count like 20000"
        ) from None


def parse_interval(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--guidance-interval {text!r}: give two noise levels LO,HI such as 0,5") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"--guidance-interval needs LO < HI, got {text!r}")
    return lo, hi


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
    p.add_argument("--model", default=None,
                   help="bundle name or folder (default: $TRESSEL_MODEL, else the only or "
                        "'difflocks' bundle in the store)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--steps", type=int, default=None,
                   help="diffusion steps (default: the bundle's, 100 for DiffLocks)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale; 1 disables it (default: the bundle's)")
    p.add_argument("--guidance-interval", type=parse_interval, default=None, metavar="LO,HI",
                   help="apply guidance only for noise levels LO < sigma < HI (default 0,5)")
    p.add_argument("--strands", type=parse_strands, default=(1.0, None), metavar="N|Sx",
                   help="cap the strand count (20000) or scale the density (0.5x)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="diffusion precision (auto: bfloat16 autocast on CUDA, float32 on CPU)")
    p.add_argument("--no-crop", action="store_true",
                   help="use the whole image as the face crop (no face detection)")
    hair = p.add_argument_group("collision")
    hair.add_argument("--no-collide", action="store_true",
                      help="keep strands as the model made them, even where they pass through "
                           "the scalp (default: push them out, keeping their lengths)")
    hair.add_argument("--collision-margin", type=float, default=0.5, metavar="MM",
                      help="distance kept between strands and the scalp, millimetres "
                           "(default 0.5)")
    usd = p.add_argument_group("USD layer")
    usd.add_argument("--points", type=int, default=None,
                     help="points written per strand (default 64, resampled by arc length)")
    usd.add_argument("--basis", choices=["linear", "bspline"], default=None,
                     help="curve basis (default linear: every importer reads it)")
    usd.add_argument("--units", choices=["m", "cm"], default=None,
                     help="stage units (default m; the model works in metres)")
    usd.add_argument("--guides", type=int, default=None,
                     help="guide curves for DCC import (default 2000, 0 for none)")
    usd.add_argument("--guide-method", choices=["clusters", "spread"], default=None,
                     help="clusters: one guide per clump of like-shaped strands (default); "
                          "spread: evenly over the scalp")
    p.add_argument("--alembic", action="store_true",
                   help="also write OUT.abc: an Alembic groom (Ogawa) for Unreal's groom "
                        "importer, Maya and Blender, in centimetres unless --units says m")
    p.add_argument("--npz", action="store_true",
                   help="also write OUT.npz with positions, root_uv and material")
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


def sidecar(groom: Path, tag: str, suffix: str) -> Path:
    return groom.with_name(f"{groom.stem}_{tag}{suffix}" if tag else f"{groom.stem}{suffix}")


def run(args: argparse.Namespace) -> int:
    from tressel.bundles import default_bundle
    from tressel.errors import ConfigError
    from tressel.pipeline import GenerateParams

    for image in args.images:
        if not image.is_file():
            raise ConfigError(f"input image {image} does not exist")
    density_scale, max_strands = args.strands
    params = GenerateParams(
        seed=args.seed, steps=args.steps, guidance=args.guidance,
        guidance_interval=args.guidance_interval, density_scale=density_scale,
        max_strands=max_strands, device=args.device, dtype=args.dtype, crop=not args.no_crop,
        collide=not args.no_collide, collision_margin=args.collision_margin * 1e-3,
    )
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
    from tressel.pipeline import run_generate, save_npz, write_groom_file

    progress = TqdmProgress(image.name, enabled=not args.no_progress)
    try:
        result = run_generate(image, bundle, params, progress=progress)
    finally:
        progress.close()
    groom.parent.mkdir(parents=True, exist_ok=True)
    options = {name: getattr(args, option) for name, option in
               (("points_per_strand", "points"), ("basis", "basis"), ("units", "units"),
                ("guides", "guides"), ("guide_method", "guide_method"))
               if getattr(args, option, None) is not None}
    write_groom_file(result.hair, groom, **options)
    written = [groom]
    if result.crop_image is not None:
        crop_path = sidecar(groom, "crop", ".png")
        _write_png(result.crop_image, crop_path)
        written.append(crop_path)
    material_path = sidecar(groom, "material", ".json")
    _write_text(material_path, json.dumps(material_json(result.hair), indent=1) + "\n")
    written.append(material_path)
    if getattr(args, "alembic", False):
        from tressel.export.alembic import alembic_options, write_alembic

        abc_path = sidecar(groom, "", ".abc")
        write_alembic(result.hair, abc_path, **alembic_options(options))
        written.append(abc_path)
    if args.npz:
        npz_path = sidecar(groom, "", ".npz")
        save_npz(result.hair, npz_path)
        written.append(npz_path)
    hair = result.hair
    print(f"{image}: {hair.num_strands} strands x {hair.points_per_strand} points -> "
          + ", ".join(str(p) for p in written))
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


def material_json(hair: Any) -> dict[str, Any]:
    m = hair.material
    return {
        "melanin": m.melanin,
        "redness": m.redness,
        "root_darkness_start": m.root_darkness_start,
        "root_darkness_end": m.root_darkness_end,
        "root_darkness_strength": m.root_darkness_strength,
        "raw": m.raw,
        "provenance": {
            "image_sha256": hair.provenance.image_sha256,
            "bundle": hair.provenance.bundle_name,
            "bundle_hash": hair.provenance.bundle_hash,
            "seed": hair.provenance.seed,
            "steps": hair.provenance.steps,
            "guidance": hair.provenance.guidance,
            "guidance_interval": list(hair.provenance.guidance_interval),
            "crop_box": list(hair.provenance.crop_box) if hair.provenance.crop_box else None,
            "tressel_version": hair.provenance.tressel_version,
            "operations": dict(hair.provenance.operations),
        },
    }


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_png(rgb_uint8: Any, path: Path) -> None:
    import OpenImageIO as oiio
    from tressel.errors import ImageError

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # OIIO picks the format by suffix
    spec = oiio.ImageSpec(rgb_uint8.shape[1], rgb_uint8.shape[0], 3, "uint8")
    out = oiio.ImageOutput.create(str(tmp))
    if out is None or not out.open(str(tmp), spec):
        raise ImageError(f"cannot write {path}: {oiio.geterror()}")
    ok = out.write_image(rgb_uint8)
    out.close()
    if not ok:
        raise ImageError(f"cannot write {path}: {out.geterror()}")
    os.replace(tmp, path)

"""`tressel generate IMAGE [IMAGE...] -o OUT`: photo(s) to USD groom(s) with progress bars."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tressel import params
from tressel.errors import ConfigError, TresselError, usd_error_reason

log = logging.getLogger(__name__)

GROOM_SUFFIXES = (".usdc", ".usda", ".usd")


def _option(check: Callable[[Any], Any], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: convert the text, then check it with the shared bounds."""

    def parse(text: str) -> Any:
        try:
            return check(convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def parse_strands(text: str) -> tuple[float, int | None]:
    """`0.5x` scales the density (fewer strands), a plain integer caps the strand count."""
    text = text.strip().lower()
    try:
        if text.endswith("x"):
            return params.check_density_scale(float(text[:-1])), None
        return 1.0, params.check_max_strands(int(text))
    except (ValueError, ConfigError) as exc:
        detail = f" ({exc})" if isinstance(exc, ConfigError) else ""
        raise argparse.ArgumentTypeError(
            f"--strands {text!r}: give a density scale like 0.5x or a maximum count like "
            f"20000{detail}"
        ) from None


def parse_interval(text: str) -> tuple[float, float]:
    try:
        return params.check_guidance_interval([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--guidance-interval {text!r}: give two noise levels LO,HI such as 0,5") from None
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"--guidance-interval {text!r}: {exc}") from None


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
    p.add_argument("--seed", type=_option(params.check_seed, int), default=0,
                   help="random seed (default 0)")
    p.add_argument("--steps", type=_option(params.check_steps, int), default=None,
                   help="diffusion steps (default: the bundle's, 100 for DiffLocks)")
    p.add_argument("--guidance", type=_option(params.check_guidance, float), default=None,
                   help="classifier-free guidance scale; 1 disables it (default: the bundle's)")
    p.add_argument("--guidance-interval", type=parse_interval, default=None, metavar="LO,HI",
                   help="apply guidance only for noise levels LO < sigma < HI (default 0,5)")
    p.add_argument("--strands", type=parse_strands, default=(1.0, None), metavar="N|Sx",
                   help="cap the strand count (20000) or scale the density (0.5x)")
    p.add_argument("--device", default="auto", type=_option(params.check_device, str),
                   help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="diffusion precision (auto: bfloat16 autocast on CUDA, float32 on CPU)")
    p.add_argument("--no-crop", action="store_true",
                   help="use the whole image as the face crop (no face detection)")
    usd = p.add_argument_group("USD layer")
    usd.add_argument("--points", default=None,
                     type=_option(params.WRITE_CHECKS["points_per_strand"], int),
                     help="points written per strand (default 64, resampled by arc length)")
    usd.add_argument("--basis", choices=["linear", "bspline"], default=None,
                     help="curve basis (default linear: every importer reads it)")
    usd.add_argument("--units", choices=["m", "cm"], default=None,
                     help="stage units (default m; the model works in metres)")
    usd.add_argument("--guides", type=_option(params.WRITE_CHECKS["guides"], int),
                     default=None,
                     help="guide curves for DCC import (default 2000, 0 for none)")
    p.add_argument("--npz", action="store_true",
                   help="also write OUT.npz with positions, root_uv and material")
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


def sidecar(groom: Path, tag: str, suffix: str) -> Path:
    return groom.with_name(f"{groom.stem}_{tag}{suffix}" if tag else f"{groom.stem}{suffix}")


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

    check_inputs(args.images)
    grooms = output_paths(args.images, args.output)
    for folder in dict.fromkeys(g.parent for g in grooms):
        check_output_folder(folder)
    density_scale, max_strands = args.strands
    values = {
        "seed": args.seed, "steps": args.steps, "guidance": args.guidance,
        "guidance_interval": args.guidance_interval, "density_scale": density_scale,
        "max_strands": max_strands, "device": args.device, "dtype": args.dtype,
        "crop": not args.no_crop,
    }
    params.check_generate_params(values)
    bundle = default_bundle(args.model)

    from tressel.pipeline import GenerateParams

    generate_params = GenerateParams(**values)
    failures = 0
    for image, groom in zip(args.images, grooms):
        try:
            generate_one(image, groom, bundle, generate_params, args)
        except Exception as exc:
            from tressel.errors import Cancelled

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
    from tressel.progress import TqdmProgress

    progress = TqdmProgress(image.name, enabled=not args.no_progress)
    try:
        result = run_generate(image, bundle, params, progress=progress)
    finally:
        progress.close()
    options = {name: getattr(args, option) for name, option in
               (("points_per_strand", "points"), ("basis", "basis"), ("units", "units"),
                ("guides", "guides")) if getattr(args, option, None) is not None}
    written = [groom]
    with writing(groom):
        groom.parent.mkdir(parents=True, exist_ok=True)
        write_groom_file(result.hair, groom, **options)
    if result.crop_image is not None:
        crop_path = sidecar(groom, "crop", ".png")
        with writing(crop_path):
            _write_png(result.crop_image, crop_path)
        written.append(crop_path)
    material_path = sidecar(groom, "material", ".json")
    with writing(material_path):
        _write_text(material_path, json.dumps(material_json(result.hair), indent=1) + "\n")
    written.append(material_path)
    if args.npz:
        npz_path = sidecar(groom, "", ".npz")
        with writing(npz_path):
            save_npz(result.hair, npz_path)
        written.append(npz_path)
    hair = result.hair
    print(f"{image}: {hair.num_strands} strands x {hair.points_per_strand} points -> "
          + ", ".join(str(p) for p in written))


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failed write (disk full, no permission, USD's own errors) into one clear line."""
    try:
        yield
    except TresselError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = ("free some space or write elsewhere with -o"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder and -o")
        raise TresselError(f"cannot write {path}: {reason}: {hint}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pxr"):  # Tf.ErrorException from a failed save
            raise TresselError(f"cannot write {path}: {usd_error_reason(exc)}: check the free "
                               "space and permissions of the folder") from None
        raise


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
        },
    }


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_png(rgb_uint8: Any, path: Path) -> None:
    """Write the crop atomically: a PNG that failed to write completely never takes `path`."""
    import OpenImageIO as oiio
    from tressel.errors import ImageError

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # OIIO picks the format by suffix
    try:
        oiio.geterror()  # clears an error left by an earlier call, so it is not taken as ours
        spec = oiio.ImageSpec(rgb_uint8.shape[1], rgb_uint8.shape[0], 3, "uint8")
        out = oiio.ImageOutput.create(str(tmp))
        if out is None or not out.open(str(tmp), spec):
            raise ImageError(f"cannot write {path}: {oiio.geterror()}")
        # OIIO reports short writes (a full disk) in geterror() while write_image() and
        # close() still return True, so the error state decides.
        ok = out.write_image(rgb_uint8)
        error = out.geterror().strip()
        ok = out.close() and ok
        error = error or out.geterror().strip() or oiio.geterror().strip()
        if not ok or error:
            full = "could only write" in error or "No space" in error
            reason = "the disk is full (No space left on device)" if full else error
            raise ImageError(f"cannot write {path}: {reason}: free some space or write "
                             "elsewhere with -o")
        with open(tmp, "rb+") as f:  # on disk before it takes the final name
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

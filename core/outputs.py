"""The files one job leaves on disk: the groom layer and its sidecars, each written atomically.

Beside `NAME.usdc` go `NAME_crop.png` (the model's view of the face), `NAME_material.json`
(the predicted hair material, the provenance and the request that made the groom) and, on
request, `NAME.npz`. The groom is written last, so an existing groom means its sidecars are
complete; a groom being replaced is removed first, so a run killed half way never leaves an
old groom beside new sidecars.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tressel.errors import TresselError, usd_error_reason

GROOM_SUFFIXES = (".usdc", ".usda", ".usd")


@dataclass
class OutputOptions:
    """What to write for a groom: `write_groom` keywords, and whether to add the npz."""

    write: dict[str, Any] = field(default_factory=dict)
    npz: bool = False
    alembic: bool = False  # also NAME.abc, for Unreal's groom importer, XGen and Blender


def sidecar(groom: Path, tag: str, suffix: str) -> Path:
    return groom.with_name(f"{groom.stem}_{tag}{suffix}" if tag else f"{groom.stem}{suffix}")


def output_files(groom: Path, options: OutputOptions) -> list[Path]:
    """Every file a finished job has: its sidecars, then the groom."""
    files = [sidecar(groom, "crop", ".png"), sidecar(groom, "material", ".json")]
    if options.npz:
        files.append(sidecar(groom, "", ".npz"))
    if options.alembic:
        files.append(sidecar(groom, "", ".abc"))
    return [*files, groom]


def stale_temp_files(grooms: list[Path]) -> dict[Path, list[Path]]:
    """Temp files that killed writers of these grooms may have left, by groom.

    One listing per folder (an output folder on a farm share can hold many thousands of
    files), and exact names only, never another groom's: a farm task may be writing that one.
    """
    by_folder: dict[Path, list[Path]] = {}
    for groom in grooms:
        by_folder.setdefault(groom.parent, []).append(groom)
    found: dict[Path, list[Path]] = {}
    for folder, members in by_folder.items():
        if not folder.is_dir():
            continue
        hidden = [entry.name for entry in os.scandir(folder) if entry.name.startswith(".")]
        if not hidden:
            continue
        for groom in members:
            stem = re.escape(groom.stem)
            pattern = re.compile(
                rf"^\.(?:{stem}\.[0-9a-f]{{8}}\.tmp{re.escape(groom.suffix)}"  # write_groom
                rf"|{stem}_crop\.tmp\.png|{stem}_material\.json\.tmp|{stem}\.tmp\.npz"
                rf"|{stem}\.[0-9a-f]{{8}}\.tmp\.abc)$")
            matches = [folder / name for name in hidden if pattern.match(name)]
            if matches:
                found[groom] = matches
    return found


def job_request(image_sha256: str, bundle: Any, params: Any,
                options: OutputOptions) -> dict[str, Any]:
    """Everything that decides a job's files, with the bundle's defaults filled in.

    Two jobs with equal requests write the same groom (the pipeline is seeded), so a batch
    skips a photo whose finished groom carries its request. Device and precision are left out:
    they change the strands only by rounding, and a farm mixes GPUs and CPUs.
    """
    from dataclasses import asdict

    from tressel.usd.writer import WriteOptions

    sampler = bundle.sampler
    interval = params.guidance_interval or sampler["guidance_interval"]
    return {
        "image_sha256": image_sha256,
        "bundle_hash": bundle.content_hash,
        "seed": int(params.seed),
        "steps": int(params.steps or sampler["steps"]),
        "guidance": float(params.guidance if params.guidance is not None
                          else sampler["guidance"]),
        "guidance_interval": [float(interval[0]), float(interval[1])],
        "density_scale": float(params.density_scale),
        "max_strands": params.max_strands,
        "crop": bool(params.crop),
        "collide": bool(params.collide),
        "collision_margin": float(params.collision_margin),
        "curl": bool(getattr(params, "curl", True)),
        "hair_reading": bool(getattr(params, "hair_reading", True)),
        "write": asdict(WriteOptions(**options.write)),
        "npz": bool(options.npz),
        "alembic": bool(options.alembic),
    }


def material_json(hair: Any, request: dict[str, Any] | None = None) -> dict[str, Any]:
    m = hair.material
    data = {
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
    if request is not None:
        data["request"] = request
    return data


def write_job_outputs(result: Any, groom: Path, options: OutputOptions,
                      request: dict[str, Any] | None = None) -> list[Path]:
    """Write a `GenerateOutput`'s groom and sidecars; returns the paths written, groom last.

    `request` (what was asked for, see `tressel.batch.request`) goes into the material JSON, so
    a later batch can tell whether this groom answers the same request.
    """
    from tressel.pipeline import save_npz, write_groom_file

    groom.parent.mkdir(parents=True, exist_ok=True)
    # The old groom goes first: until the new one lands, nothing claims to be finished.
    groom.unlink(missing_ok=True)
    written = []
    if result.crop_image is not None:
        crop_path = sidecar(groom, "crop", ".png")
        write_png(result.crop_image, crop_path)
        written.append(crop_path)
    material_path = sidecar(groom, "material", ".json")
    with writing(material_path):
        write_text(material_path,
                   json.dumps(material_json(result.hair, request), indent=1) + "\n")
    written.append(material_path)
    if options.npz:
        npz_path = sidecar(groom, "", ".npz")
        with writing(npz_path):
            written.append(save_npz(result.hair, npz_path))
    if options.alembic:
        from tressel.export.alembic import alembic_options, write_alembic

        abc_path = sidecar(groom, "", ".abc")
        with writing(abc_path):
            write_alembic(result.hair, abc_path, **alembic_options(options.write))
        written.append(abc_path)
    with writing(groom):
        write_groom_file(result.hair, groom, **options.write)
    written.append(groom)
    return written


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


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_png(rgb_uint8: Any, path: Path) -> None:
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

"""Export a chosen groom with everything Tressel writes beside it, without Qt.

`tressel generate` writes a groom as three files: the USD layer, the face crop the model saw
(`_crop.png`) and the predicted material with the job's provenance (`_material.json`). The
daemon returns only the layer, so the review tool rebuilds the other two from the layer's
provenance (crop box, image hash) and the source photo, when it still has that photo.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tressel.errors import TresselError

log = logging.getLogger(__name__)


@dataclass
class ExportReport:
    layer: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what could not be written, and why


def model_crop(photo: str | os.PathLike[str], provenance, out_size: int | None = None
               ) -> np.ndarray:
    """The face crop the model saw (uint8 [S, S, 3]), cut again from the source photo with
    the crop box recorded in the layer; refuses a photo whose hash is not the layer's."""
    from tressel.face import CROP_SIZE, CropBox, cut_crop, to_uint8_frame
    from tressel.images import load_image

    box = getattr(provenance, "crop_box", None)
    if not box:
        raise TresselError("the layer records no crop box: it was not made from a photo by "
                           "Tressel, so there is no crop to show")
    loaded = load_image(photo)
    expected = getattr(provenance, "image_sha256", "")
    if expected and loaded.sha256 != expected:
        raise TresselError(f"{Path(photo).name} is not the photo this groom was made from "
                           "(its SHA-256 differs from the layer's): open the original photo")
    x0, y0, x1, _ = (int(v) for v in box)
    return cut_crop(to_uint8_frame(loaded.rgb), CropBox(x0, y0, x1 - x0),
                    out_size or CROP_SIZE)


def unique_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `stem_2.ext`, `stem_3.ext`... : an export never overwrites a file."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    index = 2
    while candidate.exists():
        candidate = folder / f"{stem}_{index}{suffix}"
        index += 1
    return candidate


def _copy_atomic(source: Path, dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def export_groom(layer: str | os.PathLike[str], folder: str | os.PathLike[str],
                 photo: str | os.PathLike[str] | None = None) -> ExportReport:
    """Copy the groom layer into `folder` with its `_crop.png` and `_material.json`.

    Each file is written through a temp file and a rename, under a name that overwrites
    nothing. The crop needs the source photo; when it is missing the report says so.
    """
    from tressel.outputs import material_json, sidecar, write_png, write_text
    from tressel.usd import read_groom

    layer = Path(layer)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TresselError(f"cannot create the export folder {folder}: {exc.strerror}: "
                           "choose a folder you can write to") from exc
    hair = read_groom(layer)  # also proves the layer is a readable groom before copying it
    dest = unique_path(folder, layer.name)
    report = ExportReport(layer=_copy_atomic(layer, dest))
    report.written.append(dest)

    material_path = sidecar(dest, "material", ".json")
    write_text(material_path, json.dumps(material_json(hair), indent=1) + "\n")
    report.written.append(material_path)

    if photo and Path(photo).is_file():
        try:
            crop = model_crop(photo, hair.provenance)
        except TresselError as exc:
            report.skipped.append(f"crop: {exc}")
        else:
            crop_path = sidecar(dest, "crop", ".png")
            write_png(np.ascontiguousarray(crop), crop_path)
            report.written.append(crop_path)
    else:
        report.skipped.append("crop: the source photo is not available here (a job from "
                              "another machine or a deleted file)")
    log.info("exported %s to %s", layer.name, folder)
    return report

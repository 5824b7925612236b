"""Training views of a synthetic dataset: renders, style targets and mirrored copies.

Tressel's head and scalp UV are mirror-symmetric (x -> -x is s -> 1 - s), so every groom also
gives a second, exact training sample: strands mirrored in X, roots at (1 - s, t), the render
flipped left-right and the parting swapped. Index `2*i + 1` is the mirror of groom `i`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tressel.synth.dataset import list_grooms, read_groom
from tressel.synth.groom import CURL_TYPES, LENGTH_CLASSES, PARTINGS

# Continuous style attributes the image encoder learns to read off a render.
CONTINUOUS = ("log_length", "curl_radius_cm", "log_curl_period", "part_offset", "bangs",
              "volume", "gravity", "clumping", "frizz", "density", "hairline_recession",
              "melanin", "redness", "root_darkness_start", "root_darkness_end",
              "root_darkness_strength")
CATEGORIES = {"curl_type": CURL_TYPES, "length_class": LENGTH_CLASSES, "parting": PARTINGS}


def style_targets(style: dict, mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
    """(continuous [16] float32, categories [3] int64) for a style dict from meta.json."""
    parting = style["parting"]
    offset = style["part_offset"]
    if mirrored:
        parting = {"left": "right", "right": "left"}.get(parting, parting)
        offset = -offset
    values = {
        "log_length": math.log(style["length"]),
        "curl_radius_cm": style["curl_radius"] * 100,
        "log_curl_period": math.log(style["curl_period"]),
        "part_offset": offset,
        "bangs": float(style["bangs"]),
    }
    for key in CONTINUOUS:
        if key not in values:
            values[key] = float(style[key])
    cont = np.array([values[k] for k in CONTINUOUS], np.float32)
    cats = np.array([CURL_TYPES.index(style["curl_type"]),
                     LENGTH_CLASSES.index(style["length_class"]),
                     PARTINGS.index(parting)], np.int64)
    return cont, cats


def read_render(path: Path) -> np.ndarray:
    """A render as uint8 [H,W,3]."""
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(str(path))
    pixels = buf.get_pixels(oiio.UINT8)
    if pixels is None or buf.has_error:
        raise OSError(f"cannot read {path}: {buf.geterror()}")
    return np.ascontiguousarray(pixels[..., :3])


@dataclass
class RenderSet:
    """All renders and style targets of a dataset, mirrored copies interleaved."""

    images: np.ndarray  # [2N,H,W,3] uint8
    continuous: np.ndarray  # [2N,16]
    categories: np.ndarray  # [2N,3]
    material_raw: np.ndarray  # [2N,11]
    folders: list[Path]


def load_render_set(dataset: Path, limit: int | None = None) -> RenderSet:
    folders = list_grooms(dataset)[:limit]
    images, conts, cats, materials = [], [], [], []
    for folder in folders:
        sample = read_groom_meta(folder)
        image = read_render(folder / "render.png")
        for mirrored in (False, True):
            images.append(image[:, ::-1] if mirrored else image)
            cont, cat = style_targets(sample["style"], mirrored)
            conts.append(cont)
            cats.append(cat)
            materials.append(np.asarray(sample["material_raw"], np.float32))
    return RenderSet(np.ascontiguousarray(np.stack(images)), np.stack(conts), np.stack(cats),
                     np.stack(materials), folders)


def read_groom_meta(folder: Path) -> dict:
    import json

    return json.loads((Path(folder) / "meta.json").read_text())


def mirrored_groom(positions: np.ndarray, root_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groom reflected in X, with roots at (1 - s, t)."""
    flipped = positions.copy()
    flipped[..., 0] *= -1
    uv = root_uv.copy()
    uv[:, 0] = 1.0 - uv[:, 0]
    return flipped, uv


def load_groom_strands(folder: Path, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    sample = read_groom(folder)
    if mirrored:
        return mirrored_groom(sample.positions, sample.root_uv)
    return sample.positions, sample.root_uv

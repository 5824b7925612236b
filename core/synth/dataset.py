"""The on-disk format of a synthetic groom dataset, and the loop that writes one.

Layout (format `tressel-synth/1`)::

    DIR/dataset.json            {"format", "count", "seed", "strands", "image_size", "grooms": [...]}
    DIR/scalp.ply               the scalp mesh the roots live on (x y z s t per vertex)
    DIR/g000000/strands.npz     positions [N,256,3] float32 metres (Y up, scalp frame),
                                root_uv [N,2] float32 (s, t) of each root
    DIR/g000000/render.png      frontal render, sRGB uint8, framed like the DiffLocks crop
    DIR/g000000/meta.json       {"seed", "style": {...}, "material_raw": [11], "num_strands",
                                 "render": {"skin", "background", "yaw_degrees"}}

Every groom is reproducible from its seed alone (`groom_seed(dataset_seed, index)`), so a
dataset can be regenerated instead of copied. Files are written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tressel.errors import ConfigError
from tressel.progress import ProgressFn, check_cancel, no_progress

FORMAT = "tressel-synth/1"


def groom_seed(dataset_seed: int, index: int) -> int:
    """The seed of groom `index` in a dataset made with `dataset_seed`."""
    return int(np.random.SeedSequence([dataset_seed, index]).generate_state(1)[0])


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=1) + "\n").encode())


def write_strands(path: Path, positions: np.ndarray, root_uv: np.ndarray) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez(tmp, positions=positions.astype(np.float32), root_uv=root_uv.astype(np.float32))
    os.replace(tmp, path)


@dataclass
class GroomSample:
    """One groom as read back from disk."""

    folder: Path
    positions: np.ndarray  # [N,256,3]
    root_uv: np.ndarray  # [N,2]
    meta: dict

    @property
    def image_path(self) -> Path:
        return self.folder / "render.png"


def render_options(seed: int) -> dict:
    """Per-groom skin tone and background, so an image encoder has to look at the hair."""
    rng = np.random.default_rng([seed, 1])
    tone = rng.uniform(0.25, 1.0)
    skin = np.array([0.72, 0.52, 0.42]) * tone + np.array([0.06, 0.03, 0.02])
    background = rng.uniform(0.15, 0.8) * np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.08, 0.08, 3)
    return {"skin": np.round(skin, 4).tolist(),
            "background": np.round(np.clip(background, 0, 1), 4).tolist(),
            "yaw_degrees": 0.0}


def make_sample(folder: Path, seed: int, num_strands: int, image_size: int) -> dict:
    """Grow, render and write one groom; returns its meta."""
    from tressel.synth.groom import generate_groom
    from tressel.synth.render import render_groom, write_png

    groom = generate_groom(seed, num_strands)
    style = groom.style
    options = render_options(seed)
    image = render_groom(
        groom.positions, style.melanin, style.redness,
        (style.root_darkness_start, style.root_darkness_end, style.root_darkness_strength),
        size=image_size, skin=options["skin"], background=options["background"])
    folder.mkdir(parents=True, exist_ok=True)
    write_strands(folder / "strands.npz", groom.positions, groom.root_uv)
    write_png(folder / "render.png", image)
    meta = {"seed": seed, "style": style.to_dict(), "material_raw": style.material_raw(),
            "num_strands": len(groom.positions), "render": options}
    write_json(folder / "meta.json", meta)
    return meta


def synthesize(out: Path, count: int, seed: int = 0, num_strands: int = 4096,
               image_size: int = 224, progress: ProgressFn | None = None,
               cancel=None) -> Path:
    """Write (or complete) a dataset of `count` grooms; existing finished grooms are kept."""
    from tressel.synth.head import write_scalp_ply

    if count < 1 or num_strands < 1 or image_size < 16:
        raise ConfigError("synth needs --count >= 1, --strands >= 1 and --size >= 16")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "dataset.json"
    if index_path.exists():
        old = json.loads(index_path.read_text())
        if (old.get("seed"), old.get("strands"), old.get("image_size")) != (
                seed, num_strands, image_size):
            raise ConfigError(f"{out} holds a dataset made with other settings "
                              f"(seed {old.get('seed')}, strands {old.get('strands')}, size "
                              f"{old.get('image_size')}): choose an empty --out folder")
    write_scalp_ply(out / "scalp.ply")
    progress = progress or no_progress
    names = []
    for index in range(count):
        check_cancel(cancel)
        name = f"g{index:06d}"
        folder = out / name
        if not (folder / "meta.json").exists():
            make_sample(folder, groom_seed(seed, index), num_strands, image_size)
        names.append(name)
        progress("synth", index + 1, count)
    write_json(index_path, {"format": FORMAT, "count": count, "seed": seed,
                            "strands": num_strands, "image_size": image_size, "grooms": names})
    return out


def list_grooms(dataset: Path) -> list[Path]:
    """Groom folders of a dataset, in index order."""
    dataset = Path(dataset)
    index_path = dataset / "dataset.json"
    if not index_path.is_file():
        raise ConfigError(f"{dataset} is not a synthetic dataset (no dataset.json): "
                          "make one with `tressel synth --out DIR`")
    index = json.loads(index_path.read_text())
    if index.get("format") != FORMAT:
        raise ConfigError(f"{index_path} has format {index.get('format')!r}, expected {FORMAT}")
    return [dataset / name for name in index["grooms"]]


def read_groom(folder: Path) -> GroomSample:
    folder = Path(folder)
    with np.load(folder / "strands.npz") as data:
        positions, root_uv = data["positions"], data["root_uv"]
    meta = json.loads((folder / "meta.json").read_text())
    return GroomSample(folder, positions, root_uv, meta)

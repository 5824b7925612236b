"""The on-disk format of a synthetic groom dataset, and the loop that writes one.

Layout (format `tressel-synth/1`)::

    DIR/dataset.json            {"format", "count", "seed", "strands", "image_size", "grooms": [...]}
    DIR/scalp.ply               the scalp mesh the roots live on (x y z s t per vertex)
    DIR/g000000/strands.npz     positions [N,256,3] float32 metres (Y up, scalp frame),
                                root_uv [N,2] float32 (s, t) of each root
    DIR/g000000/render.png      frontal render, sRGB uint8, framed like the DiffLocks crop
    DIR/g000000/meta.json       {"seed", "style": {...}, "material_raw": [11], "num_strands",
                                 "render": {"skin", "background", "yaw_degrees"}}

Datasets come in two looks (`look` in dataset.json, absent for the first): `plain` renders a
groom on a flat background under one light, as the first demo model was trained; `photo`
varies what a photograph varies (backgrounds, lighting, skin tone, clothing, framing, blur,
noise, JPEG compression) and the hair colours (blonde to black, red, grey and white), so that
a model trained on it meets photographs less unprepared.

Every groom is reproducible from its seed alone (`groom_seed(dataset_seed, index)`), so a
dataset can be regenerated instead of copied. Files are written atomically.
"""

from __future__ import annotations

import json
import math
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


LOOKS = ("plain", "photo")


def _colour(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.9) -> np.ndarray:
    """A random linear-RGB colour, mostly muted like walls and clothes."""
    grey = rng.uniform(lo, hi)
    tint = rng.normal(0, 0.12, 3) * rng.uniform(0.2, 1.5)
    return np.clip(grey * (1 + tint), 0.01, 1.0)


def photo_options(seed: int) -> dict:
    """Everything a `photo` look varies for one groom (stored in meta.json "render")."""
    rng = np.random.default_rng([seed, 3])
    # Skin from very dark to pale, with a little hue variation.
    tone = rng.uniform(0.12, 1.0)
    skin = (np.array([0.72, 0.50, 0.40]) * tone + np.array([0.05, 0.03, 0.02])) * (
        1 + rng.normal(0, 0.05, 3))
    azimuth = rng.uniform(-1.1, 1.1)
    elevation = rng.uniform(-0.1, 0.9)
    direction = [math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                 math.cos(azimuth) * math.cos(elevation)]
    warmth = rng.uniform(-0.15, 0.15)
    color = rng.uniform(0.75, 1.35) * np.array([1 + warmth, 1.0, 1 - warmth])
    # Grey and white hair: a share of unpigmented strands among the pigmented ones.
    greyness = float(rng.uniform(0.35, 1.0)) if rng.random() < 0.14 else 0.0
    return {
        "look": "photo",
        "skin": np.round(np.clip(skin, 0.01, 1), 4).tolist(),
        "background": {"kind": str(rng.choice(["flat", "gradient", "blotches", "blocks"])),
                       "seed": int(rng.integers(2**31))},
        "lighting": {"direction": np.round(direction, 4).tolist(),
                     "color": np.round(color, 4).tolist(),
                     "ambient": round(float(rng.uniform(0.15, 0.5)), 4)},
        "clothing": np.round(_colour(rng, 0.02, 0.8), 4).tolist(),
        "frame": {"scale": round(float(rng.uniform(0.9, 1.12)), 4),
                  "shift": np.round(rng.uniform(-0.04, 0.04, 2), 4).tolist()},
        "greyness": round(greyness, 4),
        "blur_px": round(float(rng.uniform(0.0, 1.3)), 4),
        "noise": round(float(rng.uniform(0.0, 0.025)), 4),
        "jpeg_quality": int(rng.integers(35, 96)),
        "yaw_degrees": 0.0,
    }


def background_image(spec: dict, size: int) -> np.ndarray:
    """A linear-RGB background [size,size,3]: flat, a gradient, soft blotches or blurred blocks."""
    import cv2

    rng = np.random.default_rng(spec["seed"])
    a, b = _colour(rng), _colour(rng)
    kind = spec["kind"]
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if kind == "flat":
        return np.broadcast_to(a, (size, size, 3)).copy()
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = np.clip(0.5 + (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle), 0, 1)
        return a * (1 - t[..., None]) + b * t[..., None]
    if kind == "blotches":
        cells = int(rng.integers(2, 7))
        small = np.stack([_colour(rng) for _ in range(cells * cells)]).reshape(cells, cells, 3)
        return np.clip(cv2.resize(small.astype(np.float32), (size, size),
                                  interpolation=cv2.INTER_CUBIC), 0.01, 1).astype(np.float64)
    image = np.broadcast_to(a, (size, size, 3)).copy()
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 8, size, 2)
        image[y0:y0 + h, x0:x0 + w] = _colour(rng)
    sigma = size / 40
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma).astype(np.float64)


def strand_albedos(style, count: int, greyness: float, seed: int) -> np.ndarray:
    """Per-strand linear-RGB colours: the style's hair colour with a little variation, and a
    `greyness` share of unpigmented (white) strands."""
    from tressel.synth.render import hair_albedo

    rng = np.random.default_rng([seed, 4])
    base = hair_albedo(style.melanin, style.redness)
    albedo = base[None] * np.exp(rng.normal(0, 0.08, (count, 1)))
    white = hair_albedo(0.0, 0.0) * np.array([1.0, 1.0, 1.08])
    grey = rng.random(count) < greyness
    albedo[grey] = white[None] * np.exp(rng.normal(0, 0.05, (int(grey.sum()), 1)))
    return np.clip(albedo, 0, 1)


def photo_finish(image: np.ndarray, options: dict) -> np.ndarray:
    """Camera blur, sensor noise and JPEG compression of an sRGB uint8 render."""
    import cv2

    rng = np.random.default_rng(options["background"]["seed"] + 1)
    out = image.astype(np.float32)
    if options["blur_px"] > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), options["blur_px"])
    out = out + rng.normal(0, 255 * options["noise"], out.shape).astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", out[..., ::-1],
                               [cv2.IMWRITE_JPEG_QUALITY, options["jpeg_quality"]])
    if not ok:
        raise OSError("JPEG encoding of a synthetic render failed")
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def photo_style(style, seed: int, greyness: float):
    """The `photo` look's hair colours: melanin spread evenly from blonde to black, some red
    hair, and grey/white hair whose material (what rgb2material learns) is the average."""
    from dataclasses import replace

    rng = np.random.default_rng([seed, 5])
    melanin = float(rng.uniform(0.0, 1.0))
    redness = float(rng.beta(1.2, 4.0))
    if rng.random() < 0.15:  # red hair
        melanin, redness = float(rng.uniform(0.15, 0.55)), float(rng.uniform(0.6, 1.0))
    if greyness > 0:
        redness *= 1 - greyness
    return replace(style, melanin=melanin, redness=redness)


def make_sample(folder: Path, seed: int, num_strands: int, image_size: int,
                look: str = "plain") -> dict:
    """Grow, render and write one groom; returns its meta."""
    from tressel.synth.groom import generate_groom, grow_groom, sample_style
    from tressel.synth.render import render_groom, write_png

    if look == "plain":
        groom = generate_groom(seed, num_strands)
        style = groom.style
        options = render_options(seed)
        image = render_groom(
            groom.positions, style.melanin, style.redness,
            (style.root_darkness_start, style.root_darkness_end, style.root_darkness_strength),
            size=image_size, skin=options["skin"], background=options["background"])
        material = style.material_raw()
    elif look == "photo":
        options = photo_options(seed)
        style = photo_style(sample_style(np.random.default_rng([seed, 0])), seed,
                            options["greyness"])
        groom = grow_groom(style, num_strands, seed, frame_face=True)
        albedo = strand_albedos(style, len(groom.positions), options["greyness"], seed)
        image = render_groom(
            groom.positions, style.melanin, style.redness,
            (style.root_darkness_start, style.root_darkness_end, style.root_darkness_strength),
            size=image_size, skin=options["skin"],
            background=background_image(options["background"], image_size),
            lighting=options["lighting"], clothing=options["clothing"],
            frame=options["frame"], strand_albedo=albedo)
        image = photo_finish(image, options)
        material = style.material_raw()
        # What the photo shows: white strands lighten the hair as a whole.
        material[3] = style.melanin * (1 - options["greyness"])
    else:
        raise ConfigError(f"unknown synthetic look {look!r} (known: {', '.join(LOOKS)})")
    folder.mkdir(parents=True, exist_ok=True)
    write_strands(folder / "strands.npz", groom.positions, groom.root_uv)
    write_png(folder / "render.png", image)
    meta = {"seed": seed, "style": style.to_dict(), "material_raw": material,
            "num_strands": len(groom.positions), "render": options}
    write_json(folder / "meta.json", meta)
    return meta


def synthesize(out: Path, count: int, seed: int = 0, num_strands: int = 4096,
               image_size: int = 224, progress: ProgressFn | None = None,
               cancel=None, look: str = "plain", workers: int = 1) -> Path:
    """Write (or complete) a dataset of `count` grooms; existing finished grooms are kept.

    `workers` > 1 grows and renders grooms in that many processes; every groom depends on its
    seed alone, so the files are the same either way."""
    from tressel.synth.head import write_scalp_ply

    if count < 1 or num_strands < 1 or image_size < 16:
        raise ConfigError("synth needs --count >= 1, --strands >= 1 and --size >= 16")
    if look not in LOOKS:
        raise ConfigError(f"unknown synthetic look {look!r} (known: {', '.join(LOOKS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "dataset.json"
    if index_path.exists():
        old = json.loads(index_path.read_text())
        if (old.get("seed"), old.get("strands"), old.get("image_size"),
                old.get("look", "plain")) != (seed, num_strands, image_size, look):
            raise ConfigError(f"{out} holds a dataset made with other settings "
                              f"(seed {old.get('seed')}, strands {old.get('strands')}, size "
                              f"{old.get('image_size')}, look {old.get('look', 'plain')}): "
                              "choose an empty --out folder")
    write_scalp_ply(out / "scalp.ply")
    progress = progress or no_progress
    names = [f"g{index:06d}" for index in range(count)]
    todo = [i for i, name in enumerate(names) if not (out / name / "meta.json").exists()]
    done = count - len(todo)
    progress("synth", done, count)
    if workers > 1 and len(todo) > 1:
        import multiprocessing

        # spawn: a fresh interpreter per worker, no forked torch/thread state.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            jobs = [(out / names[i], groom_seed(seed, i), num_strands, image_size, look)
                    for i in todo]
            for _ in pool.imap_unordered(_make_sample_job, jobs):
                check_cancel(cancel)
                done += 1
                progress("synth", done, count)
    else:
        for index in todo:
            check_cancel(cancel)
            make_sample(out / names[index], groom_seed(seed, index), num_strands, image_size,
                        look)
            done += 1
            progress("synth", done, count)
    index = {"format": FORMAT, "count": count, "seed": seed, "strands": num_strands,
             "image_size": image_size}
    if look != "plain":
        index["look"] = look
    write_json(index_path, {**index, "grooms": names})
    return out


def _make_sample_job(job: tuple) -> None:
    make_sample(*job)


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

"""The real portraits that test packages ship, and numpy-only variants of them (gray, small...).

Used by tests/test_face.py and by tests/make_face_reference.py, which runs MediaPipe's own
FaceLandmarker in a separate environment; both must build byte-identical variants, so only numpy
integer operations are used here (no resampling library whose version could differ).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

# name -> (package that ships it, how to find the file); astronaut comes from skimage.data.
PORTRAITS = ("astronaut", "grace_hopper", "luispedro", "lena")
VARIANTS = ("orig", "gray", "small", "large", "mirror")
SMALL_CANVAS = 4  # "small": the photo in a mid-gray canvas this many times its size
LARGE_FACTOR = 6  # "large": every pixel repeated this many times per axis (a 3 Mpx+ photo)


def portrait_path(name: str) -> Path | None:
    """The file of a portrait shipped by a package (None for astronaut: skimage.data)."""
    if name == "grace_hopper":
        import matplotlib.cbook

        return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if name in ("luispedro", "lena"):
        import mahotas

        return Path(mahotas.__file__).parent / "demos" / "data" / f"{name}.jpg"
    return None


def load_portrait(name: str, read_rgb: Callable[[Path], np.ndarray]) -> np.ndarray:
    """uint8 [H, W, 3] RGB; `read_rgb` decodes a JPEG path (OpenImageIO here, PIL elsewhere)."""
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    return np.ascontiguousarray(read_rgb(portrait_path(name)))


def make_variant(image: np.ndarray, variant: str) -> np.ndarray:
    """One of VARIANTS of a uint8 RGB image, with numpy integer operations only."""
    h, w = image.shape[:2]
    if variant == "orig":
        return image
    if variant == "gray":
        luma = (image.astype(np.uint32) @ np.array([299, 587, 114], np.uint32)) // 1000
        return np.repeat(luma.astype(np.uint8)[:, :, None], 3, axis=2)
    if variant == "small":
        canvas = np.full((h * SMALL_CANVAS, w * SMALL_CANVAS, 3), 128, np.uint8)
        y0, x0 = small_offset(h, w)
        canvas[y0:y0 + h, x0:x0 + w] = image
        return canvas
    if variant == "large":
        return np.repeat(np.repeat(image, LARGE_FACTOR, axis=0), LARGE_FACTOR, axis=1)
    if variant == "mirror":
        return np.ascontiguousarray(image[:, ::-1])
    raise ValueError(f"unknown variant {variant}")


def small_offset(h: int, w: int) -> tuple[int, int]:
    """Where "small" places the photo in its canvas: off-centre, so tiles must find it."""
    return (SMALL_CANVAS - 2) * h, w // 2


def map_points(points: dict[str, float], variant: str, h: int, w: int) -> dict[str, float]:
    """Crop points (pixels, keys left_x, right_x, forehead_y, chin_y) of the original photo
    carried into a variant's pixels (for variants where the reference model finds no face)."""
    if variant in ("orig", "gray"):
        return dict(points)
    if variant == "small":
        y0, x0 = small_offset(h, w)
        return {"left_x": points["left_x"] + x0, "right_x": points["right_x"] + x0,
                "forehead_y": points["forehead_y"] + y0, "chin_y": points["chin_y"] + y0}
    if variant == "large":
        return {k: v * LARGE_FACTOR for k, v in points.items()}
    if variant == "mirror":  # the mesh's 234 stays on the image's left, so the sides swap
        return {"left_x": w - points["right_x"], "right_x": w - points["left_x"],
                "forehead_y": points["forehead_y"], "chin_y": points["chin_y"]}
    raise ValueError(f"unknown variant {variant}")

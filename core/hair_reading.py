"""Measure the hair in a portrait, in centimetres: how far it falls, how high it stands, its colour.

The demo model's image encoder was taught on renders, and on real photos it reads nearly every
head as long hair (issue 16: a close crop came out 22 cm long). This module measures what the
demo cannot read, straight from the photo, with two models that were trained on real people: the
face mesh Tressel already runs for the crop (where the face is, and its scale) and MediaPipe's
selfie segmentation (where the person ends and the background begins). Jobs on bundles with a
style head (the demo) set strand length, colour and, for an afro's silhouette, the curl from it
(`tressel.pipeline`); DiffLocks bundles, whose DINOv2 features transfer to photos, are left as
their model made them.

The measurement, in a window `WINDOW_FACES` face heights wide, turned so the eyes are level:

1. Scale: `PUPIL_DISTANCE_CM` between the iris centres, measured in 3D on the mesh so that a
   turned head is not foreshortened.
2. Skin: the median CIELAB colour inside the face mesh.
3. Hair seeds: person pixels outside the face, above the eyes and within a band around the
   head, whose colour is more than `SKIN_DELTA_E` from the skin (`FAINT_SKIN_DELTA_E` where the
   head's outline stands off the skull, so there must be hair, however close to the skin's
   colour). When fewer than `MIN_HAIR_SHARE` of that band are seeds, the head is bald or
   shaved.
4. Hair colours: the seeds in two colour clusters, when they differ (a hat over hair); the hair
   colour is the cluster beside the face, where hats do not reach.
5. Hair: person pixels outside the face, nearer a hair colour than the skin, connected to seeds.
6. Measures: `fall_cm`, how far below the eyes hair continues beside the face and neck without a
   gap; `top_cm`, the head's outline above the eyes (hair plus skull); `side_cm`, how far the
   outline reaches beyond the face at the temples.
7. Texture: in a finer window (`TEXTURE_FACES` face heights across `TEXTURE_SIZE` pixels), the
   coherence of the image's structure tensor over the hair (`strand_coherence`): near 1 where
   strands run side by side (straight or wavy hair, at the scale of a few millimetres), low
   where they turn within it (coils) or where there is no strand to see (a close crop). Skipped
   when the photo is too coarse to show it.

Limits: hats read as hair height (not as length); hair lying on clothes of its own colour may be
followed down them; a beard below the jaw can add to `fall_cm`. Jobs skip the reading without a
confident face mesh (`tressel.pipeline`).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tressel.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).resolve().parent / "data" / "segmentation" / "selfie_segmentation.tflite"
SEGMENT_SIZE = 256  # the segmentation model's square input
WINDOW_SIZE = 384  # analysis window, pixels
WINDOW_FACES = 4.0  # window width in face heights (the DiffLocks crop is 2.8): room for long hair
TEXTURE_SIZE = 512  # the texture window, pixels ...
TEXTURE_FACES = 2.0  # ... and face heights across (about 0.6 mm per pixel)
TEXTURE_SCALE_CM = 0.3  # structure tensor integration scale (Gaussian sigma)
TEXTURE_MAX_SOURCE_CM = 0.2  # the photo must resolve this much per pixel for a texture reading
EYE_ROW = 0.38  # where the eyes sit in the window, from the top

PUPIL_DISTANCE_CM = 6.3  # adult mean interpupillary distance
SKIN_DELTA_E = 15.0  # a seed differs from the skin by more than this (CIELAB)
FAINT_SKIN_DELTA_E = 8.0  # ... or by this much, where the outline shows hair (OUTLINE_HAIR_CM)
OUTLINE_HAIR_CM = 1.5  # an outline this far off the skull (top or temples) is hair
HAIR_DELTA_E = 24.0  # a hair pixel is within this of a hair colour (and nearer it than the skin)
CLUSTER_DELTA_E = 20.0  # two seed clusters this far apart are two things (a hat over hair)
MIN_HAIR_SHARE = 0.3  # of the band around the head: fewer seeds than this is a bald head
SKULL_ABOVE_EYES_CM = 10.5  # outline above the eye line of a shaved head (the skull alone)
SKULL_BEYOND_FACE_CM = 1.5  # outline beyond the face mesh at the temples, without hair
FALL_GAP_CM = 1.0  # hair beside the face may break for this long (an ear) and still continue
FALL_MIN_WIDTH_CM = 2.0  # hair across a row (both sides together) for it to count as falling
FALLS_PAST_EARS_CM = 6.0  # hair reaching this far below the eyes falls, it does not stand
OVER_THE_HEAD_CM = 10.0  # a falling strand's length above the eye line (crown to temple)
# Strand coherence (see `strand_coherence`) on the test portraits: long straight hair 0.72,
# brushed short hair 0.57-0.60, a close crop 0.38. Coils turn within a few millimetres.
AFRO_MAX_COHERENCE = 0.6  # a tall, wide outline of hair more coherent than this is not coiled
SHORT_AFRO_MAX_COHERENCE = 0.45  # ... and a thinner one must be less coherent than this
SHORT_AFRO_MIN_CM = 2.0  # ... and stand at least this far off the skull (a close crop does not)

# Photographed hair lightness (CIELAB L*) → melanin, the demo's colour parameter
# (tressel.synth.render.hair_albedo). Photographed hair is lighter than its albedo (sheen, the
# exposure set for the face), so the anchors are placed at the lightness of typical photographed
# black, dark-brown, brown, dark-blonde, blonde and white hair.
LIGHTNESS_TO_MELANIN = ((12.0, 0.92), (22.0, 0.8), (35.0, 0.6), (48.0, 0.4), (62.0, 0.22),
                        (80.0, 0.06))

# Mesh landmarks: the iris centres (478-point mesh), forehead top and chin.
RIGHT_IRIS, LEFT_IRIS, FOREHEAD, CHIN = 468, 473, 10, 152


class SegmentationUnavailable(ConfigError):
    """The person segmentation model cannot run here (LiteRT missing or the model file absent)."""


@dataclass(frozen=True)
class HairMeasurements:
    """What the photo shows, in centimetres at the face's distance."""

    cm_per_px: float
    hair_share: float  # seeds / band around the head (below MIN_HAIR_SHARE: no hair)
    top_cm: float  # outline above the eye line
    fall_cm: float  # hair continues this far below the eye line beside the face
    side_cm: float  # outline beyond the face at the temples
    hair_lab: tuple[float, float, float] | None  # CIELAB (L* 0-100) of the hair, None if bald
    skin_lab: tuple[float, float, float]
    coherence: float | None = None  # strand-direction coherence over the hair (0-1), if seen


@dataclass(frozen=True)
class HairReading:
    """The groom a photo asks for, and the measurements it comes from."""

    length_cm: float  # typical strand arc length
    melanin: float | None  # None: no hair to take a colour from
    curl_type: str | None  # "coily" for an afro's outline, else None (the model's reading stands)
    measurements: HairMeasurements

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        m = self.measurements
        colour = "no hair seen" if self.melanin is None else f"melanin {self.melanin:.2f}"
        curl = f", {self.curl_type}" if self.curl_type else ""
        texture = "" if m.coherence is None else f", strand coherence {m.coherence:.2f}"
        return (f"{self.length_cm:.1f} cm strands, {colour}{curl} (hair falls {m.fall_cm:.1f} cm "
                f"below the eyes, outline {m.top_cm:.1f} cm above them and {m.side_cm:.1f} cm "
                f"beyond the face{texture})")


# ---------------------------------------------------------------------------------------------
# the model call


class PersonSegmenter:
    """MediaPipe's selfie segmentation in LiteRT; calls are serialised (not re-entrant)."""

    def __init__(self, model_file: Path | None = None, threads: int = 1):
        model_file = model_file or MODEL_FILE
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise SegmentationUnavailable(
                f"reading the hair needs `ai-edge-litert` ({exc}): `pip install ai-edge-litert`"
            ) from exc
        if not Path(model_file).is_file():
            raise SegmentationUnavailable(f"segmentation model missing: {model_file}: "
                                          "reinstall Tressel")
        self._lock = threading.Lock()
        self.interpreter = Interpreter(model_path=str(model_file), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]

    def person_probability(self, image: np.ndarray) -> np.ndarray:
        """float32 [H, W] in [0, 1] for a uint8 RGB image [H, W, 3]."""
        import cv2
        import numpy as np

        height, width = image.shape[:2]
        small = cv2.resize(image, (SEGMENT_SIZE, SEGMENT_SIZE), interpolation=cv2.INTER_AREA)
        with self._lock:
            self.interpreter.set_tensor(self._input,
                                        small.astype(np.float32)[None] / np.float32(255))
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self._output)[0, :, :, 0].copy()
        return cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=1)
def load_segmenter() -> PersonSegmenter:
    """The process-wide segmenter (loaded once, a few milliseconds)."""
    return PersonSegmenter()


# ---------------------------------------------------------------------------------------------
# the window


def _placement(mesh: np.ndarray, size: int, faces: float) -> tuple[float, float, np.ndarray]:
    """(angle, scale, eyes) of a window on `mesh`: the eye line's angle, photo-to-window scale
    (the face `size / faces` high) and the eyes' midpoint in photo pixels."""
    import numpy as np

    right, left = mesh[RIGHT_IRIS, :2], mesh[LEFT_IRIS, :2]
    face_height = float(np.linalg.norm(mesh[FOREHEAD] - mesh[CHIN]))
    if face_height < 1:
        raise ValueError("degenerate face mesh")
    angle = math.atan2(left[1] - right[1], left[0] - right[0])
    return angle, size / (faces * face_height), (right + left) / 2


def _affine(angle: float, scale: float, eyes: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine turning by -angle and scaling about `eyes`, which land centred at
    `EYE_ROW` from the top of a `size`-pixel window."""
    import numpy as np

    cos, sin = math.cos(-angle) * scale, math.sin(-angle) * scale
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.array([size / 2, EYE_ROW * size]) - linear @ eyes
    return np.hstack([linear, offset[:, None]])


def window_transform(mesh: np.ndarray, size: int = WINDOW_SIZE,
                     faces: float = WINDOW_FACES) -> np.ndarray:
    """The 2x3 affine from photo pixels to `face_window`'s window: eyes level, their midpoint
    centred at `EYE_ROW`, the face `size / faces` high."""
    import numpy as np

    angle, scale, eyes = _placement(np.asarray(mesh, np.float64), size, faces)
    return _affine(angle, scale, eyes, size)


def face_window(frame: np.ndarray, mesh: np.ndarray, size: int = WINDOW_SIZE,
                faces: float = WINDOW_FACES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window uint8 [size, size, 3], mesh [478, 3] in window pixels, in_photo bool [size,
    size]): the photo through `window_transform`, black outside the photo (`in_photo` False
    there)."""
    import cv2
    import numpy as np

    mesh = np.asarray(mesh, np.float64)
    angle, scale, eyes = _placement(mesh, size, faces)
    source = frame
    if scale < 0.5:  # shrink with an area filter first: bilinear warping would alias
        pre = max(scale * 2, 1e-3)
        source = cv2.resize(frame, None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
        mesh = mesh.copy()
        mesh[:, :2] *= [source.shape[1] / frame.shape[1], source.shape[0] / frame.shape[0]]
        mesh[:, 2] *= source.shape[1] / frame.shape[1]
        eyes = (mesh[RIGHT_IRIS, :2] + mesh[LEFT_IRIS, :2]) / 2
        scale /= source.shape[1] / frame.shape[1]
    matrix = _affine(angle, scale, eyes, size)
    window = cv2.warpAffine(np.ascontiguousarray(source), matrix, (size, size),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    in_photo = cv2.warpAffine(np.full(source.shape[:2], 255, np.uint8), matrix, (size, size),
                              flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
    points = np.empty_like(mesh)
    points[:, :2] = mesh[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    points[:, 2] = mesh[:, 2] * scale
    return window, points, in_photo


# ---------------------------------------------------------------------------------------------
# the measurement (no model calls: tests feed it drawn images)


def to_lab(image: np.ndarray) -> np.ndarray:
    """CIELAB float32 [H, W, 3] (L* 0-100) of a uint8 sRGB image."""
    import cv2
    import numpy as np

    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    return lab * np.float32([100 / 255, 1, 1]) - np.float32([0, 128, 128])


def measure_hair(window: np.ndarray, person: np.ndarray, mesh: np.ndarray,
                 in_photo: np.ndarray | None = None) -> HairMeasurements:
    """Measure the hair in an eyes-level window (`face_window`), given the person probability
    [H, W], the mesh [478, 3] in window pixels and which pixels lie inside the photo."""
    return hair_region(window, person, mesh, in_photo)[0]


def hair_region(window: np.ndarray, person: np.ndarray, mesh: np.ndarray,
                in_photo: np.ndarray | None = None) -> tuple[HairMeasurements, np.ndarray]:
    """`measure_hair`, and the hair it found (bool [H, W]; empty for a bald head)."""
    import cv2
    import numpy as np

    size = window.shape[0]
    points = np.asarray(mesh, np.float64)
    cm_per_px = PUPIL_DISTANCE_CM / max(float(np.linalg.norm(points[LEFT_IRIS] - points[RIGHT_IRIS])),
                                        1e-6)
    eye_x, eye_y = (points[RIGHT_IRIS, :2] + points[LEFT_IRIS, :2]) / 2
    face = np.zeros(window.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(points[:468, :2]).astype(np.int32)), 1)
    face_top, face_bottom = points[:468, 1].min(), points[:468, 1].max()
    face_half_width = (points[:468, 0].max() - points[:468, 0].min()) / 2
    face_height = face_bottom - face_top
    lab = to_lab(window)
    inside = cv2.erode(face, np.ones((5, 5), np.uint8)) > 0
    skin = np.median(lab[inside], axis=0) if inside.any() else np.median(lab[face > 0], axis=0)
    is_person = person > 0.5
    if in_photo is not None:  # the black beyond the photo's edge is neither person nor hair
        is_person &= cv2.erode(in_photo.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    is_person = _this_person(is_person, face)
    margin = max(3, round(0.6 / cm_per_px))  # 6 mm clear of the face outline
    outside_face = cv2.dilate(face, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) == 0
    rows = np.arange(size, dtype=np.float64)[:, None]
    cols = np.arange(size, dtype=np.float64)[None, :]
    to_skin = np.linalg.norm(lab - skin, axis=-1)

    # The band around the head above the eyes: where hair grows (or a bald scalp shows).
    band = ((rows < eye_y) & (rows > face_top - 0.9 * face_height)
            & (np.abs(cols - eye_x) < face_half_width + 0.5 * face_height))
    around = is_person & outside_face & band
    seeds = around & (to_skin > SKIN_DELTA_E)
    hair_share = float(seeds.sum() / max(int(around.sum()), 1))
    top_cm = _outline_above_eyes(is_person, eye_x, eye_y, points, cm_per_px)
    side_cm = _outline_beyond_face(is_person, face, eye_y, face_top, cm_per_px)
    outline_cm = max(top_cm - SKULL_ABOVE_EYES_CM, side_cm - SKULL_BEYOND_FACE_CM)
    if hair_share < MIN_HAIR_SHARE and outline_cm >= OUTLINE_HAIR_CM:
        # The outline stands off the skull, so there is hair, close to the skin's colour
        # (fair blonde on fair skin): look again with a finer colour difference.
        seeds = around & (to_skin > FAINT_SKIN_DELTA_E)
        hair_share = float(seeds.sum() / max(int(around.sum()), 1))
    if hair_share < MIN_HAIR_SHARE or seeds.sum() < 20:
        return (HairMeasurements(cm_per_px, hair_share, top_cm, 0.0, side_cm, None,
                                 tuple(float(v) for v in skin)),
                np.zeros(window.shape[:2], bool))

    # Seeds on the boundary of hair and skin blend the two: the colour comes from the half of
    # the seeds least like the skin.
    seeds &= to_skin >= np.median(to_skin[seeds])
    beside = seeds & (np.abs(cols - eye_x) > face_half_width) & (rows > face_top)
    colours = _seed_colours(lab[seeds], lab[beside] if beside.sum() >= 10 else lab[seeds])
    hair = np.zeros(window.shape[:2], bool)
    for colour in colours:
        to_hair = np.linalg.norm(lab - colour, axis=-1)
        hair |= is_person & outside_face & (to_hair < to_skin) & (to_hair < HAIR_DELTA_E)
    _count, labels = cv2.connectedComponents(hair.astype(np.uint8), connectivity=8)
    seeded = np.unique(labels[seeds & hair])
    hair = np.isin(labels, seeded[seeded > 0])
    fall_cm = _fall_below_eyes(hair, eye_x, eye_y, face_half_width, cm_per_px)
    return (HairMeasurements(cm_per_px, hair_share, top_cm, fall_cm, side_cm,
                             tuple(float(v) for v in colours[0]), tuple(float(v) for v in skin)),
            hair)


def strand_coherence(gray: np.ndarray, hair: np.ndarray, sigma_px: float) -> float | None:
    """Coherence (lambda1 - lambda2) / (lambda1 + lambda2) of the structure tensor integrated
    over `sigma_px`, averaged over the `hair` pixels weighted by edge energy; None where there
    are too few hair pixels to say."""
    import cv2
    import numpy as np

    core = cv2.erode(hair.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if core.sum() < 200:
        return None
    image = gray.astype(np.float32) / np.float32(255)
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), sigma_px)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), sigma_px)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), sigma_px)
    energy = jxx + jyy
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / np.maximum(energy, 1e-12)
    weight = energy[core]
    if float(weight.sum()) <= 0:
        return None
    return float((coherence[core] * weight).sum() / weight.sum())


def _this_person(is_person: np.ndarray, face: np.ndarray) -> np.ndarray:
    """The person region connected to the face: another person in the photo (their hair beside
    this face) is not this person's hair. Unchanged when the face is not in the region."""
    import cv2
    import numpy as np

    _count, labels = cv2.connectedComponents(is_person.astype(np.uint8), connectivity=8)
    on_face = labels[(face > 0) & is_person]
    if len(on_face) == 0:
        return is_person
    return labels == np.bincount(on_face).argmax()


def _seed_colours(seeds: np.ndarray, beside: np.ndarray) -> list[np.ndarray]:
    """The hair colour first, then a second seed colour (a hat, a highlight) if there is one."""
    import cv2
    import numpy as np

    median = np.median(seeds, axis=0)
    if len(seeds) < 40:
        return [median]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(np.ascontiguousarray(seeds, np.float32), 2, None, criteria,
                                    3, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    share = np.bincount(labels, minlength=2) / len(labels)
    if np.linalg.norm(centres[0] - centres[1]) < CLUSTER_DELTA_E or share.min() < 0.15:
        return [median]
    # The hair is the cluster beside the face, where a hat does not reach.
    near = np.argmin(np.linalg.norm(beside[:, None] - centres[None], axis=-1), axis=1)
    first = int(np.bincount(near, minlength=2).argmax())
    return [np.median(seeds[labels == first], axis=0), np.median(seeds[labels != first], axis=0)]


def _outline_above_eyes(person: np.ndarray, eye_x: float, eye_y: float, points: np.ndarray,
                        cm_per_px: float) -> float:
    """How high the head's outline rises above the eye line, over the middle of the forehead."""

    half = max(1, int(abs(points[LEFT_IRIS, 0] - points[RIGHT_IRIS, 0]) / 2))
    x0, x1 = int(eye_x) - half, int(eye_x) + half + 1
    column = person[:int(eye_y), max(x0, 0):max(x1, 1)]
    # The head's outline is the top of the run of person pixels that reaches the eyes.
    filled = column.mean(axis=1) > 0.5
    top = int(eye_y)
    for row in range(len(filled) - 1, -1, -1):
        if not filled[row]:
            break
        top = row
    return float((eye_y - top) * cm_per_px)


def _outline_beyond_face(person: np.ndarray, face: np.ndarray, eye_y: float, face_top: float,
                         cm_per_px: float) -> float:
    """How far the outline reaches past the face at the temples (mean of both sides)."""
    import numpy as np

    row = round((eye_y + face_top) / 2)
    face_cols = np.nonzero(face[row])[0]
    if len(face_cols) == 0:
        return 0.0
    left_edge, right_edge = face_cols.min(), face_cols.max()
    line = person[row]
    reach = []
    for start, step in ((left_edge, -1), (right_edge, 1)):
        x = start
        while 0 <= x + step < len(line) and line[x + step]:
            x += step
        reach.append(abs(x - start))
    return float(np.mean(reach) * cm_per_px)


def _fall_below_eyes(hair: np.ndarray, eye_x: float, eye_y: float, face_half_width: float,
                     cm_per_px: float) -> float:
    """How far below the eye line hair continues beside the face, allowing short gaps."""
    import numpy as np

    width = hair.shape[1]
    cols = np.abs(np.arange(width) - eye_x)
    lateral = (cols > 0.8 * face_half_width) & (cols < 2.6 * face_half_width)
    per_row = (hair[:, lateral]).sum(axis=1)
    # Falling hair is a lock, not a line: a shadow along the neck or a dark seam is thinner.
    needed = max(2, round(FALL_MIN_WIDTH_CM / cm_per_px))
    gap_rows = max(1, round(FALL_GAP_CM / cm_per_px))
    last = int(eye_y)
    for row in range(int(eye_y), hair.shape[0]):
        if per_row[row] >= needed:
            last = row
        elif row - last > gap_rows:
            break
    return float((last - eye_y) * cm_per_px)


# ---------------------------------------------------------------------------------------------
# from measurements to a groom


def melanin_from_lightness(lightness: float) -> float:
    """Melanin for photographed hair of CIELAB lightness L* (`LIGHTNESS_TO_MELANIN`)."""
    import numpy as np

    xs, ys = zip(*LIGHTNESS_TO_MELANIN)
    return float(np.interp(lightness, xs, ys))


def reading_from_measurements(m: HairMeasurements) -> HairReading:
    """The length, colour and (for an afro) curl the measurements ask for."""
    stands = max(0.0, m.top_cm - SKULL_ABOVE_EYES_CM)  # hair standing on top of the skull
    puff = max(0.0, m.side_cm - SKULL_BEYOND_FACE_CM)
    if m.hair_lab is None:
        return HairReading(0.5, None, None, m)  # bald or shaved: stubble
    melanin = melanin_from_lightness(m.hair_lab[0])
    if m.fall_cm >= FALLS_PAST_EARS_CM:
        return HairReading(round(OVER_THE_HEAD_CM + m.fall_cm, 2), melanin, None, m)
    thickness = max(stands, puff)
    coherent = m.coherence is not None and m.coherence >= AFRO_MAX_COHERENCE
    big_afro = stands >= 4.0 and puff >= 3.0 and not coherent
    # A short afro: hair standing a few centimetres around the head whose strands do not run
    # side by side (coils), unlike brushed short hair.
    short_afro = (thickness >= SHORT_AFRO_MIN_CM and m.coherence is not None
                  and m.coherence < SHORT_AFRO_MAX_COHERENCE)
    if big_afro or short_afro:
        # Coiled strands are about twice as long as the hair stands.
        return HairReading(round(min(max(2.0 * thickness, 5.0), 30.0), 2), melanin, "coily", m)
    # Short hair: about twice as long as it is thick on the head, on top or at the temples.
    return HairReading(round(min(max(1.0 + 2.0 * thickness, 0.8), 12.0), 2), melanin, None, m)


def read_hair(frame: np.ndarray, mesh: np.ndarray) -> HairReading:
    """Read the hair of the face whose 478-point mesh ([478, 3], photo pixels) is given, in a
    uint8 RGB photo. Raises SegmentationUnavailable where the segmentation cannot run."""

    window, points, in_photo = face_window(frame, mesh)
    person = load_segmenter().person_probability(window)
    measured, hair = hair_region(window, person, points, in_photo)
    coherence = hair_texture(frame, mesh, hair)
    if coherence is not None:
        measured = replace(measured, coherence=round(coherence, 4))
    reading = reading_from_measurements(measured)
    log.info("hair reading: %s", reading.describe())
    return reading


def hair_texture(frame: np.ndarray, mesh: np.ndarray, hair: np.ndarray) -> float | None:
    """`strand_coherence` of the hair found in the analysis window (`hair`, bool [WINDOW_SIZE,
    WINDOW_SIZE]), measured in the finer texture window; None when the photo is too coarse."""
    import cv2
    import numpy as np

    points = np.asarray(mesh, np.float64)
    pupils_px = float(np.linalg.norm(points[LEFT_IRIS] - points[RIGHT_IRIS]))
    if pupils_px <= 0:
        return None
    source_cm_per_px = PUPIL_DISTANCE_CM / pupils_px
    if source_cm_per_px > TEXTURE_MAX_SOURCE_CM:
        return None
    texture, _, _ = face_window(frame, mesh, TEXTURE_SIZE, TEXTURE_FACES)
    # The hair mask follows from the analysis window to the texture window through the photo.
    to_texture = window_transform(points, TEXTURE_SIZE, TEXTURE_FACES)
    from_main = cv2.invertAffineTransform(window_transform(points))
    matrix = to_texture[:, :2] @ from_main
    matrix[:, 2] += to_texture[:, 2]
    hair_fine = cv2.warpAffine(hair.astype(np.uint8), matrix, (TEXTURE_SIZE, TEXTURE_SIZE),
                               flags=cv2.INTER_NEAREST) > 0
    cm_per_px = source_cm_per_px / float(np.hypot(to_texture[0, 0], to_texture[1, 0]))
    gray = cv2.cvtColor(texture, cv2.COLOR_RGB2GRAY)
    return strand_coherence(gray, hair_fine, TEXTURE_SCALE_CM / cm_per_px)


def fit_strand_lengths(strands: np.ndarray, length_m: float, max_scale: float = 1.6
                       ) -> np.ndarray:
    """Strands [N, V, 3] brought to a median arc length of `length_m`, each keeping its length
    relative to the others and its root.

    Shorter: each strand is cut at its new length and its V points spread evenly along what
    is left. Short hair is the first stretch of a strand's path from the root, not a miniature
    of a long strand (that would fold its hang into millimetres and lie inside the scalp).
    Longer: strands are scaled about their roots, at most by `max_scale` (a longer copy of a
    short strand would stick out, not hang)."""
    import numpy as np

    if len(strands) == 0:
        return strands
    points = np.asarray(strands, np.float64)
    segments = np.linalg.norm(np.diff(points, axis=1), axis=-1)  # [N, V-1]
    arc = np.concatenate([np.zeros((len(points), 1)), np.cumsum(segments, axis=1)], axis=1)
    median = float(np.median(arc[:, -1]))
    if median <= 0:
        return strands
    factor = length_m / median
    if factor >= 1.0:
        roots = points[:, :1]
        return (roots + (points - roots) * min(factor, max_scale)).astype(strands.dtype)
    count, vertices = arc.shape
    targets = arc[:, -1:] * factor * np.linspace(0.0, 1.0, vertices)[None]  # [N, V]
    # One sorted array for all strands: each strand's arc lengths offset past the previous.
    offsets = np.arange(count)[:, None] * (float(arc[:, -1].max()) + 1.0)
    index = np.searchsorted((arc + offsets).ravel(), (targets + offsets).ravel(), side="right")
    local = np.clip(index.reshape(count, vertices) - 1 - np.arange(count)[:, None] * vertices,
                    0, vertices - 2)
    rows = np.arange(count)[:, None]
    start = arc[rows, local]
    length = segments[rows, local]
    t = np.divide(targets - start, length, out=np.zeros_like(targets), where=length > 0)
    t = np.clip(t, 0.0, 1.0)[..., None]
    cut = points[rows, local] * (1 - t) + points[rows, local + 1] * t
    return cut.astype(strands.dtype)

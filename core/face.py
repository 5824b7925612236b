"""Find the face in a photo and cut the 770x770 DiffLocks crop around it (SPEC §0 step 2).

DiffLocks places its crop from four MediaPipe FaceLandmarker points: chin (152), forehead (10),
and the two face-contour points 234 and 454 ("cheeks"):

    size = int(max(right.x - left.x, chin.y - forehead.y) * 2.8)
    cx = (left.x + right.x) // 2,  cy = int(0.4 * forehead.y + 0.6 * chin.y)
    window = [cx - size//2, cx - size//2 + size) x [cy - size//2, ...), black outside the image,
    resized to 770x770 with cv2's default bilinear filter.

Two detectors produce those four points:

* `mediapipe` (exact): the FaceLandmarker itself, used when the user points Tressel at a
  `face_landmarker.task` model file (argument or `TRESSEL_FACE_LANDMARKER`). mediapipe is an
  optional package that Tressel neither requires nor downloads models for.
* `opencv-haar` (default, approximate): the frontal-face Haar cascade shipped in
  opencv-python-headless. Its square box is mapped to the four points with `HAAR_*` factors (see
  `HaarFactors` for how they were chosen), so the same crop rule applies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tressel.errors import ConfigError, FaceNotFoundError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

CROP_SIZE = 770
CROP_SCALE = 2.8  # crop side / max(face width, face height)
CENTER_FOREHEAD_WEIGHT = 0.4  # cy = 0.4 * forehead.y + 0.6 * chin.y

# MediaPipe FaceLandmarker indices used by the crop (478-point mesh).
LANDMARK_CHIN = 152
LANDMARK_FOREHEAD = 10
LANDMARK_LEFT_CHEEK = 234
LANDMARK_RIGHT_CHEEK = 454
MEDIAPIPE_MAX_FACES = 4

LANDMARKER_ENV = "TRESSEL_FACE_LANDMARKER"
# Larger photos are searched at this longest side: Haar cost grows with pixel count, and a face
# big enough to be worth a groom is still well above the cascade's 24 px window after scaling.
HAAR_DETECT_MAX_SIDE = 1024


@dataclass(frozen=True)
class HaarFactors:
    """Where the four crop landmarks sit relative to a Haar face box (fractions of its side).

    Chosen from MediaPipe's canonical face mesh (`canonical_face_model.obj`, centimetres, face
    looking down +z) and the position of the eyes and mouth inside OpenCV's frontal-face box:

    * In the mesh, forehead point 10 is 5.7 cm above the eye line, chin 152 is 12.0 cm below it,
      the mouth is 6.5 cm below it, and points 234/454 are 7.66 cm either side of the midline,
      where the pupils are 3.2 cm either side.
    * In the astronaut portrait (`examples/astronaut.png`, a 95 px box) the eye line is at 0.37
      of the box, the mouth at 0.82, and the eyes are 0.46 of the box apart. With the mesh
      proportions this predicts the forehead at 0.00, the chin at 1.16 (neutral mouth) to 1.20
      (this open smile), and the contour points at -0.05 and 1.05 of the box.
    * Placing the four points by hand on the same photo gives left 172, right 274, forehead 65,
      chin 180 px, i.e. -0.05, 1.02, -0.01 and 1.20 of the box.

    The factors below take the mesh prediction, with the chin between the neutral and the
    smiling value. On the astronaut the resulting crop differs from the hand-placed-landmark crop
    by 4% in size (310 vs 322 px) and 2 px in centre (tests/test_face.py checks this). One calibration
    photo is thin evidence: use the MediaPipe model for crops that must match DiffLocks exactly.
    """

    left: float = -0.05
    right: float = 1.05
    forehead: float = 0.0
    chin: float = 1.17


HAAR_FACTORS = HaarFactors()


@dataclass(frozen=True)
class CropLandmarks:
    """The four integer pixel points the DiffLocks crop is computed from."""

    left_x: int
    right_x: int
    forehead_y: int
    chin_y: int


@dataclass(frozen=True)
class CropBox:
    """A square window in source pixels; it may extend past the image (padded with black)."""

    x0: int
    y0: int
    size: int

    @property
    def x1(self) -> int:
        return self.x0 + self.size

    @property
    def y1(self) -> int:
        return self.y0 + self.size

    def as_list(self) -> list[int]:
        """[x0, y0, x1, y1], the form stored in provenance."""
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass
class FaceCrop:
    """The model input: a uint8 [770, 770, 3] RGB crop, where it came from and how."""

    image: np.ndarray
    box: CropBox
    detector: str  # "mediapipe", "opencv-haar" or "none" (crop=False)
    landmarks: CropLandmarks | None
    face_box: tuple[int, int, int, int] | None  # the detector's face box x, y, w, h if any


def crop_box_from_landmarks(points: CropLandmarks) -> CropBox:
    """The DiffLocks crop window for four landmark points (SPEC §0 step 2, integer rules)."""
    width = points.right_x - points.left_x
    height = points.chin_y - points.forehead_y
    size = int(max(width, height) * CROP_SCALE)
    cx = (points.left_x + points.right_x) // 2
    cy = int(CENTER_FOREHEAD_WEIGHT * points.forehead_y
             + (1 - CENTER_FOREHEAD_WEIGHT) * points.chin_y)
    return CropBox(int(cx - size // 2), int(cy - size // 2), size)


def landmarks_from_mediapipe(normalized_xy: Sequence[Sequence[float]], width: int,
                             height: int) -> CropLandmarks:
    """Crop points from one face's normalised MediaPipe landmarks ([478][x, y] in 0..1)."""
    if len(normalized_xy) <= max(LANDMARK_RIGHT_CHEEK, LANDMARK_CHIN):
        raise ValueError(f"expected the 478-point FaceLandmarker mesh, got {len(normalized_xy)}")

    def px(index: int) -> tuple[int, int]:
        x, y = normalized_xy[index][0], normalized_xy[index][1]
        return int(x * width), int(y * height)

    return CropLandmarks(
        left_x=px(LANDMARK_LEFT_CHEEK)[0],
        right_x=px(LANDMARK_RIGHT_CHEEK)[0],
        forehead_y=px(LANDMARK_FOREHEAD)[1],
        chin_y=px(LANDMARK_CHIN)[1],
    )


def landmarks_from_face_box(x: float, y: float, w: float, h: float,
                            factors: HaarFactors = HAAR_FACTORS) -> CropLandmarks:
    """Approximate crop points from a face box (x, y, w, h), with `factors` (see HaarFactors)."""
    return CropLandmarks(
        left_x=int(x + factors.left * w),
        right_x=int(x + factors.right * w),
        forehead_y=int(y + factors.forehead * h),
        chin_y=int(y + factors.chin * h),
    )


def cut_crop(frame: np.ndarray, box: CropBox, out_size: int = CROP_SIZE) -> np.ndarray:
    """The box from a uint8 [H, W, 3] frame, black outside it, resized to out_size (bilinear)."""
    import cv2
    import numpy as np

    if box.size <= 0:
        raise ValueError(f"empty crop box {box}")
    height, width = frame.shape[:2]
    window = np.zeros((box.size, box.size, 3), dtype=np.uint8)
    sx0, sy0 = max(box.x0, 0), max(box.y0, 0)
    sx1, sy1 = min(box.x1, width), min(box.y1, height)
    if sx1 > sx0 and sy1 > sy0:
        window[sy0 - box.y0:sy1 - box.y0, sx0 - box.x0:sx1 - box.x0] = frame[sy0:sy1, sx0:sx1]
    if box.size == out_size:
        return window
    return cv2.resize(window, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


def to_uint8_frame(rgb: np.ndarray) -> np.ndarray:
    """float [0,1] RGB to uint8 by truncating rgb*255, as DiffLocks does; uint8 passes through."""
    import numpy as np

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {list(rgb.shape)}")
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    scaled = np.clip(rgb.astype(np.float32) * np.float32(255), 0, 255)
    return scaled.astype(np.uint8)


def detect_haar(frame: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest frontal face (x, y, w, h) in a uint8 RGB frame, or None."""
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, HAAR_DETECT_MAX_SIDE / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cascade_path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(cascade_path))
    if cascade.empty():
        raise ConfigError(f"cannot load the OpenCV face cascade {cascade_path}: reinstall "
                          "opencv-python-headless")
    min_side = max(24, int(0.05 * min(gray.shape)))
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                     minSize=(min_side, min_side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
    return (round(x / scale), round(y / scale), round(w / scale), round(h / scale))


def detect_mediapipe(frame: np.ndarray, model_path: Path) -> CropLandmarks | None:
    """Crop points of the face with the largest landmark bounding box, via MediaPipe."""
    if not model_path.is_file():
        raise ConfigError(f"face landmarker model not found: {model_path}: download "
                          "face_landmarker.task from MediaPipe and point Tressel at it, or unset "
                          f"{LANDMARKER_ENV} to use the built-in OpenCV detector")
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise ConfigError(
            f"the MediaPipe face landmarker ({model_path}) needs the optional `mediapipe` "
            f"package ({exc}): `pip install mediapipe` into Tressel's environment, or unset "
            f"{LANDMARKER_ENV} / drop the landmarker option to use the built-in OpenCV detector"
        ) from exc
    import numpy as np

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=MEDIAPIPE_MAX_FACES,
    )
    height, width = frame.shape[:2]
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                            data=np.ascontiguousarray(frame)))
    faces = [[(p.x, p.y) for p in face] for face in result.face_landmarks]
    if not faces:
        return None
    return landmarks_from_mediapipe(largest_face(faces, width, height), width, height)


def largest_face(faces: Sequence[Sequence[tuple[float, float]]], width: int,
                 height: int) -> Sequence[tuple[float, float]]:
    """The face whose landmark bounding box (in pixels) has the largest area."""

    def area(face: Sequence[tuple[float, float]]) -> float:
        xs = [p[0] * width for p in face]
        ys = [p[1] * height for p in face]
        return (max(xs) - min(xs)) * (max(ys) - min(ys))

    return max(faces, key=area)


def whole_image_box(width: int, height: int) -> CropBox:
    """crop=False: the image centred in a square of its longest side (black bars, no stretch)."""
    size = max(width, height)
    return CropBox((width - size) // 2, (height - size) // 2, size)


def crop_face(
    rgb: np.ndarray,
    crop: bool = True,
    landmarker_model: str | os.PathLike[str] | None = None,
    name: str = "the image",
    out_size: int = CROP_SIZE,
) -> FaceCrop:
    """Locate the face in an RGB image (float [0,1] or uint8 [H,W,3]) and cut the model crop.

    `landmarker_model` (or the `TRESSEL_FACE_LANDMARKER` environment variable) selects the exact
    MediaPipe detector; otherwise the OpenCV Haar cascade is used. `crop=False` skips detection
    and uses the whole image, centred on black to a square. Raises FaceNotFoundError when no face
    is found.
    """
    frame = to_uint8_frame(rgb)
    height, width = frame.shape[:2]
    if not crop:
        box = whole_image_box(width, height)
        return FaceCrop(cut_crop(frame, box, out_size), box, "none", None, None)

    model = landmarker_model or os.environ.get(LANDMARKER_ENV) or None
    face_box = None
    if model:
        detector = "mediapipe"
        points = detect_mediapipe(frame, Path(model).expanduser())
    else:
        detector = "opencv-haar"
        face_box = detect_haar(frame)
        points = None if face_box is None else landmarks_from_face_box(*face_box)
    if points is None:
        raise FaceNotFoundError(
            f"no face found in {name} ({detector} detector): use a photo with a clear, roughly "
            "frontal face, or pass --no-crop to use the whole image (already framed on the head)"
        )
    box = crop_box_from_landmarks(points)
    if box.size <= 0:
        raise FaceNotFoundError(f"the face found in {name} is degenerate ({points}): pass "
                                "--no-crop or use another photo")
    log.info("face in %s by %s: crop %s", name, detector, box.as_list())
    return FaceCrop(cut_crop(frame, box, out_size), box, detector, points, face_box)

"""Find the face in a photo and cut the 770x770 DiffLocks crop around it (SPEC §0 step 2).

DiffLocks places its crop from four MediaPipe FaceLandmarker points: chin (152), forehead (10),
and the two face-contour points 234 and 454 ("cheeks"):

    size = int(max(right.x - left.x, chin.y - forehead.y) * 2.8)
    cx = (left.x + right.x) // 2,  cy = int(0.4 * forehead.y + 0.6 * chin.y)
    window = [cx - size//2, cx - size//2 + size) x [cy - size//2, ...), black outside the image,
    resized to 770x770 with cv2's default bilinear filter.

Three detectors produce those four points:

* `face-mesh` (default): the face detector and face mesh models of MediaPipe's
  `face_landmarker.task`, shipped with Tressel and run with LiteRT (`tressel.face_mesh`). The
  same models DiffLocks uses, so the same landmarks (tests/test_face.py measures how close).
* `mediapipe`: the FaceLandmarker itself, used when the user points Tressel at a
  `face_landmarker.task` model file (argument or `TRESSEL_FACE_LANDMARKER`) and has installed
  the optional `mediapipe` package.
* `opencv-haar` (fallback, approximate): the frontal-face Haar cascade shipped in
  opencv-python-headless, used only where LiteRT cannot run. Its square box is mapped to the
  four points with `HAAR_*` factors (see `HaarFactors`), so the same crop rule applies.
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
MAX_MESH_FACES = 8
UNCONFIDENT_MIN_DETECTION = 0.7
UNCONFIDENT_MIN_PRESENCE = 0.01  # the built-in mesh runs on at most this many detections (best scores first)
DETECTORS = ("auto", "face-mesh", "opencv-haar")
DETECTOR_ENV = "TRESSEL_FACE_DETECTOR"

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
    detector: str  # "face-mesh", "mediapipe", "opencv-haar" or "none" (crop=False)
    landmarks: CropLandmarks | None
    face_box: tuple[int, int, int, int] | None  # the detector's face box x, y, w, h if any
    faces_found: int = 0  # faces the detector found (the largest is cropped)
    approximate: bool = False  # True when the crop is not placed from confident landmarks
    mesh: np.ndarray | None = None  # the face mesh [478, 3] in photo pixels, when one was run


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
    """The box from a uint8 [H, W, 3] frame, black outside it, resized to out_size.

    The 770 px DiffLocks crop uses cv2's bilinear resize exactly as DiffLocks does. Any other
    size (a smaller model's input, e.g. the demo's 112 px) is Tressel's own choice, and there a
    window shrunk by more than 1x is area-filtered: bilinear sampling of a 3000 px face to 112 px
    reads one pixel in 25 and turns smooth hair into speckle.
    """
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
    if out_size != CROP_SIZE and box.size > out_size:
        return cv2.resize(window, (out_size, out_size), interpolation=cv2.INTER_AREA)
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


def detect_mediapipe(frame: np.ndarray, model_path: Path) -> tuple[CropLandmarks | None, int]:
    """Crop points of the face with the largest landmark bounding box via MediaPipe's
    FaceLandmarker, and the number of faces it found."""
    if not model_path.is_file():
        raise ConfigError(f"face landmarker model not found: {model_path}: download "
                          "face_landmarker.task from MediaPipe and point Tressel at it, or unset "
                          f"{LANDMARKER_ENV} to use the built-in face mesh")
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise ConfigError(
            f"the MediaPipe face landmarker ({model_path}) needs the optional `mediapipe` "
            f"package ({exc}): `pip install mediapipe` into Tressel's environment, or unset "
            f"{LANDMARKER_ENV} / drop the landmarker option to use the built-in face mesh"
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
        return None, 0
    return (landmarks_from_mediapipe(largest_face(faces, width, height), width, height),
            len(faces))


@dataclass
class MeshSearch:
    """What the built-in face mesh found in one photo."""

    points: CropLandmarks | None
    faces_found: int  # faces with confident landmarks (1 when an unconfident one is used)
    detections: int  # faces the detector proposed
    face_box: tuple[int, int, int, int] | None
    approximate: bool  # no confident landmarks: the best unconfident mesh was used
    mesh: np.ndarray | None = None  # the chosen face's 478 landmarks [478, 3], photo pixels


def detect_face_mesh(frame: np.ndarray) -> MeshSearch:
    """The largest face by the built-in detector + face mesh (raises LandmarkModelUnavailable
    where LiteRT cannot run)."""
    from tressel.face_mesh import MIN_PRESENCE_SCORE, load_face_mesh_model

    model = load_face_mesh_model()
    height, width = frame.shape[:2]
    detections = model.detect(frame)
    meshes = [m for d in detections[:MAX_MESH_FACES]
              if (m := model.landmarks(frame, d, min_presence=0.0)) is not None]
    confident = [m for m in meshes if m.presence >= MIN_PRESENCE_SCORE]
    # An unconfident mesh is only trusted on a clear detection: that is a face half hidden
    # (behind a camera, a hand); a weak detection with no mesh is texture, not a face.
    meshes = [m for m in meshes if m.detection.score >= UNCONFIDENT_MIN_DETECTION
              and m.presence >= UNCONFIDENT_MIN_PRESENCE] if not confident else meshes
    approximate = not confident and bool(meshes)
    # Largest landmark box wins, as in DiffLocks. With no confident mesh (a face half hidden,
    # e.g. behind a camera) the most confident one still frames the face better than nothing.
    chosen = (max(confident, key=lambda m: m.bbox_area) if confident
              else max(meshes, key=lambda m: m.presence) if meshes else None)
    if chosen is None:
        return MeshSearch(None, 0, len(detections), None, False)
    x, y, w, h = chosen.detection.box
    return MeshSearch(landmarks_from_mediapipe(chosen.normalized_xy(width, height), width, height),
                      len(confident) or 1, len(detections),
                      (round(x), round(y), round(w), round(h)),
                      approximate, chosen.points)


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
    detector: str | None = None,
) -> FaceCrop:
    """Locate the face in an RGB image (float [0,1] or uint8 [H,W,3]) and cut the model crop.

    `landmarker_model` (or the `TRESSEL_FACE_LANDMARKER` environment variable) selects
    MediaPipe's own FaceLandmarker. Otherwise `detector` (or `TRESSEL_FACE_DETECTOR`) chooses:
    "auto" (default) is the built-in face mesh, or the approximate Haar cascade where LiteRT
    cannot run; "face-mesh" and "opencv-haar" force one. `crop=False` skips detection and uses
    the whole image, centred on black to a square. Raises FaceNotFoundError when no face is found.
    """
    frame = to_uint8_frame(rgb)
    height, width = frame.shape[:2]
    if not crop:
        box = whole_image_box(width, height)
        return FaceCrop(cut_crop(frame, box, out_size), box, "none", None, None)

    model = landmarker_model or os.environ.get(LANDMARKER_ENV) or None
    choice = (detector or os.environ.get(DETECTOR_ENV) or "auto").strip().lower()
    if choice not in DETECTORS:
        raise ConfigError(f"unknown face detector {choice!r} (from {DETECTOR_ENV} or the "
                          f"detector argument): use one of {', '.join(DETECTORS)}")
    face_box = None
    approximate = False
    faces_found = 0
    mesh = None
    if model:
        used = "mediapipe"
        points, faces_found = detect_mediapipe(frame, Path(model).expanduser())
    else:
        search = None
        if choice != "opencv-haar":
            from tressel.face_mesh import LandmarkModelUnavailable

            try:
                search = detect_face_mesh(frame)
            except LandmarkModelUnavailable as exc:
                if choice == "face-mesh":
                    raise
                log.warning("%s. Falling back to the OpenCV Haar detector, whose crop is "
                            "approximate (often 20-40%% larger than DiffLocks'); see the "
                            "README's face crop section", exc)
        if search is not None:
            used = "face-mesh"
            points, faces_found, face_box = search.points, search.faces_found, search.face_box
            approximate = search.approximate
            mesh = search.mesh
            if approximate:
                log.warning("the face in %s is not clearly visible (its landmarks are "
                            "unconfident): the crop is approximate; check the saved face crop, "
                            "or pass --no-crop with a photo framed on the head", name)
        else:
            used = "opencv-haar"
            approximate = True
            face_box = detect_haar(frame)
            faces_found = int(face_box is not None)
            points = None if face_box is None else landmarks_from_face_box(*face_box)
    if points is None:
        raise FaceNotFoundError(
            f"no face found in {name} ({used} detector): use a photo with a clear, roughly "
            "frontal face, or pass --no-crop to use the whole image (already framed on the head)"
        )
    box = crop_box_from_landmarks(points)
    if box.size <= 0:
        raise FaceNotFoundError(f"the face found in {name} is degenerate ({points}): pass "
                                "--no-crop or use another photo")
    if faces_found > 1:
        log.info("%d faces in %s: cropping the largest", faces_found, name)
    log.info("face in %s by %s%s: crop %s", name, used, " (approximate)" if approximate else "",
             box.as_list())
    return FaceCrop(cut_crop(frame, box, out_size), box, used, points, face_box, faces_found,
                    approximate, mesh)

"""MediaPipe's face detector and 478-point face mesh, shipped as .tflite and run with LiteRT.

These are the two models inside MediaPipe's `face_landmarker.task` (float16, version 1), the
file DiffLocks' FaceLandmarker loads (`tressel/data/face/README.md` says where they come from
and under which licence). Google's `ai-edge-litert` runs them without TensorFlow or MediaPipe.
The steps around the models follow the FaceLandmarker graph as MediaPipe documents it:

1. Detection (BlazeFace short range): the photo is letterboxed to 128x128, RGB scaled to
   [-1, 1] (the normalisation in the model's metadata); 896 SSD anchors give boxes and six
   keypoints; scores are sigmoids over 0.5; boxes overlapping by IoU > 0.3 are merged by
   score-weighted averaging.
2. Region of interest: the detection box's longer side times 1.5, centred on the box, rotated
   so that the eye keypoints (0 and 1) lie level.
3. Landmarks: that square is sampled to 256x256, RGB in [0, 1]; the model gives 478 (x, y, z)
   points in the 256 px frame and a face-presence logit; the points are mapped back to pixels.

Model inputs are sampled as MediaPipe samples them (bilinear, corner to corner); with that,
the landmarks agree with the FaceLandmarker's to 0.01% of the face size on most test portraits
(tests/test_face.py). One addition: when the whole photo yields no face, the search is repeated
on overlapping tiles, so that faces too small for a 128 px view of the whole photo are found.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tressel.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent / "data" / "face"
DETECTOR_FILE = "face_detector.tflite"
LANDMARKS_FILE = "face_landmarks_detector.tflite"

DETECTOR_SIZE = 128
LANDMARKS_SIZE = 256
NUM_LANDMARKS = 478
MIN_DETECTION_SCORE = 0.5  # FaceLandmarker's default min_face_detection_confidence
MIN_PRESENCE_SCORE = 0.5  # ... and min_face_presence_confidence
NMS_IOU = 0.3
ROI_SCALE = 1.5
# SSD anchor layout of the short-range detector: feature-map strides, 2 anchors per layer.
ANCHOR_STRIDES = (8, 16, 16, 16)
# Tiled search (only when the whole photo shows no face): tiles a third of the longer side,
# overlapping by half, so a face of ~5% of the photo becomes ~15% of the detector's view.
TILE_FRACTION = 1 / 3
REFINE_VIEW = 4.0
# Many tiles mean many chances of a false face (textures, animals): a face found only in tiles
# must score this much once re-detected at portrait scale.
TILE_MIN_SCORE = 0.7  # a face found in tiles is re-detected in a square this many face sizes wide
MAX_FACES = 8  # landmarks are computed for at most this many detections (highest scores first)


class LandmarkModelUnavailable(ConfigError):
    """The built-in landmark model cannot run here (LiteRT missing or the model files absent)."""


@dataclass(frozen=True)
class Detection:
    """One face from the detector, in source pixels (continuous coordinates)."""

    score: float
    box: tuple[float, float, float, float]  # x, y, w, h
    keypoints: np.ndarray  # [6, 2]: right eye, left eye, nose, mouth, right ear, left ear


@dataclass(frozen=True)
class FaceMesh:
    """The 478 landmarks of one face in source pixels, and how sure the model is of it."""

    points: np.ndarray  # [478, 3]: x, y in pixels, z in the same scale
    presence: float
    detection: Detection

    def normalized_xy(self, width: int, height: int) -> np.ndarray:
        """[478, 2] x / width, y / height, the form MediaPipe returns."""
        import numpy as np

        return self.points[:, :2] / np.array([width, height], dtype=np.float64)

    @property
    def bbox_area(self) -> float:
        """Area of the landmark bounding box, how DiffLocks picks the largest face."""
        span = self.points[:, :2].max(0) - self.points[:, :2].min(0)
        return float(span[0] * span[1])


def ssd_anchors() -> np.ndarray:
    """[896, 2] anchor centres (x, y) in [0, 1] of the short-range detector, in output order."""
    import numpy as np

    centres = []
    layer = 0
    while layer < len(ANCHOR_STRIDES):
        stride = ANCHOR_STRIDES[layer]
        # Consecutive layers with the same stride share one feature map.
        same = 0
        while layer + same < len(ANCHOR_STRIDES) and ANCHOR_STRIDES[layer + same] == stride:
            same += 1
        cells = math.ceil(DETECTOR_SIZE / stride)
        per_cell = 2 * same
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Merge overlapping detections: each cluster becomes its score-weighted mean box.

    boxes [N, 4] as x0, y0, x1, y1; keypoints [N, K, 2]. Returns (score, box, keypoints) per
    cluster, highest score first; a cluster keeps its best member's score.
    """
    import numpy as np

    order = list(np.argsort(-scores, kind="stable"))
    out = []
    while order:
        best = order[0]
        rest = np.array(order)
        iou = box_iou(boxes[best], boxes[rest])
        members = rest[iou > iou_threshold]
        members = members if len(members) else np.array([best])
        weights = scores[members] / scores[members].sum()
        box = (boxes[members] * weights[:, None]).sum(0)
        kps = (keypoints[members] * weights[:, None, None]).sum(0)
        out.append((float(scores[best]), box, kps))
        keep = set(members.tolist()) | {best}
        order = [i for i in order if i not in keep]
    return out


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x0, y0, x1, y1 box against [N, 4] boxes."""
    import numpy as np

    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def sample_square(frame: np.ndarray, linear: np.ndarray, origin: np.ndarray, size: int,
                  clip: tuple[int, int, int, int] | None, antialias: bool) -> np.ndarray:
    """A size x size view of `frame`: output pixel (u, v) reads frame pixel origin + linear @ (u, v)
    (bilinear, black outside the frame or outside the `clip` window x0, y0, x1, y1).

    This is how MediaPipe samples a model input (corner to corner, no half-pixel shift), which
    keeps the detections and landmarks close to the FaceLandmarker's. With `antialias` the frame
    is first area-filtered down to about the output's scale.
    """
    import cv2
    import numpy as np

    source, scale = frame, 1.0
    if clip is not None:
        x0, y0, x1, y1 = clip
        source = frame[y0:y1, x0:x1]
        origin = origin - np.array([x0, y0], dtype=np.float64)
    step = float(np.sqrt(abs(np.linalg.det(linear))))
    if antialias and step > 1.5:
        scale = 1.0 / step
        small = (max(1, round(source.shape[1] * scale)), max(1, round(source.shape[0] * scale)))
        source = cv2.resize(source, small, interpolation=cv2.INTER_AREA)
    matrix = np.hstack([linear * scale, (origin * scale)[:, None]])
    return cv2.warpAffine(source, matrix, (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


class FaceMeshModel:
    """The two LiteRT interpreters, loaded once; calls are serialised (interpreters are not
    re-entrant)."""

    def __init__(self, model_dir: Path = MODEL_DIR, threads: int = 1, antialias: bool = False):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise LandmarkModelUnavailable(
                f"the built-in face landmark model needs `ai-edge-litert` ({exc}): "
                "`pip install ai-edge-litert` (there are wheels for Linux x86-64, Windows and "
                "macOS on Apple silicon), or point TRESSEL_FACE_LANDMARKER at a "
                "face_landmarker.task with `mediapipe` installed") from exc
        paths = [model_dir / DETECTOR_FILE, model_dir / LANDMARKS_FILE]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise LandmarkModelUnavailable(
                f"face model files missing: {', '.join(missing)}: reinstall Tressel")
        self._lock = threading.Lock()
        self.antialias = antialias
        self.detector = Interpreter(model_path=str(paths[0]), num_threads=threads)
        self.landmarker = Interpreter(model_path=str(paths[1]), num_threads=threads)
        self.detector.allocate_tensors()
        self.landmarker.allocate_tensors()
        self._det_in = self.detector.get_input_details()[0]["index"]
        det_out = {d["name"]: d["index"] for d in self.detector.get_output_details()}
        self._det_boxes, self._det_scores = det_out["regressors"], det_out["classificators"]
        self._lm_in = self.landmarker.get_input_details()[0]["index"]
        # Outputs by shape: [1,1,1,1434] landmarks, [1,1,1,1] face-presence logit.
        lm_out = self.landmarker.get_output_details()
        self._lm_points = next(d["index"] for d in lm_out
                               if int(d["shape"][-1]) == 3 * NUM_LANDMARKS)
        self._lm_presence = next(d["index"] for d in lm_out if list(d["shape"]) == [1, 1, 1, 1])
        self.anchors = ssd_anchors()

    # -- detection

    def detect(self, frame: np.ndarray, tiles: bool = True) -> list[Detection]:
        """Faces in a uint8 RGB frame, highest score first (tiled search if none at full view)."""
        height, width = frame.shape[:2]
        found = self._detect_view(frame, 0, 0, width, height)
        if found or not tiles:
            return found
        side = max(DETECTOR_SIZE, int(max(width, height) * TILE_FRACTION))
        if side >= max(width, height):
            return found
        step = side // 2
        collected: list[Detection] = []
        for y0 in _tile_starts(height, side, step):
            for x0 in _tile_starts(width, side, step):
                collected += self._detect_view(frame, x0, y0, min(side, width - x0),
                                               min(side, height - y0))
        # A tile's view is coarse for a face this small: detect again in a square framing the
        # face as a typical portrait does (face ~1/5 of the view), the scale the model expects.
        refined = []
        for found_face in _merge(collected):
            x, y, w, h = found_face.box
            view = REFINE_VIEW * max(w, h)
            again = self._detect_square(frame, x + w / 2 - view / 2, y + h / 2 - view / 2, view,
                                        None)
            if again and again[0].score >= TILE_MIN_SCORE:
                refined.append(again[0])
        return _merge(refined)

    def _detect_view(self, frame: np.ndarray, x0: int, y0: int, w: int, h: int) -> list[Detection]:
        """Detections in the window [x0, x0+w) x [y0, y0+h) of the frame, in frame pixels."""
        # Letterbox: the 128 px input covers a square of the window's longer side, centred.
        side = max(w, h)
        return self._detect_square(frame, x0 + (w - side) / 2, y0 + (h - side) / 2, side,
                                   (x0, y0, x0 + w, y0 + h))

    def _detect_square(self, frame: np.ndarray, ox: float, oy: float, side: float,
                       clip: tuple[int, int, int, int] | None) -> list[Detection]:
        """Detections in the square [ox, ox+side) x [oy, oy+side) (black outside the frame)."""
        import numpy as np

        k = side / DETECTOR_SIZE
        canvas = sample_square(frame, np.array([[k, 0.0], [0.0, k]]), np.array([ox, oy]),
                               DETECTOR_SIZE, clip, self.antialias)
        tensor = canvas.astype(np.float32)[None] / np.float32(127.5) - np.float32(1.0)
        with self._lock:
            self.detector.set_tensor(self._det_in, tensor)
            self.detector.invoke()
            raw = self.detector.get_tensor(self._det_boxes)[0].astype(np.float64)
            logits = self.detector.get_tensor(self._det_scores)[0, :, 0].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100, 100)))
        keep = scores >= MIN_DETECTION_SCORE
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        # Offsets are in detector pixels relative to the anchor centre (anchors have unit size).
        cx = raw[:, 0] / DETECTOR_SIZE + anchors[:, 0]
        cy = raw[:, 1] / DETECTOR_SIZE + anchors[:, 1]
        bw, bh = raw[:, 2] / DETECTOR_SIZE, raw[:, 3] / DETECTOR_SIZE
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) / DETECTOR_SIZE + anchors[:, None, :]

        def to_frame(xy: np.ndarray) -> np.ndarray:
            # detector-normalised -> frame pixels (undo the letterbox)
            out = xy * side
            out[..., 0] += ox
            out[..., 1] += oy
            return out

        boxes = to_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        kps = to_frame(kps)
        return [Detection(score, (float(b[0]), float(b[1]), float(b[2] - b[0]),
                                  float(b[3] - b[1])), k)
                for score, b, k in weighted_nms(boxes, kps, scores)]

    # -- landmarks

    def landmarks(self, frame: np.ndarray, detection: Detection,
                  min_presence: float = MIN_PRESENCE_SCORE) -> FaceMesh | None:
        """The face mesh inside the detection's rotated square, or None if the model's
        face-presence score is under `min_presence`."""
        import numpy as np

        x, y, w, h = detection.box
        centre = np.array([x + w / 2, y + h / 2])
        eye_r, eye_l = detection.keypoints[0], detection.keypoints[1]
        # MediaPipe's rotation: the angle that brings the right->left eye vector level.
        angle = -math.atan2(-(eye_l[1] - eye_r[1]), eye_l[0] - eye_r[0])
        side = ROI_SCALE * max(w, h)
        if side < 1:
            return None
        cos, sin = math.cos(angle), math.sin(angle)
        rotation = np.array([[cos, -sin], [sin, cos]])
        k = side / LANDMARKS_SIZE
        corner = centre + rotation @ np.array([-side / 2, -side / 2])
        patch = sample_square(frame, rotation * k, corner, LANDMARKS_SIZE, None, self.antialias)
        tensor = patch.astype(np.float32)[None] / np.float32(255)
        with self._lock:
            self.landmarker.set_tensor(self._lm_in, tensor)
            self.landmarker.invoke()
            raw = self.landmarker.get_tensor(self._lm_points).reshape(NUM_LANDMARKS, 3)
            logit = float(self.landmarker.get_tensor(self._lm_presence).reshape(()))
        presence = 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))
        if presence < min_presence:
            return None
        # Tensor coordinates map back through the same affine as the sampling.
        xy = corner + (raw[:, :2].astype(np.float64) * k) @ rotation.T
        z = raw[:, 2:3].astype(np.float64) / LANDMARKS_SIZE * side
        return FaceMesh(np.hstack([xy, z]), presence, detection)

    def faces(self, frame: np.ndarray) -> list[FaceMesh]:
        """Every face with landmarks, largest landmark box first."""
        meshes = [m for d in self.detect(frame)[:MAX_FACES]
                  if (m := self.landmarks(frame, d)) is not None]
        return sorted(meshes, key=lambda m: m.bbox_area, reverse=True)


def _tile_starts(length: int, side: int, step: int) -> list[int]:
    if side >= length:
        return [0]
    starts = list(range(0, length - side, step))
    return starts + [length - side]


def _merge(detections: list[Detection]) -> list[Detection]:
    """Merge detections of one face found in several overlapping tiles."""
    import numpy as np

    if not detections:
        return []
    boxes = np.array([[d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]]
                      for d in detections])
    kps = np.stack([d.keypoints for d in detections])
    scores = np.array([d.score for d in detections])
    return [Detection(s, (float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), k)
            for s, b, k in weighted_nms(boxes, kps, scores)]


@lru_cache(maxsize=1)
def load_face_mesh_model() -> FaceMeshModel:
    """The process-wide model (loading takes a few tens of milliseconds; done once)."""
    return FaceMeshModel()

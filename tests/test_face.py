"""Face location and the DiffLocks crop: the crop rule, both detectors' mapping, real photos."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from tressel.errors import ConfigError, FaceNotFoundError
from tressel.face import (
    CROP_SIZE,
    LANDMARK_CHIN,
    LANDMARK_FOREHEAD,
    LANDMARK_LEFT_CHEEK,
    LANDMARK_RIGHT_CHEEK,
    CropBox,
    CropLandmarks,
    crop_box_from_landmarks,
    crop_face,
    cut_crop,
    landmarks_from_mediapipe,
    largest_face,
    to_uint8_frame,
    whole_image_box,
)
from tressel.images import load_image

# The four crop landmarks placed by hand on the astronaut photo (see HaarFactors).
ASTRONAUT_HAND_LANDMARKS = CropLandmarks(left_x=172, right_x=274, forehead_y=65, chin_y=180)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def test_crop_rule_integer_arithmetic():
    # width 101, height 130 -> size int(130*2.8) = 364; cx = (100+201)//2 = 150;
    # cy = int(0.4*50 + 0.6*180) = 128; x0 = 150 - 182 = -32, y0 = 128 - 182 = -54
    box = crop_box_from_landmarks(CropLandmarks(100, 201, 50, 180))
    assert box == CropBox(-32, -54, 364)
    assert box.as_list() == [-32, -54, 332, 310]
    # the wider dimension decides the size
    assert crop_box_from_landmarks(CropLandmarks(0, 100, 0, 10)).size == 280


def test_mediapipe_mapping_with_synthetic_landmarks():
    width, height = 640, 480
    mesh = np.full((478, 2), 0.5)
    mesh[LANDMARK_LEFT_CHEEK] = (0.30, 0.45)
    mesh[LANDMARK_RIGHT_CHEEK] = (0.62, 0.46)
    mesh[LANDMARK_FOREHEAD] = (0.47, 0.20)
    mesh[LANDMARK_CHIN] = (0.46, 0.81)
    points = landmarks_from_mediapipe(mesh.tolist(), width, height)
    # int(x*W) / int(y*H), truncating like DiffLocks
    assert points == CropLandmarks(int(0.30 * 640), int(0.62 * 640), int(0.20 * 480),
                                   int(0.81 * 480))
    box = crop_box_from_landmarks(points)
    assert box.size == int(max(396 - 192, 388 - 96) * 2.8)
    with pytest.raises(ValueError, match="478"):
        landmarks_from_mediapipe(mesh[:100].tolist(), width, height)


def test_largest_face_by_landmark_box():
    small = [(0.1, 0.1), (0.2, 0.2)]
    big = [(0.5, 0.5), (0.9, 0.8)]
    assert largest_face([small, big], 100, 100) is big
    assert largest_face([big, small], 100, 100) is big
    # the bounding-box area decides, not the number or spread of points inside it
    many = [(0.4, 0.4)] * 50 + [(0.45, 0.45)]
    assert largest_face([many, small], 100, 100) is small


def test_cut_crop_pads_black_and_resizes():
    frame = np.full((100, 80, 3), 200, np.uint8)
    crop = cut_crop(frame, CropBox(-20, -10, 140), out_size=70)
    assert crop.shape == (70, 70, 3) and crop.dtype == np.uint8
    # halving: left 10 columns and top 5 rows are black padding, the image interior is 200
    assert crop[:4].max() == 0 and crop[:, :9].max() == 0
    assert (crop[10:50, 15:45] == 200).all()
    # a window entirely outside the image is all black
    assert cut_crop(frame, CropBox(500, 500, 30), out_size=30).max() == 0
    # same size: an exact copy of the window
    np.testing.assert_array_equal(cut_crop(frame, CropBox(0, 0, 80), 80)[:80], frame[:80])


def test_uint8_round_trip_truncates():
    values = np.arange(256, dtype=np.uint8)
    rgb = np.stack([values] * 3, -1)[None].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(to_uint8_frame(rgb)[0, :, 0], values)
    assert to_uint8_frame(np.full((1, 1, 3), 0.999, np.float32))[0, 0, 0] == 254  # truncation


def test_astronaut_haar_crop(astronaut):
    result = crop_face(astronaut.astype(np.float32) / np.float32(255))
    assert result.detector == "opencv-haar"
    assert result.image.shape == (CROP_SIZE, CROP_SIZE, 3) and result.image.dtype == np.uint8
    x, y, w, h = result.face_box
    # the face is in the upper middle of the 512x512 photo, about 95 px across
    assert 160 < x < 195 and 50 < y < 85 and 80 < w < 115 and h == w
    hand = crop_box_from_landmarks(ASTRONAUT_HAND_LANDMARKS)
    # the approximate landmarks give a crop close to the hand-placed landmark crop
    assert abs(result.box.size / hand.size - 1) < 0.06
    assert abs((result.box.x0 + result.box.x1) / 2 - (hand.x0 + hand.x1) / 2) < 6
    assert abs((result.box.y0 + result.box.y1) / 2 - (hand.y0 + hand.y1) / 2) < 6
    # the window runs above the photo, so the top rows of the crop are black padding
    assert result.box.y0 < 0 and result.image[:20].max() == 0
    assert result.image[300:500, 300:470].mean() > 60  # the face region is not padding


def test_astronaut_example_file_matches(astronaut):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
    image = load_image(example)
    np.testing.assert_array_equal(to_uint8_frame(image.rgb), astronaut)
    assert crop_face(image.rgb, name=example.name).box == crop_face(astronaut).box


def test_no_face_raises():
    coffee = skimage.data.coffee()
    with pytest.raises(FaceNotFoundError, match=r"no face found in coffee\.jpg.*--no-crop"):
        crop_face(coffee, name="coffee.jpg")
    with pytest.raises(FaceNotFoundError):
        crop_face(np.zeros((300, 200, 3), np.float32))


def test_no_crop_uses_whole_image():
    frame = np.full((300, 200, 3), 90, np.uint8)
    result = crop_face(frame, crop=False)
    assert result.detector == "none" and result.landmarks is None
    assert result.box == whole_image_box(200, 300) == CropBox(-50, 0, 300)
    # centred on black bars left and right, no stretching
    assert result.image[:, :100].max() == 0 and result.image[:, -100:].max() == 0
    assert (result.image[:, 160:610] == 90).all()
    square = np.random.default_rng(0).integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_face(square, crop=False).image, square)


def test_mediapipe_missing_model_or_package(tmp_path, astronaut, monkeypatch):
    with pytest.raises(ConfigError, match="face landmarker model not found"):
        crop_face(astronaut, landmarker_model=tmp_path / "none.task")
    model = tmp_path / "face_landmarker.task"
    model.write_bytes(b"placeholder")
    import builtins

    real_import = builtins.__import__

    def no_mediapipe(name, *args, **kwargs):
        if name.startswith("mediapipe"):
            raise ImportError("No module named 'mediapipe'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mediapipe)
    with pytest.raises(ConfigError, match="pip install mediapipe"):
        crop_face(astronaut, landmarker_model=model)
    monkeypatch.setenv("TRESSEL_FACE_LANDMARKER", str(model))
    with pytest.raises(ConfigError, match="pip install mediapipe"):
        crop_face(astronaut)

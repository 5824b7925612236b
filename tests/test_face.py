"""Face location and the DiffLocks crop: the crop rule, both detectors' mapping, real photos."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from face_portraits import PORTRAITS, VARIANTS, load_portrait, make_variant, map_points
from tressel import face_mesh
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
    detect_haar,
    landmarks_from_mediapipe,
    largest_face,
    to_uint8_frame,
    whole_image_box,
)
from tressel.face_mesh import LandmarkModelUnavailable, ssd_anchors, weighted_nms
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
    result = crop_face(astronaut.astype(np.float32) / np.float32(255), detector="opencv-haar")
    assert result.detector == "opencv-haar" and result.approximate
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
    with pytest.raises(FaceNotFoundError,
                       match=r"no face found in coffee\.jpg \(face-mesh detector\).*--no-crop"):
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


# -- the default detector: MediaPipe's face detector + face mesh, shipped, run with LiteRT

REFERENCE = json.loads((Path(__file__).parent / "data" / "face_reference.json").read_text())
TOLERANCE = 0.03  # crop size and centre, as a fraction of the reference crop's size


def read_oiio(path: Path) -> np.ndarray:
    return to_uint8_frame(load_image(path).rgb)


def reference_box(name: str, variant: str, photo: np.ndarray) -> CropBox:
    """The DiffLocks crop from MediaPipe's FaceLandmarker landmarks (tests/make_face_reference.py).

    Where the FaceLandmarker finds no face (a face too small for it), the original photo's
    landmarks carried into the variant's pixels stand in."""
    faces = REFERENCE["cases"][f"{name}/{variant}"]["faces"]
    points = faces[0] if faces else map_points(
        REFERENCE["cases"][f"{name}/orig"]["faces"][0], variant, *photo.shape[:2])
    return crop_box_from_landmarks(CropLandmarks(
        int(points["left_x"]), int(points["right_x"]), int(points["forehead_y"]),
        int(points["chin_y"])))


def assert_close_box(box: CropBox, ref: CropBox, tolerance: float = TOLERANCE) -> None:
    assert abs(box.size / ref.size - 1) <= tolerance, (box, ref)
    for axis in ("x0", "y0"):
        shift = abs(getattr(box, axis) + box.size / 2 - getattr(ref, axis) - ref.size / 2)
        assert shift <= tolerance * ref.size, (axis, box, ref)


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    return {name: load_portrait(name, read_oiio) for name in PORTRAITS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", PORTRAITS)
def test_default_crop_matches_face_landmarker(portraits, name, variant):
    photo = portraits[name]
    image = make_variant(photo, variant)
    result = crop_face(image, name=f"{name}/{variant}")
    assert result.detector == "face-mesh" and not result.approximate
    assert result.faces_found == 1
    assert_close_box(result.box, reference_box(name, variant, photo))


def test_reference_comes_from_the_shipped_models():
    # The reference was made with the face_landmarker.task whose two models Tressel ships.
    assert REFERENCE["model_sha256"] == (
        "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff")
    for case in ("astronaut/orig", "lena/orig", "grace_hopper/orig", "luispedro/orig"):
        assert len(REFERENCE["cases"][case]["faces"]) == 1


def test_largest_of_several_faces_wins(portraits):
    astronaut, grace = portraits["astronaut"], portraits["grace_hopper"]
    # Grace Hopper at half size (2x2 block means) beside the astronaut: two faces.
    half = grace[:600, :512].reshape(300, 2, 256, 2, 3).mean((1, 3)).astype(np.uint8)
    canvas = np.zeros((512, 512 + 256, 3), np.uint8)
    canvas[:, :512] = astronaut
    canvas[100:400, 512:] = half
    result = crop_face(canvas)
    assert result.faces_found == 2
    assert_close_box(result.box, reference_box("astronaut", "orig", astronaut))


def test_face_haar_misses_is_found():
    # The cameraman: grayscale, turned away, half hidden behind his camera.
    camera = np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    assert detect_haar(camera) is None
    result = crop_face(camera)
    assert result.detector == "face-mesh"
    # MediaPipe's landmarks are unconfident here, so the crop is flagged as approximate, but it
    # still frames his head (the face is near x 180-265, y 120-205 of the 512 px photo).
    assert result.approximate and result.faces_found == 1
    cx, cy = result.box.x0 + result.box.size / 2, result.box.y0 + result.box.size / 2
    assert 170 < cx < 280 and 110 < cy < 230 and 150 < result.box.size < 400


def test_haar_fallback_where_the_landmark_model_cannot_run(monkeypatch, astronaut, caplog):
    def unavailable():
        raise LandmarkModelUnavailable("LiteRT is not installed")

    monkeypatch.setattr(face_mesh, "load_face_mesh_model", unavailable)
    with caplog.at_level(logging.WARNING, logger="tressel.face"):
        result = crop_face(astronaut)
    assert result.detector == "opencv-haar" and result.approximate
    assert "approximate" in caplog.text and "LiteRT" in caplog.text
    with pytest.raises(LandmarkModelUnavailable):
        crop_face(astronaut, detector="face-mesh")
    with pytest.raises(ConfigError, match="unknown face detector"):
        crop_face(astronaut, detector="dlib")


def test_detector_environment_variable(monkeypatch, astronaut):
    monkeypatch.setenv("TRESSEL_FACE_DETECTOR", "opencv-haar")
    assert crop_face(astronaut).detector == "opencv-haar"
    monkeypatch.setenv("TRESSEL_FACE_DETECTOR", "auto")
    assert crop_face(astronaut).detector == "face-mesh"


def test_ssd_anchors_and_weighted_nms():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # 16x16 cells x 2 anchors at stride 8, then 8x8 cells x 6 anchors at stride 16
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    kps[1] += 3
    merged = weighted_nms(boxes, kps, np.array([0.6, 0.9, 0.7]))
    assert [round(m[0], 2) for m in merged] == [0.9, 0.7]
    # the cluster's box is the score-weighted mean of its two members
    np.testing.assert_allclose(merged[0][1], (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5)
    np.testing.assert_allclose(merged[0][2], np.full((6, 2), 3 * 0.9 / 1.5))


def test_small_model_inputs_are_area_filtered_but_770_is_difflocks_bilinear():
    import cv2

    # One-pixel stripes: bilinear sampling at 1/27 picks whole stripes (speckle), an area
    # filter averages them to flat gray.
    stripes = np.zeros((3024, 3024, 3), np.uint8)
    stripes[:, ::2] = 255
    box = CropBox(0, 0, 3024)
    small = cut_crop(stripes, box, out_size=112)
    # 27 columns per output pixel: 14 of one colour and 13 of the other, so 123 or 132
    assert small.std() < 5 and abs(float(small.mean()) - 127.5) < 2
    aliased = cv2.resize(stripes, (112, 112), interpolation=cv2.INTER_LINEAR)
    assert aliased.std() > 50  # what the filter prevents
    frame = np.random.default_rng(1).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cut_crop(frame, CropBox(0, 0, 900), CROP_SIZE),
                                  cv2.resize(frame, (CROP_SIZE, CROP_SIZE),
                                             interpolation=cv2.INTER_LINEAR))


@pytest.mark.skipif(not os.environ.get("TRESSEL_TEST_FACE_LANDMARKER"),
                    reason="live check against MediaPipe: set TRESSEL_TEST_FACE_LANDMARKER to a "
                           "face_landmarker.task and install mediapipe")
def test_default_crop_matches_live_face_landmarker(portraits):
    pytest.importorskip("mediapipe")
    task = os.environ["TRESSEL_TEST_FACE_LANDMARKER"]
    compared = 0
    for photo in portraits.values():
        for variant in VARIANTS:
            image = make_variant(photo, variant)
            try:
                exact = crop_face(image, landmarker_model=task)
            except FaceNotFoundError:
                continue  # too small for the FaceLandmarker (the stored reference covers it)
            ours = crop_face(image)
            assert ours.detector == "face-mesh"
            assert_close_box(ours.box, exact.box, tolerance=0.01)
            compared += 1
    assert compared >= len(PORTRAITS) * 3

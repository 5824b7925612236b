"""The hair measured in a portrait (tressel.hair_reading): the real models on a real photo, and
the measurement on that photo edited to show what the test photos lack (long, blonde, bald and
afro hair)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from tressel.hair_reading import (
    FALLS_PAST_EARS_CM,
    LIGHTNESS_TO_MELANIN,
    face_window,
    fit_strand_lengths,
    load_segmenter,
    measure_hair,
    melanin_from_lightness,
    read_hair,
    reading_from_measurements,
)
from tressel.train.portraits import available_portraits

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def obama():
    """(photo, mesh, window, window mesh, in_photo, person probability) of the close-cropped
    portrait, from the real face mesh and segmentation."""
    from PIL import Image
    from tressel.face import crop_face

    rgb = np.asarray(Image.open(available_portraits()["obama"]).convert("RGB"))
    mesh = crop_face(rgb).mesh
    window, points, in_photo = face_window(rgb, mesh)
    person = load_segmenter().person_probability(window)
    return rgb, mesh, window, points, in_photo, person


def _head_geometry(points):
    eye_y = float(points[468:474:5, 1].mean())
    eye_x = float(points[[468, 473], 0].mean())
    face_top = float(points[:468, 1].min())
    half_width = float(np.ptp(points[:468, 0]) / 2)
    return eye_x, eye_y, face_top, half_width


def test_a_close_cropped_head_reads_under_5cm_with_dark_hair(obama):
    rgb, mesh, *_ = obama
    reading = read_hair(rgb, mesh)
    m = reading.measurements
    assert reading.length_cm < 5.0
    assert m.fall_cm < FALLS_PAST_EARS_CM
    assert reading.melanin is not None and reading.melanin > 0.35  # not blonde
    assert reading.curl_type is None
    assert reading.measurements.coherence is not None  # the photo is fine enough to read
    # The scale is a face's: the outline above the eyes is a head's height, in centimetres.
    assert 8.0 < m.top_cm < 14.0
    assert "cm strands" in reading.describe()


def test_the_segmentation_finds_the_person_not_the_room(obama):
    *_, _window, points, in_photo, person = obama
    eye_x, eye_y, _face_top, _ = _head_geometry(points)
    assert person[int(eye_y), int(eye_x)] > 0.9  # the face
    assert person[5, 5] < 0.5  # the corner: curtains or beyond the photo
    # The black beyond the photo's edge is not in it.
    assert not in_photo.all() and in_photo[int(eye_y), int(eye_x)]


def test_hair_painted_to_fall_past_the_shoulders_reads_long(obama):
    *_, window, points, in_photo, person = obama
    short = reading_from_measurements(measure_hair(window, person, points, in_photo))
    eye_x, eye_y, _, half_width = _head_geometry(points)
    hair_rgb = _hair_rgb(window, points, person)
    long_window, long_person = window.copy(), person.copy()
    cm_per_px = short.measurements.cm_per_px
    bottom = int(eye_y + 22.0 / cm_per_px)
    for side in (-1, 1):
        x0 = int(eye_x + side * 0.85 * half_width)
        x1 = int(eye_x + side * 1.6 * half_width)
        lo, hi = sorted((x0, x1))
        long_window[int(eye_y) - 5:bottom, lo:hi] = hair_rgb
        long_person[int(eye_y) - 5:bottom, lo:hi] = 1.0
    long = reading_from_measurements(measure_hair(long_window, long_person, points, in_photo))
    assert long.measurements.fall_cm > 18.0
    assert long.length_cm > 1.5 * 12.0 > short.length_cm * 1.5


def test_another_persons_long_hair_beside_the_face_is_not_this_persons(obama):
    *_, window, points, in_photo, person = obama
    short = reading_from_measurements(measure_hair(window, person, points, in_photo))
    eye_x, eye_y, _, half_width = _head_geometry(points)
    cm_per_px = short.measurements.cm_per_px
    crowded, crowd_person = window.copy(), person.copy()
    # A second person just right of the head: a lock of the same dark hair from above the eyes
    # to 25 cm below them, with a gap of background between the two people.
    x0 = int(eye_x + 1.5 * half_width)
    x1 = x0 + int(6 / cm_per_px)
    rows = slice(int(eye_y - 6 / cm_per_px), int(eye_y + 25 / cm_per_px))
    crowd_person[:, x0 - 4:x1 + 4] = 0.0
    crowd_person[rows, x0:x1] = 1.0
    crowded[rows, x0:x1] = _hair_rgb(window, points, person)
    reading = reading_from_measurements(measure_hair(crowded, crowd_person, points, in_photo))
    assert reading.measurements.fall_cm < 6.0 and reading.length_cm < 5.0


def test_blonde_hair_reads_lighter_than_dark_hair(obama):
    *_, window, points, in_photo, person = obama
    dark = reading_from_measurements(measure_hair(window, person, points, in_photo))
    hair = _hair_pixels(window, points, person)
    blonde_window = window.copy()
    blonde_window[hair] = (214, 182, 120)  # a golden blonde
    blonde = reading_from_measurements(measure_hair(blonde_window, person, points, in_photo))
    assert blonde.melanin < 0.35 < dark.melanin


def test_blonde_hair_close_to_fair_skin_is_still_found():
    """The astronaut's hair recoloured a pale blonde a few CIELAB units from her skin, its
    strand texture kept: the outline says there is hair, so it is looked for more finely."""
    import cv2
    from PIL import Image
    from tressel.face import crop_face
    from tressel.hair_reading import hair_region

    rgb = np.asarray(Image.open(available_portraits()["astronaut"]).convert("RGB"))
    window, points, in_photo = face_window(rgb, crop_face(rgb).mesh)
    person = load_segmenter().person_probability(window)
    brown, hair = hair_region(window, person, points, in_photo)
    lab = cv2.cvtColor(window, cv2.COLOR_RGB2LAB).astype(np.float32)
    skin = np.array(brown.skin_lab) * [255 / 100, 1, 1] + [0, 128, 128]
    lightness = lab[hair, 0]
    # Strands a little lighter and yellower than the skin, with a quarter of the texture.
    lab[hair, 0] = np.clip(skin[0] + 4 + 0.25 * (lightness - lightness.mean()), 0, 255)
    lab[hair, 1] = skin[1] - 3
    lab[hair, 2] = skin[2] + 4
    pale = cv2.cvtColor(lab.round().astype(np.uint8), cv2.COLOR_LAB2RGB)
    blonde = reading_from_measurements(measure_hair(pale, person, points, in_photo))
    assert blonde.melanin is not None
    assert blonde.melanin < 0.35 < reading_from_measurements(brown).melanin
    assert blonde.length_cm > 3.0  # short hair, not the stubble of a bald head


def test_a_bald_head_reads_as_stubble(obama):
    *_, window, points, in_photo, person = obama
    skin = np.median(window[_face_pixels(window, points)], axis=0).astype(np.uint8)
    bald_window = window.copy()
    bald_window[_hair_pixels(window, points, person)] = skin
    bald = reading_from_measurements(measure_hair(bald_window, person, points, in_photo))
    assert bald.measurements.hair_lab is None
    assert bald.length_cm < 1.0 and bald.melanin is None


def test_an_afro_outline_reads_coily(obama):
    import cv2

    *_, window, points, in_photo, person = obama
    eye_x, eye_y, face_top, half_width = _head_geometry(points)
    cm_per_px = reading_from_measurements(
        measure_hair(window, person, points, in_photo)).measurements.cm_per_px
    afro_window, afro_person = window.copy(), person.copy()
    disc = np.zeros(person.shape, np.uint8)
    centre = (int(eye_x), int(face_top))
    # A short afro: 6-7 cm of hair around the skull (its outline ~17 cm above the eyes).
    cv2.ellipse(disc, centre, (int(half_width + 7 / cm_per_px), int(13 / cm_per_px)), 0, 0, 360,
                1, -1)
    face = _face_pixels(window, points, dilate=9)
    paint = (disc > 0) & ~face & (np.arange(person.shape[0])[:, None] < eye_y + 2 / cm_per_px)
    afro_window[paint] = (38, 28, 22)
    afro_person[paint] = 1.0
    # The portrait ends a little above the head: the painted outline pretends it goes on.
    taller_photo = np.ones_like(in_photo)
    afro = reading_from_measurements(measure_hair(afro_window, afro_person, points, taller_photo))
    assert afro.curl_type == "coily"
    assert afro.melanin > 0.7


def test_lightness_maps_to_melanin_monotonically():
    lightness = np.linspace(0, 100, 41)
    melanin = [melanin_from_lightness(v) for v in lightness]
    assert all(a >= b for a, b in itertools.pairwise(melanin))
    assert melanin_from_lightness(LIGHTNESS_TO_MELANIN[0][0]) > 0.7  # black
    assert melanin_from_lightness(65.0) < 0.35  # blonde


def test_measurements_decide_length_and_curl():
    from tressel.hair_reading import HairMeasurements

    base = HairMeasurements(cm_per_px=0.1, hair_share=0.8, top_cm=10.6, fall_cm=1.0, side_cm=1.4,
                            hair_lab=(20.0, 2.0, 5.0), skin_lab=(60.0, 15.0, 20.0))
    assert reading_from_measurements(base).length_cm < 2.5  # close-cropped
    assert reading_from_measurements(replace(base, top_cm=13.0)).length_cm > 5.0  # short
    falls = reading_from_measurements(replace(base, fall_cm=20.0))
    assert falls.length_cm == pytest.approx(30.0) and falls.curl_type is None
    afro = reading_from_measurements(replace(base, top_cm=17.0, side_cm=6.0))
    assert afro.curl_type == "coily"
    assert reading_from_measurements(replace(base, hair_lab=None)).melanin is None


def test_a_thin_outline_of_coiled_hair_reads_coily_and_brushed_hair_does_not():
    from tressel.hair_reading import HairMeasurements

    short = HairMeasurements(cm_per_px=0.1, hair_share=0.8, top_cm=13.5, fall_cm=1.0,
                             side_cm=3.0, hair_lab=(20.0, 2.0, 5.0), skin_lab=(40.0, 12.0, 18.0))
    assert reading_from_measurements(replace(short, coherence=0.35)).curl_type == "coily"
    assert reading_from_measurements(replace(short, coherence=0.6)).curl_type is None
    assert reading_from_measurements(short).curl_type is None  # texture not seen: no guess
    barely = replace(short, top_cm=12.7, side_cm=1.4, coherence=0.35)  # stands 2.2 cm
    assert reading_from_measurements(barely).curl_type == "coily"
    # A close crop is as incoherent, but it does not stand off the head.
    close = replace(short, top_cm=10.7, side_cm=1.4, coherence=0.35)
    assert reading_from_measurements(close).curl_type is None


def test_strand_coherence_tells_strands_side_by_side_from_coils():
    import cv2
    from tressel.hair_reading import strand_coherence

    size = 256
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    # Strands side by side: fine stripes along a gentle wave.
    combed = (127 + 100 * np.sin(x / 1.6 + 3 * np.sin(y / 40))).astype(np.uint8)
    # Coils: small rings of hair scattered over the region.
    rng = np.random.default_rng(0)
    coiled = np.full((size, size), 60, np.uint8)
    for cx, cy in rng.integers(0, size, size=(900, 2)):
        cv2.circle(coiled, (int(cx), int(cy)), int(rng.integers(3, 7)), 200, 1)
    hair = np.zeros((size, size), bool)
    hair[32:-32, 32:-32] = True
    assert strand_coherence(combed, hair, 5.0) > 0.8
    assert strand_coherence(coiled, hair, 5.0) < 0.45
    assert strand_coherence(combed, np.zeros_like(hair), 5.0) is None  # no hair to read


def test_strands_are_cut_shorter_and_scaled_longer_about_their_roots():
    # Smooth strands of different lengths: arcs of circles bending down from their roots.
    rng = np.random.default_rng(0)
    radius = rng.uniform(0.05, 0.3, size=(20, 1))
    angle = np.linspace(0, 1.5, 32)[None] * rng.uniform(0.5, 1.0, size=(20, 1))
    strands = np.stack([radius * np.sin(angle), -radius * (1 - np.cos(angle)),
                        np.zeros_like(angle)], axis=-1) + rng.normal(size=(20, 1, 3))
    lengths = np.linalg.norm(np.diff(strands, axis=1), axis=-1).sum(1)
    factor = 0.03 / np.median(lengths)
    shorter = fit_strand_lengths(strands, 0.03)
    new_lengths = np.linalg.norm(np.diff(shorter, axis=1), axis=-1).sum(1)
    assert shorter.shape == strands.shape
    # Measured along the new points, which cut the original corners: within 1 %.
    assert np.median(new_lengths) == pytest.approx(0.03, rel=1e-2)
    np.testing.assert_allclose(new_lengths / lengths, factor, rtol=1e-2)
    np.testing.assert_array_equal(shorter[:, 0], strands[:, 0])
    # A cut strand is the start of the original path, its points evenly spaced along it.
    gaps = np.linalg.norm(np.diff(shorter, axis=1), axis=-1)
    np.testing.assert_allclose(gaps, np.broadcast_to(gaps[:, :1], gaps.shape), rtol=1e-3)
    first_step = np.linalg.norm(strands[:, 1] - strands[:, 0], axis=-1)
    inside = gaps[:, 0] * 2 < first_step  # the cut's first two steps lie on the first segment
    direction = (strands[:, 1] - strands[:, 0]) / first_step[:, None]
    np.testing.assert_allclose(shorter[inside, 2], strands[inside, 0]
                               + 2 * gaps[inside, :1] * direction[inside], atol=1e-9)
    grown = fit_strand_lengths(strands, 100.0, max_scale=1.6)
    np.testing.assert_allclose(grown - grown[:, :1], 1.6 * (strands - strands[:, :1]))


# --- helpers: regions of the real window


def _face_pixels(window, points, dilate: int = 1):
    import cv2

    face = np.zeros(window.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(points[:468, :2]).astype(np.int32)), 1)
    return cv2.dilate(face, np.ones((dilate, dilate), np.uint8)) > 0


def _hair_pixels(window, points, person):
    """The person above the eyes and outside the face: the hair and scalp of the photo."""
    eye_x, eye_y, _face_top, half_width = _head_geometry(points)
    rows = np.arange(window.shape[0])[:, None]
    cols = np.arange(window.shape[1])[None, :]
    near = (rows < eye_y) & (np.abs(cols - eye_x) < 2.5 * half_width)
    return (person > 0.5) & near & ~_face_pixels(window, points, dilate=7)


def _hair_rgb(window, points, person):
    pixels = window[_hair_pixels(window, points, person)].astype(float)
    darkest = pixels[pixels.sum(1) <= np.percentile(pixels.sum(1), 40)]
    return np.median(darkest, axis=0).astype(np.uint8)


# --- in jobs


def test_demo_jobs_follow_the_measured_hair_and_others_do_not(bundle):
    from tressel.pipeline import GenerateParams, run_generate
    from tressel.train.attributes import measure_groom

    photo = available_portraits()["obama"]
    quick = GenerateParams(seed=0, steps=4, max_strands=300)
    read = run_generate(photo, "tressel-demo", quick)
    model_own = run_generate(photo, "tressel-demo", replace(quick, hair_reading=False))
    reading = read.hair_reading
    assert reading is not None and model_own.hair_reading is None
    assert measure_groom(read.hair.positions)["length_cm"] < 5.0
    assert (measure_groom(model_own.hair.positions)["length_cm"]
            > 2 * measure_groom(read.hair.positions)["length_cm"])
    assert read.hair.material.melanin == pytest.approx(reading.melanin)
    assert read.hair.provenance.operations["hair_reading"] == reading.describe()
    assert "hair_reading" not in model_own.hair.provenance.operations
    # A bundle without a style head (DiffLocks, the test bundles) is not measured.
    assert run_generate(photo, bundle, GenerateParams(steps=2)).hair_reading is None


def test_hosts_and_daemon_requests_turn_the_hair_reading_off():
    """(The command line and batch manifests: tests/test_demo_curl.py, with --no-curl.)"""
    from tressel.errors import ConfigError
    from tressel.hosting.options import GroomOptions
    from tressel.params import check_generate_params

    assert "hair_reading" not in GroomOptions().submit_kwargs()["params"]
    assert GroomOptions(hair_reading=False).submit_kwargs()["params"]["hair_reading"] is False
    assert check_generate_params({"hair_reading": False})["hair_reading"] is False
    with pytest.raises(ConfigError, match="hair_reading"):
        check_generate_params({"hair_reading": "maybe"})


def test_a_missing_segmentation_model_leaves_the_job_to_the_model(monkeypatch, caplog, obama):
    from tressel import hair_reading
    from tressel.pipeline import read_hair_or_none

    rgb, mesh, *_ = obama
    monkeypatch.setattr(hair_reading, "MODEL_FILE", hair_reading.MODEL_FILE.with_name("gone"))
    hair_reading.load_segmenter.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert read_hair_or_none(rgb, mesh, "obama.jpg") is None
        assert "segmentation model missing" in caplog.text and "obama.jpg" in caplog.text
    finally:
        hair_reading.load_segmenter.cache_clear()

"""Property-based fuzzing (hypothesis) of what hostile or broken input reaches first.

- Image decoding: any bytes, and real JPEG/PNG/TIFF/EXR files of random size, depth and
  channels, truncated, bit-flipped or with garbage appended. `load_image` either returns finite
  float32 RGB in [0, 1] or raises `ImageError`, never anything else; `check_image` (the
  daemon's bounded-memory check at submission) accepts exactly what `load_image` accepts.
- Cropping: `cut_crop` copies exactly the pixels inside the box and black outside it, for any
  box, inside, across or outside the image; `crop_face(crop=False)` always gives the square.
- The job request schema: any JSON for `JobRequest` is either refused as a validation error
  or accepted with every known parameter finite and in bounds, and then either refused by the
  pipeline engine with a `ConfigError` or turned into a cache key. Over HTTP, random request
  fields never get a 500.

Bounded: a fixed number of examples each (the whole module takes well under a minute).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tressel.errors import ConfigError, ImageError

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- image decoding ------------------------------------------------------------------------------

FORMATS = {"png": ("uint8", "uint16"), "jpg": ("uint8",), "tif": ("uint8", "uint16", "float"),
           "exr": ("half", "float")}


@st.composite
def encoded_images(draw) -> bytes:
    """The bytes of a real image file of random format, size, pixel type and channels."""
    import OpenImageIO as oiio

    ext = draw(st.sampled_from(sorted(FORMATS)))
    pixel_type = draw(st.sampled_from(FORMATS[ext]))
    channels = draw(st.sampled_from((1, 3) if ext == "jpg" else (1, 2, 3, 4)))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).random((height, width, channels)).astype(np.float32)
    if draw(st.booleans()) and pixel_type in ("half", "float"):
        pixels = pixels * 8 - 2  # scene-linear values outside [0, 1]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"img.{ext}"
        out = oiio.ImageOutput.create(str(path))
        assert out is not None and out.open(str(path), oiio.ImageSpec(width, height, channels,
                                                                       pixel_type))
        assert out.write_image(pixels)
        out.close()
        return path.read_bytes()


@st.composite
def damaged(draw, images) -> bytes:
    data = bytearray(draw(images))
    action = draw(st.sampled_from(["keep", "truncate", "flip", "append"]))
    if action == "truncate" and len(data) > 1:
        del data[draw(st.integers(0, len(data) - 1)):]
    elif action == "flip":
        for _ in range(draw(st.integers(1, 8))):
            index = draw(st.integers(0, len(data) - 1))
            data[index] ^= 1 << draw(st.integers(0, 7))
    elif action == "append":
        data += draw(st.binary(min_size=1, max_size=256))
    return bytes(data)


IMAGE_BYTES = st.one_of(st.binary(max_size=512), damaged(encoded_images()))


@FUZZ
@given(IMAGE_BYTES)
def test_decoding_any_bytes_gives_pixels_or_an_image_error(data):
    from tressel.images import ImageLimits, check_image, load_image

    limits = ImageLimits(max_file_bytes=1 << 20, max_pixels=4096)
    try:
        loaded = load_image(data, limits, name="fuzz.png")
    except ImageError as exc:
        assert "fuzz.png" in str(exc) or "empty" in str(exc)
        with pytest.raises(ImageError):
            check_image(data, limits, name="fuzz.png")
        return
    rgb = loaded.rgb
    assert rgb.dtype == np.float32 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert np.isfinite(rgb).all() and rgb.min() >= 0.0 and rgb.max() <= 1.0
    info = check_image(data, limits, name="fuzz.png")
    assert (info.height, info.width) == rgb.shape[:2] and info.sha256 == loaded.sha256


# -- cropping ------------------------------------------------------------------------------------


@FUZZ
@given(height=st.integers(1, 40), width=st.integers(1, 40), x0=st.integers(-60, 60),
       y0=st.integers(-60, 60), size=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_cut_crop_copies_the_box_and_pads_with_black(height, width, x0, y0, size, seed):
    from tressel.face import CropBox, cut_crop

    frame = np.random.default_rng(seed).integers(1, 256, (height, width, 3), dtype=np.uint8)
    box = CropBox(x0, y0, size)
    window = cut_crop(frame, box, out_size=size)
    assert window.shape == (size, size, 3) and window.dtype == np.uint8
    ys, xs = np.mgrid[0:size, 0:size]
    src_y, src_x = ys + y0, xs + x0
    inside = (src_y >= 0) & (src_y < height) & (src_x >= 0) & (src_x < width)
    assert (window[~inside] == 0).all()  # the frame has no zero pixels: zeros are padding
    assert (window[inside] == frame[src_y[inside], src_x[inside]]).all()
    resized = cut_crop(frame, box, out_size=17)
    assert resized.shape == (17, 17, 3) and resized.dtype == np.uint8
    if not inside.any():
        assert not resized.any()


@FUZZ
@given(height=st.integers(1, 60), width=st.integers(1, 60), out_size=st.integers(1, 48),
       as_float=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_whole_image_crop_is_always_the_requested_square(height, width, out_size, as_float,
                                                         seed):
    from tressel.face import crop_face

    rng = np.random.default_rng(seed)
    rgb = rng.random((height, width, 3)).astype(np.float32) if as_float else \
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    crop = crop_face(rgb, crop=False, out_size=out_size)
    assert crop.image.shape == (out_size, out_size, 3) and crop.image.dtype == np.uint8
    assert crop.box.size == max(height, width)
    assert crop.box.x0 <= 0 and crop.box.y0 <= 0
    assert crop.box.x1 >= width and crop.box.y1 >= height


# -- the job request schema ----------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["NaN", "1e999", "\x00", "cuda:0", "bfloat16", "usdc", "../../etc"]),
)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
PARAM_NAMES = st.sampled_from(["seed", "steps", "guidance", "guidance_interval",
                               "density_scale", "max_strands", "dtype", "crop",
                               "keep_texture", "decode_chunk_size", "device", "bogus"])
WRITE_NAMES = st.sampled_from(["points_per_strand", "basis", "units", "guides", "lod",
                               "preview_fraction", "root_width", "groom_name", "nonsense"])
SENSIBLE = {"steps": st.integers(1, 50), "guidance": st.floats(0, 10),
            "guidance_interval": st.tuples(st.floats(0, 4), st.floats(5, 100)).map(list),
            "density_scale": st.floats(0.1, 4), "max_strands": st.integers(1, 1000)}


HOSTILE = st.sampled_from([float("nan"), float("inf"), -float("inf"), 10**12, 2**64, -1, 0,
                           1e308, "1", [1, 2, 3], [float("nan"), 1], {}, True])


def _values(names: st.SearchStrategy) -> st.SearchStrategy:
    values = st.one_of(HOSTILE, JSON_VALUES, st.one_of(*SENSIBLE.values()))
    return st.dictionaries(names, values, max_size=4)


REQUESTS = st.fixed_dictionaries({}, optional={
    "seed": st.one_of(st.integers(-5, 2**64), JSON_LEAVES),
    "format": st.one_of(st.sampled_from(["usdc", "usda", "obj"]), JSON_LEAVES),
    "bundle": st.one_of(st.none(), st.text(max_size=20)),
    "params": st.one_of(_values(PARAM_NAMES), JSON_VALUES),
    "write_options": st.one_of(_values(WRITE_NAMES), JSON_VALUES),
    "extra": JSON_VALUES,
})


@pytest.fixture(scope="module")
def engine():
    from tressel.daemon.engine import PipelineEngine

    return PipelineEngine()


@FUZZ
@given(REQUESTS)
def test_any_job_request_is_refused_cleanly_or_fully_valid(engine, request_json):
    from pydantic import ValidationError
    from tressel.daemon.cache import cache_key
    from tressel.daemon.schemas import JobRequest
    from tressel.params import check_generate_params

    text = json.dumps(request_json)  # NaN and Infinity travel as JSON's common extension
    try:
        job = JobRequest.model_validate_json(text)
    except ValidationError:
        return
    check_generate_params(job.params, known_only=True)  # accepted values pass again
    try:
        params = engine.canonical_params(job.params, job.seed)
        options = engine.canonical_write_options(job.write_options)
    except ConfigError:
        return
    key = cache_key("0" * 64, "1" * 64, params, options, job.seed, job.format)
    assert len(key) == 64


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from daemon_support import Daemon

    proc = Daemon(tmp_path_factory.mktemp("fuzz") / "state")
    proc.client = proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> bytes:
    from daemon_support import write_png

    return write_png(tmp_path_factory.mktemp("fuzz-image") / "p.png", seed=99).read_bytes()


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(request_text=st.one_of(REQUESTS.map(json.dumps), st.text(max_size=40)),
       name=st.text(max_size=30), image=st.one_of(st.binary(max_size=64), st.none()))
def test_random_submissions_over_http_never_get_a_500(daemon, portrait, request_text, name,
                                                      image):
    from tressel.client import _multipart

    assume("step_seconds" not in request_text)  # the test engine's own timing knob
    image = portrait if image is None else image  # a real photo: the request is what varies
    body, content_type = _multipart({"request": request_text}, "image", name or "x", image)
    status, _, reply = daemon.client.request("POST", "/v1/jobs", body=body,
                                             headers={"Content-Type": content_type})
    assert status in (201, 400, 413, 415, 422), (status, reply[:300])
    problem = json.loads(reply)
    if status != 201:
        assert problem["detail"] and "Internal" not in problem["title"]

"""Image decoding: real files of each supported kind written with OpenImageIO, and bad inputs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from helpers import write_image
from tressel.errors import ImageError
from tressel.images import ImageLimits, linear_to_srgb, load_image


@pytest.fixture
def rgb8() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


def test_png8_exact_and_hash(tmp_path, rgb8):
    path = write_image(tmp_path / "a.png", rgb8, "uint8")
    image = load_image(path)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (24, 32, 3)
    np.testing.assert_array_equal(image.rgb, rgb8.astype(np.float32) / np.float32(255))
    assert image.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert image.file_format == "png" and not image.converted_from_linear
    # DiffLocks' crop truncates rgb*255 to uint8: 8-bit inputs must survive that exactly.
    np.testing.assert_array_equal((image.rgb * 255).astype(np.uint8), rgb8)


def test_png16_with_alpha_dropped(tmp_path):
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 65536, size=(10, 12, 4), dtype=np.uint16)
    image = load_image(write_image(tmp_path / "a16.png", rgba, "uint16"))
    assert image.rgb.shape == (10, 12, 3) and image.source_type == "uint16"
    np.testing.assert_allclose(image.rgb, rgba[..., :3] / 65535.0, atol=1e-7)


def test_jpeg_close_to_source(tmp_path):
    # a smooth image survives JPEG compression within a few levels
    y, x = np.mgrid[0:64, 0:64]
    smooth = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    image = load_image(write_image(tmp_path / "a.jpg", smooth, "uint8"))
    assert image.file_format == "jpeg"
    assert np.abs(image.rgb * 255 - smooth).mean() < 3.0


def test_tiff16_and_grayscale(tmp_path):
    gray = np.linspace(0, 65535, 8 * 9).reshape(8, 9, 1).astype(np.uint16)
    image = load_image(write_image(tmp_path / "g.tif", gray, "uint16"))
    assert image.file_format == "tiff" and image.rgb.shape == (8, 9, 3)
    np.testing.assert_allclose(image.rgb[..., 0], gray[..., 0] / 65535.0, atol=1e-7)
    np.testing.assert_array_equal(image.rgb[..., 0], image.rgb[..., 2])


def test_gray_alpha_png(tmp_path):
    ya = np.zeros((5, 6, 2), np.uint8)
    ya[..., 0] = 200
    ya[..., 1] = 7
    image = load_image(write_image(tmp_path / "ya.png", ya, "uint8"))
    np.testing.assert_allclose(image.rgb, 200 / 255, atol=1e-7)


@pytest.mark.parametrize("pixel_type", ["half", "float"])
def test_exr_linear_to_srgb(tmp_path, pixel_type):
    linear = np.array([[[0.0, 0.001, 0.18], [0.5, 1.0, 4.0]]], np.float32)
    stored = linear.astype(np.float16) if pixel_type == "half" else linear
    image = load_image(write_image(tmp_path / f"lin_{pixel_type}.exr", stored, pixel_type))
    assert image.file_format == "openexr" and image.converted_from_linear
    expected = np.clip(linear_to_srgb(stored.astype(np.float32)), 0, 1)
    np.testing.assert_allclose(image.rgb, expected, atol=1e-6)
    # 18% grey encodes to about 0.46 in sRGB; values above 1 clip
    assert 0.45 < image.rgb[0, 0, 2] < 0.47 and image.rgb[0, 1, 2] == 1.0


def test_exr_channel_order_by_name(tmp_path):
    bgr = np.zeros((2, 2, 3), np.float32)
    bgr[..., 0] = 1.0  # B
    image = load_image(write_image(tmp_path / "bgr.exr", bgr, "float", ["B", "G", "R"]))
    np.testing.assert_allclose(image.rgb[0, 0], [0.0, 0.0, 1.0], atol=1e-6)


def test_bytes_match_path(tmp_path, rgb8):
    path = write_image(tmp_path / "b.png", rgb8, "uint8")
    from_bytes = load_image(path.read_bytes(), name="upload.png")
    from_path = load_image(path)
    np.testing.assert_array_equal(from_bytes.rgb, from_path.rgb)
    assert from_bytes.sha256 == from_path.sha256 and from_bytes.name == "upload.png"


def test_bytes_exr(tmp_path):
    data = np.full((3, 4, 3), 0.18, np.float32)
    path = write_image(tmp_path / "c.exr", data, "half")
    image = load_image(path.read_bytes())
    assert image.file_format == "openexr" and image.converted_from_linear


def test_truncated_jpeg(tmp_path, rgb8):
    path = write_image(tmp_path / "t.jpg", np.tile(rgb8, (8, 8, 1)), "uint8")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"broken\.jpg.*truncated or corrupt"):
        load_image(broken)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(broken.read_bytes())


def test_truncated_png(tmp_path, rgb8):
    path = write_image(tmp_path / "t.png", np.tile(rgb8, (8, 8, 1)), "uint8")
    broken = tmp_path / "broken.png"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"broken\.png.*truncated or corrupt"):
        load_image(broken)


def test_random_bytes_unsupported(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ImageError, match=r"junk\.jpg.*convert it to PNG or JPEG"):
        load_image(junk)


def test_text_file_unsupported(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n" * 20)
    with pytest.raises(ImageError, match=r"notes\.txt"):
        load_image(notes)


def test_empty_and_missing(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png is empty"):
        load_image(empty)
    with pytest.raises(ImageError, match="is empty"):
        load_image(b"")
    with pytest.raises(ImageError, match=r"image not found: .*nope\.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)


def test_limits(tmp_path, rgb8):
    path = write_image(tmp_path / "big.png", rgb8, "uint8")
    with pytest.raises(ImageError, match=r"big\.png is 24x32|big\.png is 32x24"):
        load_image(path, limits=ImageLimits(max_pixels=500))
    with pytest.raises(ImageError, match=r"over the .* MB limit"):
        load_image(path, limits=ImageLimits(max_file_bytes=100))
    with pytest.raises(ImageError, match="over the"):
        load_image(path.read_bytes(), limits=ImageLimits(max_file_bytes=100))
    assert load_image(path, limits=ImageLimits(max_pixels=24 * 32)).width == 32

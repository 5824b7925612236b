"""Decode an input photo (path or bytes) into float32 sRGB RGB pixels through OpenImageIO."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tressel.errors import ImageError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_PIXELS = 100_000_000

SUPPORTED = "JPEG, PNG, TIFF or OpenEXR"
# Formats whose float pixels are scene-linear unless the file says otherwise.
_LINEAR_FORMATS = {"openexr", "hdr", "pnm"}


@dataclass(frozen=True)
class ImageLimits:
    """Refuse inputs above these sizes before any pixel is decoded (a guard for the daemon)."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ImageInfo:
    """What `check_image` learns about a file without holding its pixels."""

    sha256: str
    name: str
    file_format: str
    width: int
    height: int


# Rows read at once by `check_image`: bands of about this many pixels.
CHECK_BAND_PIXELS = 1 << 20


@dataclass
class LoadedImage:
    """A decoded photo: `rgb` is float32 [H, W, 3] in [0, 1], sRGB-encoded."""

    rgb: np.ndarray
    sha256: str
    name: str
    file_format: str
    source_type: str  # the stored pixel type: uint8, uint16, half, float...
    converted_from_linear: bool

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def load_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    limits: ImageLimits | None = None,
    name: str | None = None,
) -> LoadedImage:
    """Read `source` (a file path, or the bytes of an uploaded file) as float32 sRGB RGB.

    Grayscale is repeated to three channels, alpha is dropped, 16-bit integers keep their
    precision, and half/float data that is scene-linear (OpenEXR, or a linear colour-space
    tag) is encoded to sRGB and clipped to [0, 1]. `sha256` is the hash of the source bytes.
    Every failure raises `ImageError` naming the file and what to do.
    """
    limits = limits or ImageLimits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "uploaded image"
        _check_byte_size(len(data), label, limits)
        digest = hashlib.sha256(data).hexdigest()
        with _staged(data) as path:
            return _decode(path, label, digest, limits)

    path = Path(source)
    label = name or str(path)
    if not path.exists():
        raise ImageError(f"image not found: {label}: check the path and that the file exists")
    if not path.is_file():
        raise ImageError(f"{label} is not a file: pass the path of a {SUPPORTED} image")
    _check_byte_size(path.stat().st_size, label, limits)
    return _decode(path, label, _sha256_file(path), limits)


def check_image(
    data: bytes | bytearray | memoryview,
    limits: ImageLimits | None = None,
    name: str | None = None,
) -> ImageInfo:
    """Check that `data` (an uploaded file) decodes completely, as `load_image` would, while
    holding only a band of about `CHECK_BAND_PIXELS` pixels at a time.

    It refuses exactly what `load_image` refuses, with the same messages, but its memory does
    not grow with the image: a small file that declares tens of megapixels costs a few MB to
    check instead of gigabytes (the daemon checks every upload at submission).
    """
    limits = limits or ImageLimits()
    data = bytes(data)
    label = name or "uploaded image"
    _check_byte_size(len(data), label, limits)
    digest = hashlib.sha256(data).hexdigest()
    with _staged(data) as path:
        image_input, spec, file_format, channels = _open_checked(path, label, limits)
        try:
            read_type = _read_type(str(spec.format))
            first, last = min(channels), max(channels)
            band = max(1, CHECK_BAND_PIXELS // max(spec.width, 1))
            for y in range(spec.y, spec.y + spec.height, band):
                rows = image_input.read_scanlines(0, 0, y, min(y + band, spec.y + spec.height),
                                                  spec.z, first, last + 1, read_type)
                _raise_if_read_failed(image_input, rows, label)
                del rows
        finally:
            image_input.close()
    return ImageInfo(digest, label, file_format, int(spec.width), int(spec.height))


@contextlib.contextmanager
def _staged(data: bytes) -> Iterator[Path]:
    """`data` as a private temp file for the length of the block.

    The OIIO Python bindings expose no in-memory IOProxy, so uploaded bytes go through a file;
    OIIO recognises the format from the content, not the (absent) extension.
    """
    fd, tmp_name = tempfile.mkstemp(prefix="tressel_upload_")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
        yield Path(tmp_name)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _check_byte_size(size: int, label: str, limits: ImageLimits) -> None:
    if size == 0:
        raise ImageError(f"{label} is empty (0 bytes): export the image again or pick another file")
    if size > limits.max_file_bytes:
        raise ImageError(
            f"{label} is {size / 1e6:.1f} MB, over the {limits.max_file_bytes / 1e6:.0f} MB "
            "limit: downscale or re-encode it (a portrait needs only a few megapixels), or "
            "raise the limit"
        )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_checked(path: Path, label: str, limits: ImageLimits) -> tuple:
    """Open `path` with OpenImageIO and check its header against `limits`, before any pixel
    is decoded: (ImageInput, spec, format name, colour channel indices)."""
    import OpenImageIO as oiio

    # Keep stored colour as is when there is alpha: OIIO would otherwise premultiply PNG colour
    # by alpha on read, darkening a photo whose alpha we are about to drop anyway.
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    image_input = oiio.ImageInput.open(str(path), config)
    if image_input is None:
        detail = oiio.geterror().strip() or "unknown reason"
        raise ImageError(
            f"cannot read {label}: not a readable {SUPPORTED} file ({detail}); "
            "convert it to PNG or JPEG and try again"
        )
    try:
        spec = image_input.spec()
        file_format = image_input.format_name()
        if spec.deep:
            raise ImageError(f"{label} is a deep image: flatten it to a {SUPPORTED} image")
        pixels = spec.width * spec.height
        if spec.width <= 0 or spec.height <= 0 or spec.nchannels <= 0:
            raise ImageError(f"{label} has no pixels ({spec.width}x{spec.height}): pick another file")
        if pixels > limits.max_pixels:
            raise ImageError(
                f"{label} is {spec.width}x{spec.height} ({pixels / 1e6:.1f} Mpx), over the "
                f"{limits.max_pixels / 1e6:.1f} Mpx limit: downscale it or raise the limit"
            )
        channels = _colour_channels(list(spec.channelnames), spec.nchannels)
    except BaseException:
        image_input.close()
        raise
    return image_input, spec, file_format, channels


def _read_type(source_type: str) -> str:
    # Integers are read in their own type so that the scaling to [0, 1] is the same float32
    # division DiffLocks applies to 8-bit photos (k/255 survives the crop's uint8 round trip).
    return source_type if source_type in ("uint8", "uint16") else "float"


def _raise_if_read_failed(image_input: object, data: object, label: str) -> None:
    import OpenImageIO as oiio

    # libjpeg reports a truncated file as a warning and still returns (grey-filled) pixels,
    # so the error state must be checked even when the read "succeeds".
    error = (image_input.geterror() or "").strip() or (oiio.geterror() or "").strip()
    if data is None or error:
        raise ImageError(
            f"{label} is truncated or corrupt ({error or 'no pixels returned'}): "
            "re-export or re-download the image"
        )


def _decode(path: Path, label: str, digest: str, limits: ImageLimits) -> LoadedImage:
    import numpy as np

    image_input, spec, file_format, channels = _open_checked(path, label, limits)
    try:
        source_type = str(spec.format)
        is_integer = source_type.startswith(("uint", "int"))
        read_type = _read_type(source_type)
        first, last = min(channels), max(channels)
        data = image_input.read_image(0, 0, first, last + 1, read_type)
        _raise_if_read_failed(image_input, data, label)
        colour_space = spec.get_string_attribute("oiio:ColorSpace", "").lower()
    finally:
        image_input.close()

    array = np.asarray(data)
    if array.ndim == 2:
        array = array[:, :, None]
    array = array[:, :, [c - first for c in channels]]
    if read_type == "uint8":
        rgb = array.astype(np.float32) / np.float32(255)
    elif read_type == "uint16":
        rgb = array.astype(np.float32) / np.float32(65535)
    else:
        rgb = array.astype(np.float32)
    is_linear = _is_linear(colour_space, file_format, is_integer)
    if is_linear:
        rgb = linear_to_srgb(rgb)
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    rgb = np.clip(rgb, 0.0, 1.0)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    log.debug("read %s: %s %dx%d %s linear=%s", label, file_format, rgb.shape[1], rgb.shape[0],
              source_type, is_linear)
    return LoadedImage(rgb, digest, label, file_format, source_type, is_linear)


def _colour_channels(names: list[str], count: int) -> list[int]:
    """Indices of the R, G, B channels (or the single luminance channel); alpha is ignored."""
    upper = [n.upper() for n in names]
    if all(c in upper for c in ("R", "G", "B")):
        return [upper.index("R"), upper.index("G"), upper.index("B")]
    if count >= 3:
        return [0, 1, 2]
    return [0]  # gray or gray+alpha


def _is_linear(colour_space: str, file_format: str, is_integer: bool) -> bool:
    if colour_space:
        if "srgb" in colour_space and "lin" not in colour_space:
            return False
        if any(tag in colour_space for tag in ("lin", "acescg", "aces2065", "scene_linear")):
            return True
    # With no (recognised) tag, float pixels are taken as scene-linear, integers as sRGB.
    return not is_integer and (file_format in _LINEAR_FORMATS or file_format == "tiff")


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) on float32 data; negatives map to 0."""
    import numpy as np

    x = np.maximum(linear.astype(np.float32), np.float32(0))
    low = x * np.float32(12.92)
    high = np.float32(1.055) * np.power(x, np.float32(1 / 2.4)) - np.float32(0.055)
    return np.where(x <= np.float32(0.0031308), low, high).astype(np.float32)

"""Helpers shared by test modules: writing test images, plain groom styles, and torch on one
thread (`torch_threads` is Tressel's own)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tressel.cpu_threads import torch_threads

if TYPE_CHECKING:
    import numpy as np
    from tressel.synth.groom import GroomStyle

__all__ = ["groom_style", "one_thread", "small_filesystem", "torch_threads", "write_image"]


def write_image(path: Path, pixels: np.ndarray, pixel_type: str | None = None,
                channel_names: Sequence[str] | None = None) -> Path:
    """Write `pixels` [H, W, C] with OpenImageIO (the format follows the suffix).

    Stored as `pixel_type`, by default "uint8" for uint8 arrays and "float" otherwise.
    """
    import numpy as np
    import OpenImageIO as oiio

    height, width, channels = pixels.shape
    if pixel_type is None:
        pixel_type = "uint8" if pixels.dtype == np.uint8 else "float"
    spec = oiio.ImageSpec(width, height, channels, pixel_type)
    if channel_names:
        spec.channelnames = tuple(channel_names)
    # store the given values as they are, without un-premultiplying by alpha
    spec.attribute("oiio:UnassociatedAlpha", 1)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels)), out.geterror()
    out.close()
    return path


def groom_style(**changes: Any) -> GroomStyle:
    """A plain synthetic style (long, straight, centre parting, no clumping or frizz) with
    `changes` to the fields a test is about."""
    from tressel.synth.groom import GroomStyle

    plain = {
        "length_class": "long", "length": 0.3, "curl_type": "straight", "curl_radius": 0.0,
        "curl_period": 0.05, "parting": "center", "part_offset": 0.0, "bangs": False,
        "volume": 0.3, "gravity": 0.8, "clumping": 0.0, "frizz": 0.0, "density": 1.0,
        "hairline_recession": 0.0, "melanin": 0.5, "redness": 0.2, "root_darkness_start": 0.0,
        "root_darkness_end": 0.2, "root_darkness_strength": 0.0}
    return GroomStyle(**{**plain, **changes})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models run single-threaded: on a shared CPU, two OpenMP threads wait for each
    other at every tiny op (measured 28x slower under load); alone they gain nothing here.

    Autouse in the modules that import it: `from helpers import one_thread  # noqa: F401`.
    """
    with torch_threads(1):
        yield


@contextmanager
def small_filesystem(path: Path, size_bytes: int) -> Iterator[Path]:
    """A real, small filesystem (tmpfs) mounted at `path`, for disk-full tests; the test is
    skipped, with the reason, where mounting is not permitted (not root, or no CAP_SYS_ADMIN)."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("disk-full tests mount a tmpfs, which needs Linux")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the disk-full test "
                    f"({mounted.stderr.strip() or 'mount failed'}): run the tests as root")
    try:
        yield path
    finally:
        # Lazy: a daemon killed a moment ago may still hold files open there.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill_disk(folder: Path, name: str = "filler") -> Path:
    """Fill the filesystem holding `folder` to the last byte; returns the filler file."""
    import errno

    filler = folder / name
    with open(filler, "ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler

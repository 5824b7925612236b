"""Shared by the review-tool tests: its package on sys.path, groom layers, photos, Xvfb."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import time
from pathlib import Path

from system_packages import XVFB_OPENGL, ensure_apt_packages
from tressel.hosting.install import host_source

REVIEW_DIR = host_source("standalone")
if str(REVIEW_DIR) not in sys.path:
    sys.path.insert(0, str(REVIEW_DIR))


def write_layer(path: Path, num_strands: int = 300, seed: int = 0, photo: Path | None = None,
                **options) -> Path:
    """A groom layer from test_usd's synthetic groom; with `photo`, its provenance names that
    photo (hash and a crop box inside it), as a daemon job on it would."""
    from test_usd import make_groom
    from tressel.usd import write_groom

    hair = make_groom(num_strands, 64, seed)
    if photo is not None:
        hair.provenance.image_sha256 = hashlib.sha256(photo.read_bytes()).hexdigest()
        hair.provenance.crop_box = (2, 3, 34, 35)
    write_groom(hair, path, **{"points_per_strand": 16, "guides": 20, "scalp": True,
                               **options})
    return path


def ensure_xvfb() -> str | None:
    """Install Xvfb and the xcb/Mesa libraries when missing; None when ready, else why not."""
    return ensure_apt_packages(XVFB_OPENGL)


def free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X{number}-lock").exists() and \
                not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number between :90 and :199")


@contextlib.contextmanager
def xvfb_display():
    """A private Xvfb server for the test session; yields its DISPLAY value."""
    number = free_display()
    process = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x1200x24",
                                "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if process.poll() is not None:
                raise RuntimeError(f"Xvfb exited: {process.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("Xvfb did not start within 30 s")
            time.sleep(0.05)
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()

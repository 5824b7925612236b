"""The review tool's 3D view, checked from the pixels it renders.

OpenGL runs under a private Xvfb server with Mesa's software rasteriser (llvmpipe), in a
child process (a process has one Qt platform); the session fixture installs Xvfb and the
xcb/Mesa libraries when they are missing. The QPainter fallback is checked on Qt's
`offscreen` platform, where there is no OpenGL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from review_support import REVIEW_DIR, ensure_xvfb, write_layer, xvfb_display

from tressel_review.camera import OrbitCamera  # isort: skip  (after review_support)

TESTS = Path(__file__).resolve().parent
PROBE = TESTS / "review_gl_probe.py"
BACKGROUND = np.array([29, 30, 32])  # views.BACKGROUND in 8-bit


@pytest.fixture(scope="session")
def display():
    reason = ensure_xvfb()
    if reason:
        pytest.skip(f"no X server for the OpenGL view: {reason}")
    with xvfb_display() as value:
        yield value


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    return write_layer(tmp_path_factory.mktemp("gl") / "groom.usdc", num_strands=400)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH", "")]))
    env.pop("QT_QPA_PLATFORM", None)
    env.update(extra)
    return env


def probe(layer: Path, out: Path, env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, str(PROBE), str(layer), str(out)], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((out / "info.json").read_text())


def pixels(path: Path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    # copy: the array must not outlive the QImage that owns the memory
    return data.reshape(height, image.bytesPerLine())[:, :3 * width].reshape(height, width,
                                                                              3).copy()


def hair_mask(frame: np.ndarray) -> np.ndarray:
    return np.abs(frame.astype(int) - BACKGROUND).sum(axis=2) > 30


def expected_mask(layer: Path, info: dict) -> np.ndarray:
    """Where the strands project with the camera the view used, grown by two pixels."""
    from tressel_review import drawing

    camera = OrbitCamera(target=np.array(info["camera"]["target"]), yaw=info["camera"]["yaw"],
                         pitch=info["camera"]["pitch"], distance=info["camera"]["distance"],
                         fov_y=info["camera"]["fov_y"])
    scene = drawing.load_groom_scene(layer)
    dense = drawing.decimate(scene.strands, None, None)
    width, height = info["width"], info["height"]
    xy, front = camera.project(dense.points, width, height)
    mask = np.zeros((height, width), bool)
    xy = np.rint(xy[front]).astype(int)
    for dx in range(-2, 3):
        for dy in range(-2, 3):
            x, y = xy[:, 0] + dx, xy[:, 1] + dy
            keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            mask[y[keep], x[keep]] = True
    return mask


def test_opengl_view_draws_hair_where_the_groom_is(display, layer, tmp_path):
    info = probe(layer, tmp_path, child_env(DISPLAY=display, QT_QPA_PLATFORM="xcb"))
    assert info["gl"], f"fell back to the painter: {info['fallback_reason']}"
    assert "llvmpipe" in info["renderer"].lower() or info["renderer"]
    assert info["indices_drawn"] == info["indices"]  # the whole groom in one draw call
    empty = pixels(tmp_path / "empty.png")
    assert not hair_mask(empty).any()  # a blank frame has no hair pixels
    frame = pixels(tmp_path / "colour.png")
    hair = hair_mask(frame)
    expected = expected_mask(layer, info)
    assert hair.mean() > 0.03, "almost nothing drawn"
    assert (hair & expected).sum() / hair.sum() > 0.97, "hair drawn where there are no strands"
    assert (hair & expected).sum() / expected.sum() > 0.3, "strands missing from the frame"
    assert not hair[:8, :8].any() and not hair[-8:, -8:].any()  # corners stay background
    # Hair colour: test_usd's synthetic groom has a brown-ish predicted colour (red > blue).
    assert frame[hair][:, 0].mean() > frame[hair][:, 2].mean()
    direction = pixels(tmp_path / "direction.png")
    assert np.abs(direction[hair].astype(int) - frame[hair]).mean() > 20  # shading changed
    head = pixels(tmp_path / "head.png")
    assert hair_mask(head).sum() > hair.sum()  # the head adds pixels around the hair


def test_painter_fallback_without_opengl(layer, tmp_path):
    info = probe(layer, tmp_path, child_env(QT_QPA_PLATFORM="offscreen"))
    assert not info["gl"] and "OpenGL" in info["fallback_reason"]
    hair = hair_mask(pixels(tmp_path / "colour.png"))
    assert hair.mean() > 0.02
    assert (hair & expected_mask(layer, info)).sum() / hair.sum() > 0.9
    assert not hair_mask(pixels(tmp_path / "empty.png")).any()


def test_screenshot_command_renders_the_window_once(display, layer, tmp_path):
    shot = tmp_path / "docs" / "review.png"
    result = subprocess.run(
        [sys.executable, "-m", "tressel.cli", "review", str(layer), "--screenshot", str(shot),
         "--size", "1100x640", "--timeout", "120"],
        env=child_env(DISPLAY=display, QT_QPA_PLATFORM="xcb",
                      TRESSEL_REVIEW_DIR=str(tmp_path / "grooms"),
                      XDG_CONFIG_HOME=str(tmp_path / "config")),
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "400 strands" in result.stdout
    frame = pixels(shot)
    assert frame.shape == (640, 1100, 3)
    brownish = (frame[..., 0].astype(int) - frame[..., 2] > 25) & (frame.sum(axis=2) > 120)
    assert brownish.sum() > 500  # the groom is in the picture, not only the panels
    assert REVIEW_DIR.is_dir()


def test_screenshot_of_a_photo_makes_its_groom_on_the_daemon(display, tmp_path):
    """`tressel review PHOTO --screenshot`: the groom is made by a real daemon (tiny random
    bundle), fetched, and drawn beside the photo and its face crop."""
    from daemon_support import REPO, real_daemon, tiny_bundle

    daemon = real_daemon(tmp_path / "state", tiny_bundle(tmp_path))
    daemon.start()
    try:
        shot = tmp_path / "astronaut.png"
        result = subprocess.run(
            [sys.executable, "-m", "tressel.cli", "review", str(REPO / "examples" /
                                                              "astronaut.png"),
             "--screenshot", str(shot), "--size", "1100x640", "--timeout", "240",
             "--daemon-dir", str(daemon.state_dir), "--output-dir", str(tmp_path / "grooms")],
            env=child_env(DISPLAY=display, QT_QPA_PLATFORM="xcb",
                          XDG_CONFIG_HOME=str(tmp_path / "config")),
            capture_output=True, text=True, timeout=400, check=False)
    finally:
        daemon.stop()
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "astronaut_s0.usdc" in result.stdout
    assert list((tmp_path / "grooms").glob("astronaut_s0.usdc"))
    frame = pixels(shot)
    assert frame.shape == (640, 1100, 3)
    # The photo panels show the astronaut's orange suit: strongly orange pixels on the left.
    left = frame[:, :frame.shape[1] // 2].astype(int)
    orange = (left[..., 0] > 180) & (left[..., 1] > 60) & (left[..., 1] < 160) & \
        (left[..., 2] < 90)
    assert orange.sum() > 300

"""Benchmark: the review tool's 3D view, frames per second and buffer preparation.

For each groom size it measures the time to prepare the GPU buffers from strand positions
(`tressel_review.drawing.prepare_buffers`: tangents, colours, the GL_LINES index buffer) and
the frames per second of the OpenGL view while the camera orbits: the whole groom in one draw
call ("all"), and the even subsets a software rasteriser draws at rest ("still") and while the
camera moves ("moving"). The
baseline, measured in the same run, is the QPainter fallback drawing its own decimated subset,
so the ratios say what OpenGL buys over it. Each frame is rendered and finished (glFinish), so
the numbers are render times, not how fast Qt can queue paint events.

Needs a display with OpenGL: on a headless machine run it under Xvfb,
    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/bench_review_view.py
    [--strands 10000 100000] [--points 32] [--frames 20] [--size 960x720]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def synthetic_groom(num: int, points: int, seed: int = 0) -> np.ndarray:
    """[num, points, 3] float32: strands from a head-sized cap, falling and curling."""
    rng = np.random.default_rng(seed)
    polar = np.arccos(rng.uniform(0.1, 1.0, num))
    azimuth = rng.uniform(0, 2 * np.pi, num)
    normal = np.stack([np.sin(polar) * np.cos(azimuth), np.cos(polar),
                       np.sin(polar) * np.sin(azimuth)], -1).astype(np.float32)
    roots = np.array([0.0, 1.65, 0.0], np.float32) + 0.095 * normal
    t = np.linspace(0, 1, points, dtype=np.float32)[None, :, None]
    length = rng.uniform(0.15, 0.35, num).astype(np.float32)[:, None, None]
    fall = normal[:, None] * (0.3 * t) + np.array([0, -1, 0], np.float32) * (t ** 2)
    phase = rng.uniform(0, 2 * np.pi, num).astype(np.float32)[:, None, None]
    curl = 0.03 * t * np.concatenate([np.cos(12 * t + phase), np.zeros_like(t + phase),
                                      np.sin(12 * t + phase)], axis=-1)
    return (roots[:, None] + length * (fall + curl)).astype(np.float32)


def frames_per_second(app, viewport, frames: int, interacting: bool,
                      everything: bool = False) -> float:
    """Orbit and render `frames` frames; `everything` lifts the software view's subset cap."""
    view = viewport.view
    software = view.software
    if everything:
        view.software = False  # draw the whole buffer, as on a GPU
    view.set_interacting(interacting)
    gl_view = hasattr(view, "makeCurrent")
    view.repaint()  # the first frame uploads the buffers: not timed
    app.processEvents()
    start = time.perf_counter()
    for _ in range(frames):
        viewport.link.camera.orbit(7.0, 0.0)
        view.repaint()
        if gl_view:
            view.makeCurrent()
            view.context().functions().glFinish()
            view.doneCurrent()
        app.processEvents()
    seconds = time.perf_counter() - start
    view.set_interacting(False)
    view.software = software
    return frames / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strands", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--points", type=int, default=32, help="points per strand (default 32, "
                        "what the hosts write)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", default="960x720")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "hosts" / "standalone"))
    from tressel_review import drawing
    from tressel_review.app import make_application
    from tressel_review.views import (
        PAINTER_SEGMENTS,
        SOFTWARE_INTERACTIVE_SEGMENTS,
        SOFTWARE_STILL_SEGMENTS,
        GroomViewport,
        opengl_available,
    )

    app = make_application()
    if not opengl_available():
        print("no OpenGL on this display: run under xvfb-run (see --help)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split("x"))
    gl_view, painter_view = GroomViewport(use_gl=True), GroomViewport(use_gl=False)
    for viewport in (gl_view, painter_view):
        viewport.resize(width, height)
        viewport.show()
    app.processEvents()
    print(f"renderer: {gl_view.view.renderer}; {width}x{height}; {args.points} points per "
          f"strand; {args.frames} frames per measurement")
    print(f"{'strands':>8} {'segments':>10} {'MB':>6} {'prepare s':>9} {'GL all fps':>10} "
          f"{'GL still fps':>12} {'GL moving fps':>13} {'painter fps':>11} {'all/painter':>11}")
    for num in args.strands:
        positions = synthetic_groom(num, args.points)
        curves = drawing.CurveSet.from_strands(positions)
        look = drawing.HairLook(melanin=0.4, redness=0.4)
        prepare = []
        for _ in range(3):
            start = time.perf_counter()
            buffers = drawing.prepare_buffers(curves, look)
            prepare.append(time.perf_counter() - start)
        for viewport in (gl_view, painter_view):
            viewport.set_groom(buffers, None)
        full = frames_per_second(app, gl_view, args.frames, interacting=False, everything=True)
        still = frames_per_second(app, gl_view, args.frames, interacting=False)
        moving = frames_per_second(app, gl_view, args.frames, interacting=True)
        painter = frames_per_second(app, painter_view, max(3, args.frames // 4), False)
        print(f"{num:>8,} {buffers.num_segments:>10,} {buffers.nbytes / 1e6:>6.1f} "
              f"{min(prepare):>9.3f} {full:>10.1f} {still:>12.1f} {moving:>13.1f} "
              f"{painter:>11.1f} {full / painter:>10.1f}x")
    print(f"GL all: every segment (what a GPU view always draws); on a software rasteriser the "
          f"view draws at most {SOFTWARE_STILL_SEGMENTS:,} segments at rest (GL still) and "
          f"{SOFTWARE_INTERACTIVE_SEGMENTS:,} while the camera moves (GL moving); painter: at "
          f"most {PAINTER_SEGMENTS:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run by test_review_gl.py in a child process: render a groom layer in the review tool's 3D
view on the current Qt platform and write the frames and what drew them to OUT_DIR.

    python review_gl_probe.py LAYER OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from review_support import REVIEW_DIR  # noqa: F401  (puts tressel_review on sys.path)


def main() -> int:
    layer, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    from tressel_review import drawing
    from tressel_review.app import make_application
    from tressel_review.views import GroomViewport, ViewState

    app = make_application()
    scene = drawing.load_groom_scene(layer)
    buffers = drawing.prepare_buffers(scene.curves("full"), scene.look)
    viewport = GroomViewport()
    viewport.resize(320, 240)
    viewport.show()
    app.processEvents()
    frames = {"empty": viewport.grab_image()}
    viewport.set_groom(buffers, None)  # framed on the strands
    for shading in ("colour", "direction"):
        viewport.set_state(ViewState(shading=shading, show_head=False))
        app.processEvents()
        frames[shading] = viewport.grab_image()
    viewport.set_state(ViewState(shading="colour", show_head=True))
    viewport.set_groom(buffers, drawing.head_mesh(scene), frame=False)
    app.processEvents()
    frames["head"] = viewport.grab_image()
    for name, image in frames.items():
        image.save(str(out / f"{name}.png"), "PNG")
    camera = viewport.link.camera
    info = {
        "gl": viewport.is_gl, "renderer": viewport.view.renderer,
        "software": viewport.view.software, "fallback_reason": viewport.fallback_reason,
        "width": frames["colour"].width(), "height": frames["colour"].height(),
        "camera": {"target": [float(v) for v in camera.target], "yaw": camera.yaw,
                   "pitch": camera.pitch, "distance": camera.distance, "fov_y": camera.fov_y},
        "indices_drawn": getattr(viewport.view, "index_count_drawn", None),
        "indices": len(buffers.indices),
    }
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

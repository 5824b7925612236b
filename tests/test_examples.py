"""examples/render_groom.py: the quick look at a demo groom, front and side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from tressel.images import load_image
from tressel.result import HairMaterial, HairResult
from tressel.synth.groom import generate_groom
from tressel.synth.head import scalp_points
from tressel.synth.render import render_groom
from tressel.usd import write_groom

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "render_groom.py"


def test_render_groom_draws_the_layer_on_the_head_in_both_views(tmp_path):
    groom = generate_groom(seed=5, num_strands=400)
    roots = scalp_points(groom.root_uv)
    material = HairMaterial(melanin=0.2, redness=0.8, root_darkness_start=0.0,
                            root_darkness_end=0.2, root_darkness_strength=0.0)
    hair = HairResult(positions=groom.positions, root_uv=groom.root_uv,
                      root_positions=roots.positions.astype(np.float32),
                      root_normals=roots.normals.astype(np.float32), material=material)
    layer = tmp_path / "groom.usdc"
    write_groom(hair, layer)

    png = tmp_path / "look" / "groom.png"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(layer), str(png), "--size", "96"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "400 strands, 2 views" in proc.stdout
    image = np.round(load_image(png).rgb * 255).astype(np.uint8)  # exact for 8-bit files
    assert image.shape == (96, 192, 3)

    for view, yaw in ((image[:, :96], 0.0), (image[:, 96:], 90.0)):
        bald = render_groom(np.zeros((0, 256, 3), np.float32), 0.2, 0.8, size=96,
                            yaw_degrees=yaw).astype(int)
        changed = np.abs(view.astype(int) - bald).sum(-1) > 30
        assert 0.03 < changed.mean() < 0.8  # hair drawn, the head still visible
        # Light, red hair: the changed pixels are redder than they are blue.
        assert (view[changed][:, 0].astype(int) - view[changed][:, 2]).mean() > 20


def test_render_groom_says_what_is_wrong_with_a_missing_layer(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope.usdc"),
                           str(tmp_path / "nope.png")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "groom layer not found" in proc.stderr and "nope.usdc" in proc.stderr
    assert not (tmp_path / "nope.png").exists()


PORTRAITS_SCRIPT = SCRIPT.parent / "portrait_grooms.py"


def test_portrait_grooms_shows_every_available_portrait_beside_its_groom(tmp_path):
    from tressel.random_bundle import make_random_bundle
    from tressel.train.portraits import available_portraits

    bundle = make_random_bundle(tmp_path / "tiny-random", "tiny")
    png = tmp_path / "portraits.png"
    proc = subprocess.run([sys.executable, str(PORTRAITS_SCRIPT), str(png), "--bundle",
                           str(bundle.path), "--size", "64"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    found = available_portraits()
    assert f"{len(found)} portraits" in proc.stdout
    image = np.round(load_image(png).rgb * 255).astype(np.uint8)
    assert image.shape[1] == 3 * 64 and image.shape[0] > len(found) * 64
    if "astronaut" in found:  # the first row starts with the astronaut's face crop
        assert image[:64, :64].std() > 20

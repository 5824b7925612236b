"""Synthetic grooms: scalp UV, head collision, styles, renders and the on-disk format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import groom_style
from tressel.synth.dataset import list_grooms, read_groom, synthesize
from tressel.synth.groom import GroomStyle, generate_groom, grow_groom, sample_style
from tressel.synth.head import (
    CRANIUM,
    HEAD_PARTS,
    head_signed_scale,
    scalp_mesh_arrays,
    scalp_points,
    write_scalp_ply,
)
from tressel.synth.render import hair_albedo, render_groom


def test_scalp_uv_covers_the_square_and_lies_on_the_cranium():
    vertices, faces, uv = scalp_mesh_arrays(16)
    assert uv.min() == pytest.approx(0.01) and uv.max() == pytest.approx(0.99)
    q = (vertices - np.array(CRANIUM.center)) / np.array(CRANIUM.axes)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    # Winding: every face normal points out of the head (what the SPEC §9 TBN expects).
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert ((normal * (tri.mean(1) - np.array(CRANIUM.center))).sum(1) > 0).all()
    # +t is the front, +s the head's +X side; the centre is the crown, above the ears.
    pts = scalp_points(np.array([[0.5, 0.95], [0.5, 0.05], [0.95, 0.5], [0.5, 0.5]]))
    front, back, side, crown = pts.positions
    assert front[2] > 0.05 and back[2] < -0.05 and side[0] > 0.05
    assert crown[1] > 0.4 and front[1] > back[1]


def test_scalp_ply_has_the_spec_layout(tmp_path):
    path = write_scalp_ply(tmp_path / "scalp.ply", resolution=4)
    text = path.read_text().splitlines()
    assert "property float s" in text and "property float t" in text
    assert "element vertex 25" in text and "element face 32" in text


def test_grooms_are_seeded_and_stay_out_of_the_head():
    a = generate_groom(3, num_strands=300)
    b = generate_groom(3, num_strands=300)
    c = generate_groom(4, num_strands=300)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.positions.shape[1:] == (256, 3) and a.positions.dtype == np.float32
    assert a.style != c.style
    # Roots sit on the scalp; every later point is outside the colliding parts.
    np.testing.assert_allclose(a.positions[:, 0], scalp_points(a.root_uv).positions, atol=1e-6)
    assert head_signed_scale(a.positions[:, 8:].astype(np.float64)).min() > 0.999


@pytest.mark.parametrize("curl", ["straight", "wavy", "curly", "coily"])
def test_styles_change_the_strand_shape(curl):
    style = groom_style(
        curl_type=curl,
        curl_radius={"straight": 0.0, "wavy": 0.01, "curly": 0.01, "coily": 0.004}[curl],
        curl_period={"straight": 0.05, "wavy": 0.06, "curly": 0.025, "coily": 0.008}[curl])
    groom = grow_groom(style, 200, seed=1)
    seg = np.linalg.norm(np.diff(groom.positions, axis=1), axis=-1).sum(1)
    chord = np.linalg.norm(groom.positions[:, -1] - groom.positions[:, 0], axis=1)
    # Arc length follows the style's length; curls make the chord much shorter than the arc.
    assert np.median(seg) == pytest.approx(0.3, rel=0.35)
    ratio = np.median(chord / seg)
    if curl == "coily":
        assert ratio < 0.45
    if curl == "straight":
        assert ratio > 0.6
    # Gravity: long hair ends below where it starts.
    assert np.median(groom.positions[:, -1, 1] - groom.positions[:, 0, 1]) < -0.05


def test_style_mix_covers_lengths_and_curls():
    rng = np.random.default_rng(0)
    styles = [sample_style(rng) for _ in range(300)]
    assert {s.length_class for s in styles} == {"buzz", "short", "medium", "long"}
    assert {s.curl_type for s in styles} == {"straight", "wavy", "curly", "coily"}
    assert any(s.bangs for s in styles) and {s.parting for s in styles} >= {"none", "center"}


def test_render_shows_hair_colour_and_direction():
    groom = generate_groom(0, num_strands=1500)
    empty = render_groom(groom.positions[:0], 0.5, 0.2, size=64)
    dark = render_groom(groom.positions, 0.95, 0.1, size=64)
    blond = render_groom(groom.positions, 0.05, 0.1, size=64)
    assert dark.shape == (64, 64, 3) and dark.dtype == np.uint8
    changed = np.abs(dark.astype(int) - empty.astype(int)).sum(-1) > 30
    assert changed.mean() > 0.05  # hair covers part of the frame
    assert dark[changed].mean() < blond[changed].mean() - 40
    assert hair_albedo(1.0, 0.0).sum() < hair_albedo(0.0, 0.0).sum()
    # The part list is the head the collision uses.
    assert HEAD_PARTS[0].name == "cranium"


def test_synthesize_writes_the_documented_format(tmp_path):
    out = synthesize(tmp_path / "ds", count=2, seed=5, num_strands=200, image_size=32)
    index = json.loads((out / "dataset.json").read_text())
    assert index["format"] == "tressel-synth/1" and index["count"] == 2
    folders = list_grooms(out)
    sample = read_groom(folders[1])
    assert sample.positions.shape[1:] == (256, 3) and sample.root_uv.shape[1] == 2
    assert sample.meta["style"]["curl_type"] in ("straight", "wavy", "curly", "coily")
    assert len(sample.meta["material_raw"]) == 11
    assert sample.image_path.is_file() and (out / "scalp.ply").is_file()
    # Re-running completes rather than redoing; other settings are refused.
    before = (folders[0] / "strands.npz").stat().st_mtime_ns
    synthesize(out, count=2, seed=5, num_strands=200, image_size=32)
    assert (folders[0] / "strands.npz").stat().st_mtime_ns == before
    from tressel.errors import ConfigError
    with pytest.raises(ConfigError):
        synthesize(out, count=2, seed=6, num_strands=200, image_size=32)


@pytest.mark.parametrize("curl,radius,period", [("wavy", 0.008, 0.05), ("curly", 0.01, 0.025),
                                                 ("coily", 0.004, 0.008)])
def test_curl_offsets_curl_a_straight_centreline_into_its_class(curl, radius, period):
    """`curl_offsets` (what grows curly grooms) curls a decoded straight centreline again,
    into the curl class the evaluation measures; roots stay where they were."""
    from tressel.synth.groom import curl_offsets
    from tressel.train.attributes import measure_groom

    n, v = 40, 256
    rng = np.random.default_rng(0)
    # Straight strands 20 cm long hanging down, roots on a line, scalp normal +Y.
    centre = np.zeros((n, v, 3))
    centre[:, :, 1] = -np.linspace(0, 0.2, v)[None, :]
    centre[:, :, 0] = np.linspace(-0.05, 0.05, n)[:, None]
    normals = np.tile([0.0, 0.0, 1.0], (n, 1))
    assert measure_groom(centre)["curl_class"] == "straight"
    offsets = curl_offsets(centre, normals, np.full(n, 0.2), np.full(n, radius), period,
                           rng.uniform(0, 2 * np.pi, n), helix=curl != "wavy")
    curled = centre + offsets
    np.testing.assert_allclose(offsets[:, 0], 0.0, atol=1e-12)
    assert measure_groom(curled)["curl_class"] == curl
    # The curl adds arc length: the centreline is shorter than the curled strand.
    assert measure_groom(curled)["length_cm"] > 20.5


def test_recurl_restores_the_curl_a_codec_averaged_away():
    """A coily groom reduced to its centrelines (what the demo codec decodes) gets its class
    and most of its length back from `recurl`; straight hair and empty grooms are unchanged."""
    from tressel.synth.groom import recurl
    from tressel.train.attributes import measure_groom

    style = groom_style(curl_type="coily", curl_radius=0.004, curl_period=0.008, volume=0.8,
                        gravity=0.1)
    curly = grow_groom(style, 120, seed=2)
    flat = grow_groom(GroomStyle(**{**style.to_dict(), "curl_type": "straight",
                                    "curl_radius": 0.0}), 120, seed=2)
    normals = scalp_points(curly.root_uv).normals
    truth, before = measure_groom(curly.positions), measure_groom(flat.positions)
    assert truth["curl_class"] == "coily" and before["curl_class"] == "straight"
    # Centrelines of the right length: the coil shrinks the centreline (as in grow_groom).
    shrink = 0.008 / np.hypot(0.008, 2 * np.pi * 0.004)
    centre = flat.positions[:, :1] + (flat.positions - flat.positions[:, :1]) * shrink
    again = recurl(centre, normals, "coily", 0.004, 0.008, np.random.default_rng(0))
    after = measure_groom(again)
    assert after["curl_class"] == "coily"
    assert after["length_cm"] == pytest.approx(truth["length_cm"], rel=0.15)
    np.testing.assert_allclose(again[:, 0], centre[:, 0], atol=1e-6)
    same = recurl(centre, normals, "straight", 0.0, 0.05, np.random.default_rng(0))
    assert same is centre
    with pytest.raises(ValueError, match="unknown curl type"):
        recurl(centre, normals, "kinky", 0.004, 0.008, np.random.default_rng(0))

"""The review tool's Qt-free models: queue and job state, groom drawing buffers, camera, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from review_support import write_layer
from tressel.client import JobInfo
from tressel.errors import ConfigError
from tressel_review import drawing
from tressel_review.camera import OrbitCamera
from tressel_review.export import export_groom, model_crop
from tressel_review.models import PHASES, ReviewOptions, ReviewQueue, expand_inputs


def test_dropped_paths_sort_into_photos_grooms_and_problems(tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    groom = tmp_path / "g.usdc"
    groom.write_bytes(b"x")
    odd = tmp_path / "odd.doc"
    odd.write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    photos, grooms, problems = expand_inputs([folder, groom, odd, empty, tmp_path / "gone.jpg"])
    assert [p.name for p in photos] == ["a.PNG", "b.jpg"]
    assert grooms == [groom]
    assert len(problems) == 3
    assert any("odd.doc" in p for p in problems) and any("gone.jpg" in p for p in problems)


def test_review_options_add_guidance_and_the_scalp_to_the_request():
    kwargs = ReviewOptions(seed=4, guidance=2.5, steps=7, strands="0.5x").submit_kwargs()
    assert kwargs["seed"] == 4
    assert kwargs["params"] == {"crop": True, "guidance": 2.5, "steps": 7, "density_scale": 0.5}
    assert kwargs["write_options"]["scalp"] is True
    assert "guidance" not in ReviewOptions().submit_kwargs()["params"]
    with pytest.raises(ConfigError, match="guidance"):
        ReviewOptions(guidance=-1).check()
    restored = ReviewOptions.from_dict({**ReviewOptions(guidance=3.0).to_dict(), "future": 1})
    assert restored.guidance == 3.0


def test_queue_follows_a_job_through_its_phases(tmp_path):
    queue = ReviewQueue()
    entry = queue.add(tmp_path / "a.jpg", ReviewOptions())
    assert entry.status_text() == "waiting" and entry.fraction() == 0.0
    queue.started(entry.key)
    fractions = []
    for phase in PHASES[1:]:
        for step in range(3):
            queue.progress(entry.key, phase, step, 2)
            fractions.append(entry.fraction())
    assert fractions == sorted(fractions) and 0.0 < fractions[0] < fractions[-1] <= 1.0
    queue.progress(entry.key, "diffusion", 3, 20)
    assert entry.status_text() == "diffusion 3/20"
    queue.progress(entry.key, "queued", 2, 0)
    assert entry.status_text() == "queued (2 ahead)"
    queue.failed(entry.key, "no face found in a.jpg: pass --no-crop")
    assert entry.status_text() == "failed: no face found in a.jpg: pass --no-crop"
    queue.progress(entry.key, "decode", 1, 2)  # a late event must not revive it
    assert entry.state == "failed"
    with pytest.raises(ConfigError, match="cannot be retried"):
        queue.retry(entry.key)  # the photo does not exist
    photo = tmp_path / "b.jpg"
    photo.write_bytes(b"x")
    other = queue.add(photo, ReviewOptions())
    queue.cancelled(other.key)
    assert queue.retry(other.key).state == "pending" and other.attempts == 2
    assert queue.counts()["failed"] == 1 and "1 failed" in queue.summary()


def test_seed_variants_are_one_group_with_distinct_seeds(tmp_path):
    queue = ReviewQueue()
    entries = queue.add_seed_variants(tmp_path / "a.jpg", ReviewOptions(seed=5), [5, 6, 7])
    assert [e.seed for e in entries] == [5, 6, 7]
    assert len({e.group for e in entries}) == 1 and queue.group(entries[0].group) == entries
    with pytest.raises(ConfigError, match="repeat"):
        queue.add_seed_variants(tmp_path / "a.jpg", ReviewOptions(), [1, 1])


def test_history_adds_other_hosts_jobs_and_leaves_local_ones_alone(tmp_path):
    queue = ReviewQueue()
    local = queue.add(tmp_path / "mine.jpg", ReviewOptions())
    queue.submitted(local.key, "job-local")
    jobs = [JobInfo(id="job-maya", state="running", image_name="maya_shot.jpg", seed=3,
                    phase="diffusion", step=4, total=10),
            JobInfo(id="job-local", state="failed", error="should be ignored"),
            JobInfo(id="job-cli", state="failed", image_name="cli.png", error="bad image")]
    changed = queue.merge_history(jobs)
    assert {e.job_id for e in changed} == {"job-maya", "job-cli"}
    assert local.state == "pending" and local.message == ""
    maya = queue.by_job_id("job-maya")
    assert maya.origin == "daemon" and maya.name == "maya_shot.jpg" and maya.seed == 3
    assert maya.status_text() == "diffusion 4/10"
    assert queue.by_job_id("job-cli").status_text() == "failed: bad image"
    assert queue.entries[-1] is local  # history rows come first
    assert queue.merge_history(jobs) == []  # nothing new
    jobs[0] = JobInfo(id="job-maya", state="succeeded", image_name="maya_shot.jpg", seed=3)
    assert queue.merge_history(jobs) == [maya] and maya.state == "succeeded"


def _curves() -> drawing.CurveSet:
    rng = np.random.default_rng(0)
    counts = np.array([5, 2, 8, 3], np.int64)
    return drawing.CurveSet(rng.normal(size=(int(counts.sum()), 3)).astype(np.float32), counts)


def test_line_indices_join_neighbouring_points_of_one_strand_only():
    curves = _curves()
    buffers = drawing.prepare_buffers(curves)
    pairs = buffers.indices.reshape(-1, 2).astype(np.int64)
    assert len(pairs) == int((curves.counts - 1).sum()) == buffers.num_segments
    assert np.all(pairs[:, 1] == pairs[:, 0] + 1)
    curve_of = np.repeat(np.arange(curves.num_curves), curves.counts)
    assert np.all(curve_of[pairs[:, 0]] == curve_of[pairs[:, 1]])
    assert sorted(map(tuple, pairs)) == sorted(
        (o + i, o + i + 1) for o, c in zip(curves.offsets, curves.counts) for i in range(c - 1))
    assert buffers.vertices.dtype.itemsize == 20
    np.testing.assert_array_equal(buffers.positions(), curves.points)
    # A prefix of the index buffer is made of whole strands.
    for budget in (0, 1, 4, 7, 100):
        count = buffers.index_count(budget)
        prefix = pairs[:count // 2]
        drawn = set(curve_of[prefix[:, 0]])
        assert sum(int(curves.counts[c]) - 1 for c in drawn) == len(prefix)
        assert len(drawn) >= 1
    assert buffers.index_count(None) == len(buffers.indices)


def test_decimation_keeps_roots_and_tips_and_a_seeded_subset():
    strands = np.cumsum(np.ones((50, 32, 3), np.float32), axis=1)
    strands += np.arange(50, dtype=np.float32)[:, None, None] * 100
    curves = drawing.CurveSet.from_strands(strands)
    small = drawing.decimate(curves, 10, 5, seed=3)
    assert small.num_curves == 10 and np.all(small.counts == 5)
    points = small.uniform()
    chosen = (points[:, 0, 0] - 1) // 100
    np.testing.assert_array_equal(points[:, 0], strands[chosen.astype(int), 0])
    np.testing.assert_array_equal(points[:, -1], strands[chosen.astype(int), -1])
    again = drawing.decimate(curves, 10, 5, seed=3)
    np.testing.assert_array_equal(again.points, small.points)
    assert drawing.decimate(curves, None, None).num_points == curves.num_points


def test_tangents_and_shading_colours():
    curves = drawing.CurveSet.from_strands(
        np.array([[[0, 0, 0], [0, 1, 0], [0, 2, 0]], [[0, 0, 0], [1, 0, 0], [2, 0, 0]]],
                 np.float32))
    tangents = drawing.vertex_tangents(curves)
    np.testing.assert_allclose(tangents[:3], [[0, 1, 0]] * 3, atol=1e-6)
    np.testing.assert_allclose(tangents[3:], [[1, 0, 0]] * 3, atol=1e-6)
    colours = drawing.direction_colours(tangents)
    assert colours[0].argmax() == 1 and colours[3].argmax() == 0  # up is green, x is red
    light = drawing.hair_colours(curves, drawing.HairLook(melanin=0.1, redness=0.2))
    dark = drawing.hair_colours(curves, drawing.HairLook(melanin=0.9, redness=0.2))
    red = drawing.hair_colours(curves, drawing.HairLook(melanin=0.5, redness=1.0))
    assert light.mean() > dark.mean() + 30
    assert red[:, 0].mean() > red[:, 2].mean() + 30
    assert dark.mean(axis=1).min() > 20  # never black on the dark background


def test_camera_frames_the_groom_and_moves():
    camera = OrbitCamera()
    lo, hi = np.array([-0.1, 1.5, -0.1]), np.array([0.1, 1.9, 0.12])
    camera.frame(lo, hi)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])])
    pixels, front = camera.project(corners, 400, 300)
    assert front.all() and (pixels >= 0).all() and (pixels[:, 0] <= 400).all() \
        and (pixels[:, 1] <= 300).all()
    centre, _ = camera.project(((lo + hi) / 2)[None], 400, 300)
    np.testing.assert_allclose(centre[0], [200, 150], atol=1e-6)
    distance = camera.distance
    camera.orbit(90, 0)
    assert np.linalg.norm(camera.eye() - camera.target) == pytest.approx(distance)
    target = camera.target.copy()
    camera.pan(10, 0, 300)
    assert not np.allclose(camera.target, target)
    camera.zoom(2.0)
    assert camera.distance == pytest.approx(distance / 2)
    other = OrbitCamera()
    other.copy_from(camera)
    np.testing.assert_allclose(other.view_matrix(), camera.view_matrix())


def test_head_sphere_is_fitted_to_the_roots():
    rng = np.random.default_rng(1)
    direction = rng.normal(size=(300, 3))
    direction[:, 1] = np.abs(direction[:, 1])  # a cap, as the scalp is
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    centre, radius = drawing.fit_sphere(np.array([0.0, 1.6, 0.0]) + 0.09 * direction)
    np.testing.assert_allclose(centre, [0.0, 1.6, 0.0], atol=1e-4)
    assert radius == pytest.approx(0.09, abs=1e-4)


def test_groom_layer_loads_at_every_level_of_detail(tmp_path):
    layer = write_layer(tmp_path / "g.usdc", num_strands=200, units="cm")
    scene = drawing.load_groom_scene(layer)
    assert scene.strands.num_curves == 200 and np.all(scene.strands.counts == 16)
    assert scene.guides is not None and scene.guides.num_curves == 20
    assert scene.scalp_vertices is not None
    # metres whatever the layer's units: the synthetic head sits ~1.6 m up
    assert 1.0 < float(scene.strands.points[:, 1].mean()) < 2.0
    preview = scene.curves("preview")
    assert preview.num_curves == 20 and preview.counts.max() <= drawing.PREVIEW_POINTS
    assert scene.curves("guides").num_curves == 20
    head = drawing.head_mesh(scene)
    assert len(head.vertices) > len(scene.scalp_vertices)
    assert head.faces.max() < len(head.vertices)
    with pytest.raises(ValueError, match="level of detail"):
        scene.curves("huge")


def test_export_writes_layer_material_and_crop_without_overwriting(tmp_path):
    from helpers import write_image
    from tressel.usd.validate import validate_layer

    photo = write_image(tmp_path / "face.png",
                        (np.random.default_rng(2).random((40, 48, 3)) * 255).astype(np.uint8))
    layer = write_layer(tmp_path / "face_s0.usdc", photo=photo)
    out = tmp_path / "export"
    report = export_groom(layer, out, photo)
    names = sorted(p.name for p in report.written)
    assert names == ["face_s0.usdc", "face_s0_crop.png", "face_s0_material.json"]
    assert report.skipped == []
    assert [i for i in validate_layer(out / "face_s0.usdc") if i.severity == "error"] == []
    material = json.loads((out / "face_s0_material.json").read_text())
    assert material["provenance"]["crop_box"] == [2, 3, 34, 35]
    crop = model_crop(photo, drawing.load_groom_scene(layer).provenance, out_size=32)
    assert crop.shape == (32, 32, 3) and crop.any()
    again = export_groom(layer, out, None)
    assert again.layer.name == "face_s0_2.usdc" and (out / "face_s0.usdc").is_file()
    assert any("photo" in s for s in again.skipped)
    other = write_image(tmp_path / "other.png", np.zeros((40, 48, 3), np.uint8))
    third = export_groom(layer, out, other)
    assert any("not the photo" in s for s in third.skipped)


def test_review_command_help_and_a_light_cli():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tressel.cli", "review", "--help"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "--screenshot PNG" in result.stdout
    assert "Ctrl+G seed variants" in result.stdout  # the keys are taught in --help
    probe = ("import sys; from tressel.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'numpy', 'pxr', 'PySide6') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.stdout.strip() == "[]", result.stderr

"""Strands pushed out of the head: checked with exact winding numbers, not the voxel field."""

from __future__ import annotations

import numpy as np
import skimage.data
from helpers import write_image
from tressel.geometry.collision import (
    build_head_sdf,
    collision_mesh,
    required_clearance,
    resolve_collisions,
)
from tressel.geometry.mesh import (
    MeshQuery,
    TriMesh,
    close_holes,
    signed_volume,
    uv_sphere,
    winding_numbers,
)
from tressel.synth.head import scalp_mesh_arrays


def hanging_strands(mesh: TriMesh, count: int, points: int, seed: int = 0,
                    length: float = 0.25) -> np.ndarray:
    """Straight strands rooted on the upper half of `mesh`, falling down through it."""
    rng = np.random.default_rng(seed)
    centre = mesh.vertices.mean(0)
    directions = rng.normal(size=(count, 3))
    directions[:, 1] = np.abs(directions[:, 1]) + 0.3
    roots = MeshQuery(mesh).closest(centre + directions).points
    fall = np.array([0.0, -1.0, 0.0]) + rng.normal(size=(count, 1, 3)) * 0.3
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    return (roots[:, None] + t * length * fall).astype(np.float32)


def strand_lengths(strands: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(strands.astype(np.float64), axis=1), axis=2).sum(axis=1)


def test_no_strand_point_inside_a_closed_head_after_collision():
    head = uv_sphere((0.0, 0.3, 0.0), (0.08, 0.1, 0.095), 16, 32)
    strands = hanging_strands(head, 400, 32)
    before = winding_numbers(head, strands[:, 1:].reshape(-1, 3)) > 0.5
    assert before.sum() > 1000  # the test really starts with strands through the head
    fixed, report = resolve_collisions(strands, build_head_sdf(head))
    inside = winding_numbers(head, fixed[:, 1:].reshape(-1, 3)) > 0.5
    assert inside.sum() == 0
    assert report.points_inside_before > 500 and report.points_inside_after == 0
    assert report.strands_inside_after == 0
    # roots stay, lengths are kept to within 5 % (the last-resort push may stretch a little)
    assert np.array_equal(fixed[:, 0], strands[:, 0])
    change = np.abs(strand_lengths(fixed) / strand_lengths(strands) - 1)
    assert change.max() < 0.05 and np.median(change) < 1e-3
    # every point keeps its clearance from the surface (measured exactly, minus voxel error)
    distance = MeshQuery(head).closest(fixed[:, 1:].reshape(-1, 3)).distance
    need = required_clearance(strands, report.margin).reshape(-1)
    assert (distance > 0.25 * need).all()


def test_strands_growing_out_of_the_scalp_are_left_alone_and_flat_ones_lifted():
    """Near its root a strand can't be a margin away: it is judged by half its arc length."""
    head = uv_sphere((0.0, 0.3, 0.0), (0.09, 0.09, 0.09), 32, 64)
    rng = np.random.default_rng(1)
    normal = rng.normal(size=(300, 3))
    normal[:, 1] = np.abs(normal[:, 1]) + 0.5
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    roots = MeshQuery(head).closest(head.vertices.mean(0) + normal).points
    tangent = np.cross(normal, rng.normal(size=(300, 3)))
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    # 45 degrees off the normal, 5 cm in 64 points of 0.8 mm: the first ones sit a fraction
    # of a millimetre from the surface, closer than the 0.5 mm margin, but leaving it.
    tilted = (normal + tangent) / np.sqrt(2.0)
    s = np.linspace(0.0, 0.05, 64)[None, :, None]
    strands = (roots[:, None] + s * tilted[:, None]).astype(np.float32)
    # the first 100 lie along the surface instead, 0.1 mm above it: they must be lifted
    strands[:100] = (roots[:100, None] + s * tangent[:100, None]
                     + 1e-4 * normal[:100, None]).astype(np.float32)
    fixed, report = resolve_collisions(strands, build_head_sdf(head))
    assert np.array_equal(fixed[100:], strands[100:])
    assert report.strands_moved >= 100 and report.strands_moved < 110
    distance = MeshQuery(head).closest(fixed[:100, 1:].reshape(-1, 3)).distance
    need = required_clearance(strands[:100], report.margin).reshape(-1)
    assert (distance > 0.5 * need).all()
    far = need == report.margin  # past a millimetre of arc length, the full margin
    assert far.sum() > 1000 and distance[far].min() > 0.8 * report.margin


def test_strands_clear_of_the_head_are_untouched():
    head = uv_sphere((0.0, 0.3, 0.0), (0.08, 0.1, 0.095), 16, 32)
    strands = hanging_strands(head, 200, 32)
    outward = strands[:, :1] + (strands[:, :1] - head.vertices.mean(0)) * np.linspace(
        0, 2, 32)[None, :, None]  # straight out of the head, never inside
    strands[:100] = outward[:100].astype(np.float32)
    fixed, report = resolve_collisions(strands, build_head_sdf(head))
    assert np.array_equal(fixed[:100], strands[:100])
    assert report.strands_moved <= 100


def test_open_scalp_is_capped_and_overlapping_shells_count_as_inside():
    vertices, faces, _ = scalp_mesh_arrays(16)
    scalp = TriMesh(vertices, faces)
    closed = collision_mesh(scalp)
    assert signed_volume(closed) > 0
    assert len(close_holes(closed).faces) == len(closed.faces)  # nothing left open
    strands = hanging_strands(scalp, 300, 40, seed=3)
    fixed, report = resolve_collisions(strands, build_head_sdf(scalp))
    assert report.points_inside_before > 0
    assert (winding_numbers(closed, fixed[:, 1:].reshape(-1, 3)) > 0.5).sum() == 0
    # two overlapping closed shells: their overlap is inside (winding 2, not parity 0)
    a = uv_sphere((0.0, 0.0, 0.0), (0.05, 0.05, 0.05), 12, 24)
    b = uv_sphere((0.03, 0.0, 0.0), (0.05, 0.05, 0.05), 12, 24)
    union = TriMesh(np.concatenate([a.vertices, b.vertices]),
                    np.concatenate([a.faces, b.faces + len(a.vertices)]))
    sdf = build_head_sdf(union, voxel=0.002)
    assert sdf.sample(np.array([[0.015, 0.0, 0.0]]))[0] < -0.02
    assert sdf.sample(np.array([[0.015, 0.07, 0.0]]))[0] > 0.0


def test_generate_collides_by_default_and_records_it(bundle, tmp_path):
    from tressel.pipeline import GenerateParams, generate
    from tressel.usd import read_groom, write_groom

    image = write_image(tmp_path / "astronaut.png", skimage.data.astronaut())
    raw = generate(image, bundle, GenerateParams(seed=3, steps=1, collide=False))
    hair = generate(image, bundle, GenerateParams(seed=3, steps=1))
    closed = collision_mesh(TriMesh(hair.scalp_mesh.vertices, hair.scalp_mesh.faces))
    assert "collision:pointsInsideBefore" not in raw.provenance.operations
    ops = hair.provenance.operations
    before = winding_numbers(closed, raw.positions[:, 1:].reshape(-1, 3)) > 0.5
    after = winding_numbers(closed, hair.positions[:, 1:].reshape(-1, 3)) > 0.5
    assert after.sum() == 0 and ops["collision:pointsInsideAfter"] == 0
    assert abs(ops["collision:pointsInsideBefore"] - before.sum()) <= max(3, before.sum() // 20)
    assert np.array_equal(hair.root_positions, raw.root_positions)
    # the record survives a trip through the USD layer
    write_groom(hair, tmp_path / "groom.usda", guides=0)
    back = read_groom(tmp_path / "groom.usda").provenance.operations
    assert back["collision:pointsInsideAfter"] == 0
    assert back["collision:pointsInsideBefore"] == ops["collision:pointsInsideBefore"]
    assert back["collision:mesh"] == ops["collision:mesh"]


def test_loading_a_bundle_in_the_daemon_builds_its_head_field(bundle):
    """`--preload` (and `models load`) build the distance field, so the first job need not."""
    from tressel import pipeline
    from tressel.daemon.engine import PipelineEngine

    pipeline._SDF_CACHE.clear()
    PipelineEngine(str(bundle.path)).load_model(None)
    assert list(pipeline._SDF_CACHE) == [bundle.content_hash]


def test_the_head_field_is_kept_on_disk_for_the_next_run(bundle, tmp_path, monkeypatch):
    """A second process (an empty memory cache) loads the field instead of building it; a
    corrupt or unwritable cache costs a rebuild, never the job."""
    from tressel import pipeline
    from tressel.geometry import collision

    monkeypatch.setenv("TRESSEL_CACHE_DIR", str(tmp_path / "cache"))
    scalp = bundle.scalp_data()
    pipeline._SDF_CACHE.clear()
    built = pipeline.head_sdf(bundle, scalp["vertices"], scalp["faces"])
    files = list((tmp_path / "cache" / "head-sdf").iterdir())
    assert [f.name for f in files] == [f"{bundle.content_hash}-v{collision.SDF_FORMAT}.npz"]

    def no_build(*args, **kwargs):
        raise AssertionError("built again")

    pipeline._SDF_CACHE.clear()
    with monkeypatch.context() as patch:
        patch.setattr(collision, "build_head_sdf", no_build)
        loaded = pipeline.head_sdf(bundle, scalp["vertices"], scalp["faces"])
    assert np.array_equal(loaded.values, built.values) and loaded.voxel == built.voxel
    assert np.array_equal(loaded.mesh.faces, built.mesh.faces)
    probe = np.random.default_rng(0).normal(0.0, 0.1, (500, 3))
    assert np.array_equal(loaded.distance(probe), built.distance(probe))

    files[0].write_bytes(b"not a zip file")  # corrupt: rebuilt and rewritten
    pipeline._SDF_CACHE.clear()
    again = pipeline.head_sdf(bundle, scalp["vertices"], scalp["faces"])
    assert np.array_equal(again.values, built.values)
    assert collision.load_head_sdf(files[0]).voxel == built.voxel

    monkeypatch.setenv("TRESSEL_CACHE_DIR", str(files[0]))  # a file where a folder should be
    pipeline._SDF_CACHE.clear()
    assert pipeline.head_sdf(bundle, scalp["vertices"], scalp["faces"]).voxel == built.voxel

"""Fitting a groom to another head: the model's own scalp moved about, and a different head."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tressel.geometry.collision import collision_mesh
from tressel.geometry.fit import Similarity, fit_groom
from tressel.geometry.mesh import TriMesh, closest_on_triangles, uv_sphere, winding_numbers
from tressel.geometry.mesh_io import read_mesh
from tressel.result import HairMaterial, HairResult, ScalpMesh
from tressel.synth.head import scalp_mesh_arrays, scalp_points


def rotation(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.radians(degrees)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def make_groom(count: int = 300, points: int = 24, seed: int = 0) -> HairResult:
    """Curly strands growing out of Tressel's procedural scalp, bending down under gravity."""
    vertices, faces, uv = scalp_mesh_arrays(24)
    rng = np.random.default_rng(seed)
    root_uv = rng.uniform(0.05, 0.95, size=(count, 2))
    scalp = scalp_points(root_uv)
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    down = np.array([0.0, -1.0, 0.0])
    curl = np.stack([np.sin(t[..., 0] * 12 + rng.uniform(0, 6, (count, 1))),
                     np.zeros((count, points)),
                     np.cos(t[..., 0] * 12 + np.zeros((count, 1)))], -1) * 0.01
    path = scalp.normals[:, None] * 0.04 * t + down * 0.2 * t ** 2 + curl * t
    positions = (scalp.positions[:, None] + path).astype(np.float32)
    return HairResult(
        positions=positions, root_uv=root_uv.astype(np.float32),
        root_positions=positions[:, 0].copy(), root_normals=scalp.normals.astype(np.float32),
        material=HairMaterial.from_raw([0.5] * 11),
        scalp_mesh=ScalpMesh(vertices=vertices, faces=faces, uv=uv),
    )


def surface_distance(mesh: TriMesh, points: np.ndarray) -> np.ndarray:
    """Brute force over every face: independent of the KD-tree the fit uses."""
    best = np.full(len(points), np.inf)
    tri = mesh.vertices[mesh.faces]
    for face in range(len(tri)):
        corners = [np.broadcast_to(tri[face, k], points.shape) for k in range(3)]
        closest, _ = closest_on_triangles(points, *corners)
        best = np.minimum(best, np.linalg.norm(closest - points, axis=1))
    return best


def scalp_of(hair: HairResult) -> TriMesh:
    return TriMesh(hair.scalp_mesh.vertices, hair.scalp_mesh.faces)


@pytest.mark.parametrize("turn, landmarks", [(0.0, False), (35.0, True)])
def test_fit_onto_own_head_scaled_rotated_moved(turn, landmarks):
    hair = make_groom()
    source = scalp_of(hair)
    truth = Similarity(1.25, rotation([0.3, 1.0, 0.2], turn), np.array([0.3, -0.1, 0.2]))
    target = source.transformed(truth.scale, truth.rotation, truth.translation)
    marks = None
    if landmarks:  # five marked places, off by up to a few millimetres as a user's clicks are
        index = [0, 24, 600, 624, 312]
        noise = np.random.default_rng(1).normal(size=(5, 3)) * 0.002
        marks = (source.vertices[index], target.vertices[index] + noise)
    fitted, report, collision = fit_groom(hair, source, target, marks, collide=False)
    assert collision is None
    assert abs(report.registration.similarity.scale - 1.25) < 2e-3
    roots = surface_distance(target, fitted.positions[:, 0].astype(np.float64))
    assert roots.mean() < 5e-4 and roots.max() < 1e-3
    # Shapes: every point within 1.5 mm of the exactly moved strand (strands up to 30 cm long
    # after scaling), and lengths scaled by the fitted scale to 1e-4.
    expected = truth.apply(hair.positions.reshape(-1, 3)).reshape(hair.positions.shape)
    assert np.abs(fitted.positions - expected).max() < 1.5e-3
    lengths = np.linalg.norm(np.diff(hair.positions, axis=1), axis=2).sum(1)
    fitted_lengths = np.linalg.norm(np.diff(fitted.positions, axis=1), axis=2).sum(1)
    scale = report.registration.similarity.scale
    assert np.allclose(fitted_lengths, lengths * scale, rtol=1e-4)
    assert np.array_equal(fitted.root_uv, hair.root_uv)
    assert fitted.provenance.operations["fit:rootDistanceMean"] < 5e-4


def test_fit_command_onto_a_different_head(tmp_path):
    from tressel.cli import main
    from tressel.usd import read_groom, write_groom

    hair = make_groom(seed=4)
    write_groom(hair, tmp_path / "groom.usdc", scalp=True, guides=50)
    # A bigger, differently proportioned head with a neck, in centimetres, as an OBJ.
    cranium = uv_sphere((1.0, 32.0, -0.5), (8.6, 11.0, 10.4), 24, 48)
    obj = ["# test head, centimetres"]
    obj += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in cranium.vertices]
    obj += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in cranium.faces]
    (tmp_path / "head.obj").write_text("\n".join(obj) + "\n")
    head = read_mesh(tmp_path / "head.obj", units="cm")
    assert head.vertices.max() < 1.0  # read in metres
    code = main(["fit", str(tmp_path / "groom.usdc"), "--head", str(tmp_path / "head.obj"),
                 "--units", "cm", "-o", str(tmp_path / "fitted.usdc")])
    assert code == 0
    fitted = read_groom(tmp_path / "fitted.usdc")
    ops = fitted.provenance.operations
    assert ops["fit:headMesh"] == "head.obj" and 1.0 < ops["fit:scale"] < 1.25
    assert ops["fit:rmsError"] < 3e-3 and ops["collision:pointsInsideAfter"] == 0
    roots = surface_distance(head, fitted.positions[:, 0].astype(np.float64))
    assert roots.mean() < 5e-4
    inside = winding_numbers(collision_mesh(head), fitted.positions[:, 1:].reshape(-1, 3))
    assert (inside > 0.5).sum() == 0
    # Shapes kept: strand lengths scaled by the fit's scale (collision may stretch a few)
    lengths = np.linalg.norm(np.diff(hair.positions, axis=1), axis=2).sum(1)
    fitted_lengths = np.linalg.norm(np.diff(fitted.positions, axis=1), axis=2).sum(1)
    relative = np.abs(fitted_lengths / (lengths * ops["fit:scale"]) - 1)
    assert np.median(relative) < 1e-4 and relative.max() < 0.05
    # the written scalp moved with the groom and the hair sits on top of the head
    assert fitted.scalp_mesh is not None
    assert fitted.positions[:, 0, 1].mean() > head.vertices[:, 1].mean()


def test_landmarks_and_usd_head(tmp_path, capsys):
    from pxr import Gf, Usd, UsdGeom, Vt
    from tressel.cli import main
    from tressel.usd import read_groom, write_groom

    hair = make_groom(count=120, seed=2)
    write_groom(hair, tmp_path / "groom.usda", scalp=True, guides=0)
    source = scalp_of(hair)
    turn = rotation([0, 0, 1], 90.0)  # a Z-up-ish head: needs landmarks
    target = source.transformed(100.0, turn, np.array([5.0, 0.0, 150.0]))  # in centimetres
    stage = Usd.Stage.CreateNew(str(tmp_path / "head.usda"))
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    xform = UsdGeom.Xform.Define(stage, "/Character")
    xform.AddTranslateOp().Set(Gf.Vec3d(0.0, 0.0, 10.0))
    mesh = UsdGeom.Mesh.Define(stage, "/Character/Head")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(target.vertices.astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr([3] * len(target.faces))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(
        target.faces.ravel().astype(np.int32)))
    stage.GetRootLayer().Save()
    head = read_mesh(tmp_path / "head.usda")
    assert np.allclose(head.vertices, (target.vertices + [0, 0, 10.0]) * 0.01, atol=1e-6)
    index = [0, 24, 600, 624]
    marks = {"source": source.vertices[index].tolist(),
             "target": (target.vertices[index] + [0, 0, 10.0]).tolist()}
    (tmp_path / "marks.json").write_text(json.dumps(marks))
    code = main(["fit", str(tmp_path / "groom.usda"), "--head", str(tmp_path / "head.usda"),
                 "--landmarks", str(tmp_path / "marks.json"), "-o",
                 str(tmp_path / "fitted.usda")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fit: scale 1.0000" in printed and "collision:" in printed
    fitted = read_groom(tmp_path / "fitted.usda")
    assert surface_distance(head, fitted.positions[:, 0].astype(np.float64)).mean() < 5e-4
    assert fitted.provenance.operations["fit:correspondences"] == 4


def test_fit_errors_say_what_to_do(tmp_path, capsys):
    from tressel.cli import main
    from tressel.usd import write_groom

    hair = make_groom(count=20, seed=1)
    hair.provenance.bundle_name = "no-such-bundle"
    write_groom(hair, tmp_path / "bare.usda", guides=0)  # no Scalp prim
    (tmp_path / "head.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert main(["fit", str(tmp_path / "bare.usda"), "--head", str(tmp_path / "head.obj"),
                 "-o", str(tmp_path / "out.usda")]) == 1
    assert "--source-scalp" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "bare.usda"), "--head", str(tmp_path / "nope.obj"),
                 "-o", str(tmp_path / "out.usda")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "bare.usda"), "--head", str(tmp_path / "head.stl"),
                 "-o", str(tmp_path / "out.usda")]) == 1
    assert "use one of" in capsys.readouterr().err
    assert not (tmp_path / "out.usda").exists()

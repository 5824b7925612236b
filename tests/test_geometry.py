"""Scalp geometry: PLY reading, per-vertex TBN, UV closest-point maps and strand placement."""

from __future__ import annotations

import numpy as np
import pytest
from tressel.errors import BundleError
from tressel.geometry.placement import place_strands
from tressel.geometry.ply import read_scalp_ply
from tressel.geometry.scalp import compute_scalp_maps, compute_uv_maps, compute_vertex_tbn
from tressel.result import ScalpMesh


@pytest.fixture(scope="module")
def synthetic(vectors_dir):
    return dict(np.load(vectors_dir / "scalp_synthetic.npz"))


def write_binary_ply(path, verts, uv, faces, order="<", extra_face_prop=False):
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    header = (f"ply\nformat {fmt} 1.0\nelement vertex {len(verts)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property float s\nproperty float t\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\n"
              + ("property uchar flag\n" if extra_face_prop else "") + "end_header\n")
    vdt = np.dtype([(c, order + "f4") for c in "xyzst"])
    vrec = np.zeros(len(verts), vdt)
    for i, c in enumerate("xyz"):
        vrec[c] = verts[:, i]
    vrec["s"], vrec["t"] = uv[:, 0], uv[:, 1]
    fields = [("n", "u1"), ("idx", order + "i4", (faces.shape[1],))]
    if extra_face_prop:
        fields.append(("flag", "u1"))
    frec = np.zeros(len(faces), np.dtype(fields))
    frec["n"], frec["idx"] = faces.shape[1], faces
    path.write_bytes(header.encode() + vrec.tobytes() + frec.tobytes())


def test_ascii_ply_matches_vector_arrays(vectors_dir, synthetic):
    mesh = read_scalp_ply(vectors_dir / "scalp_synthetic.ply")
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int64
    np.testing.assert_array_equal(mesh.vertices, synthetic["mesh_verts"])
    np.testing.assert_array_equal(mesh.uv, synthetic["mesh_uv"])
    np.testing.assert_array_equal(mesh.faces, synthetic["mesh_faces"])


@pytest.mark.parametrize("order", ["<", ">"])
def test_binary_ply_round_trip(tmp_path, synthetic, order):
    path = tmp_path / "scalp.ply"
    write_binary_ply(path, synthetic["mesh_verts"], synthetic["mesh_uv"], synthetic["mesh_faces"],
                     order, extra_face_prop=order == ">")
    mesh = read_scalp_ply(path)
    np.testing.assert_array_equal(mesh.vertices, synthetic["mesh_verts"])
    np.testing.assert_array_equal(mesh.uv, synthetic["mesh_uv"])
    np.testing.assert_array_equal(mesh.faces, synthetic["mesh_faces"])


def test_ply_polygons_are_fanned_and_bad_files_refused(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], np.float32)
    body = "\n".join(f"{x} {y} {z} {x / 2} {y}" for x, y, z in verts)
    header = ("ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\n"
              "property float z\nproperty float s\nproperty float t\nelement face 2\n"
              "property list uchar int vertex_indices\nend_header\n")
    path = tmp_path / "mixed.ply"
    path.write_text(header + body + "\n4 0 1 2 3\n3 1 4 2\n")
    mesh = read_scalp_ply(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])

    path.write_text(header.replace("property float s\nproperty float t\n", "")
                    .replace("vertex 5", "vertex 5") + "\n".join(
                        f"{x} {y} {z}" for x, y, z in verts) + "\n3 0 1 2\n3 1 4 2\n")
    with pytest.raises(BundleError, match="no s,t texture coordinates"):
        read_scalp_ply(path)
    path.write_text(header + body + "\n3 0 1 2\n")
    with pytest.raises(BundleError, match="ends inside element 'face'"):
        read_scalp_ply(path)
    path.write_text(header + body + "\n3 0 1 9\n3 1 4 2\n")
    with pytest.raises(BundleError, match="outside 0..4"):
        read_scalp_ply(path)
    path.write_bytes(b"OFF\n3 1 0\n")
    with pytest.raises(BundleError, match="not a PLY"):
        read_scalp_ply(path)
    with pytest.raises(BundleError, match="cannot be read"):
        read_scalp_ply(tmp_path / "missing.ply")


def test_tbn_of_a_flat_sheet():
    xs, ys = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 4))
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(16)], 1).astype(np.float32)
    faces = []
    for r in range(3):
        for c in range(3):
            i = r * 4 + c
            faces += [[i, i + 1, i + 5], [i, i + 5, i + 4]]
    t, b, n = compute_vertex_tbn(verts, np.array(faces), verts[:, :2] * 0.5 + 0.1)
    np.testing.assert_allclose(t, np.tile([1, 0, 0], (16, 1)), atol=1e-6)
    np.testing.assert_allclose(b, np.tile([0, 1, 0], (16, 1)), atol=1e-6)
    np.testing.assert_allclose(n, np.tile([0, 0, 1], (16, 1)), atol=1e-6)


def brute_force_distance(p2: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from each point to the union of the UV triangles, the slow and obvious way."""
    best = np.full(len(points), np.inf)
    for tri in p2[faces]:
        a, b, c = tri
        det = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
        l1 = ((points[:, 0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (points[:, 1] - a[1])) / det
        l2 = ((b[0] - a[0]) * (points[:, 1] - a[1]) - (points[:, 0] - a[0]) * (b[1] - a[1])) / det
        inside = (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
        dist = np.where(inside, 0.0, np.inf)
        for p, q in ((a, b), (b, c), (c, a)):
            d = q - p
            u = np.clip(((points - p) @ d) / (d @ d), 0, 1)
            dist = np.minimum(dist, np.linalg.norm(points - (p + u[:, None] * d), axis=1))
        best = np.minimum(best, dist)
    return best


def test_uv_maps_find_the_closest_point_everywhere():
    rng = np.random.default_rng(0)
    n = 6
    gs, gt = np.meshgrid(np.linspace(0.2, 0.8, n), np.linspace(0.15, 0.85, n))
    uv = np.stack([gs.ravel(), gt.ravel()], 1)
    inner = (gs.ravel() > 0.2) & (gs.ravel() < 0.8) & (gt.ravel() > 0.15) & (gt.ravel() < 0.85)
    uv[inner] += rng.uniform(-0.03, 0.03, (inner.sum(), 2))
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            if (r, c) in ((2, 2), (2, 3)):
                continue  # a hole: its rim is an inner boundary
            i = r * n + c
            faces += [[i, i + 1, i + n + 1], [i, i + n + 1, i + n]]
    # A fold: a triangle on the same side of the outer edge (0, 1) as its grid neighbour, so
    # that edge stays on the outline although two faces share it.
    uv = np.vstack([uv, [0.26, 0.5]])
    faces += [[0, 1, len(uv) - 1]]
    faces = np.array(faces)
    size = 48
    maps = compute_uv_maps(uv.astype(np.float32), faces, size)
    assert maps.face_map.shape == (size, size) and maps.face_map.dtype == np.int32
    assert maps.face_map.min() >= 0
    bary = maps.bary_map.astype(np.float64)
    assert np.all(bary >= 0) and np.allclose(bary.sum(-1), 1, atol=1e-6)
    p2 = np.stack([uv[:, 0], 1 - uv[:, 1]], 1)
    centres = np.stack(np.meshgrid((np.arange(size) + 0.5) / size,
                                   (np.arange(size) + 0.5) / size), -1).reshape(-1, 2)
    found = (bary.reshape(-1, 3, 1) * p2[faces[maps.face_map.ravel()]]).sum(1)
    ours = np.linalg.norm(found - centres, axis=1)
    np.testing.assert_allclose(ours, brute_force_distance(p2, faces, centres), atol=1e-6)


def test_uv_maps_of_the_vector_mesh(synthetic):
    maps = compute_uv_maps(synthetic["mesh_uv"], synthetic["mesh_faces"], 512)
    np.testing.assert_array_equal(maps.face_map, synthetic["dbg_index_map"])
    np.testing.assert_allclose(maps.bary_map, synthetic["dbg_bary_map"], atol=1e-5)


def test_placement_follows_the_root_frame(synthetic):
    mesh = ScalpMesh(synthetic["mesh_verts"], synthetic["mesh_faces"], synthetic["mesh_uv"])
    scalp = {"vertices": mesh.vertices, "faces": mesh.faces, "uv": mesh.uv}
    scalp.update(compute_scalp_maps(mesh, 128))
    root_uv = np.array([[0.5, 0.5], [0.5 + 0.2 / 128, 0.5 + 0.3 / 128], [0.3, 0.6]], np.float32)
    steps = np.linspace(0, 0.05, 8, dtype=np.float32)
    local = np.zeros((3, 8, 3), np.float32)
    local[..., 1] = steps  # straight up along the normal
    local[2, :, 0] = steps  # the third strand also leans along -tangent
    placed = place_strands(scalp, root_uv, local, uv_map_size=128)
    assert placed.strands_world.shape == (3, 8, 3)
    np.testing.assert_allclose(placed.strands_world[:, 0], placed.root_position, atol=1e-7)
    # two roots in one texel snap to the same mesh point
    np.testing.assert_array_equal(placed.root_position[0], placed.root_position[1])
    offset = placed.strands_world[0] - placed.root_position[0]
    np.testing.assert_allclose(offset, steps[:, None] * placed.root_normal[0], atol=1e-7)
    offset = placed.strands_world[2] - placed.root_position[2]
    expected = steps[:, None] * (placed.root_normal[2] - placed.root_tangent[2])
    np.testing.assert_allclose(offset, expected, atol=1e-7)
    # the frame is orthonormal and the normal points away from the cap's centre (0, 1.55, 0)
    frame = np.stack([placed.root_tangent, placed.root_bitangent, placed.root_normal], 1)
    np.testing.assert_allclose(frame @ frame.transpose(0, 2, 1), np.tile(np.eye(3), (3, 1, 1)),
                               atol=1e-6)
    outward = placed.root_position - np.array([0, 1.55, 0], np.float32)
    assert np.all((outward * placed.root_normal).sum(1) > 0)
    with pytest.raises(BundleError, match="rebuild the scalp maps"):
        place_strands(scalp, root_uv, local, uv_map_size=512)
    with pytest.raises(BundleError, match="lacks 'face_map'"):
        place_strands({k: v for k, v in scalp.items() if k != "face_map"}, root_uv, local)


def test_scalp_maps_are_plain_arrays(synthetic):
    mesh = ScalpMesh(synthetic["mesh_verts"], synthetic["mesh_faces"], synthetic["mesh_uv"])
    maps = compute_scalp_maps(mesh, 64)
    assert set(maps) == {"vertex_tangents", "vertex_bitangents", "vertex_normals", "face_map",
                         "bary_map"}
    assert maps["bary_map"].shape == (64, 64, 3) and maps["bary_map"].dtype == np.float32
    assert maps["vertex_normals"].shape == (289, 3)

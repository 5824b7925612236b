"""Triangle-mesh queries for heads: normals, hole closing, closest points and winding numbers.

Everything is vectorised over points and faces (numpy, with scipy's KD-tree to find candidate
faces), so 100,000 roots or a few million strand points are queried in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class TriMesh:
    """A triangle mesh in metres: vertices [V,3] float64, faces [F,3] int64."""

    vertices: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)

    def transformed(self, scale: float, rotation: np.ndarray, translation: np.ndarray
                    ) -> TriMesh:
        """x -> scale * R x + t (a rotation keeps the faces' winding)."""
        moved = scale * self.vertices @ np.asarray(rotation, np.float64).T + translation
        return TriMesh(moved, self.faces.copy())

    @property
    def extent(self) -> float:
        """Length of the bounding box diagonal."""
        if len(self.vertices) == 0:
            return 0.0
        return float(np.linalg.norm(self.vertices.max(0) - self.vertices.min(0)))


def face_normals(mesh: TriMesh, unit: bool = True) -> np.ndarray:
    """Face normals [F,3]; unnormalised ones have twice the face area as length."""
    tri = mesh.vertices[mesh.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if unit:
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
    return normals


def vertex_normals(mesh: TriMesh) -> np.ndarray:
    """Area-weighted unit vertex normals [V,3] (zero for vertices no face uses)."""
    weighted = face_normals(mesh, unit=False)
    normals = np.zeros_like(mesh.vertices)
    for corner in range(3):
        np.add.at(normals, mesh.faces[:, corner], weighted)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)


def signed_volume(mesh: TriMesh) -> float:
    """Volume enclosed by a closed mesh; negative when its faces wind inwards."""
    tri = mesh.vertices[mesh.faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def boundary_edges(mesh: TriMesh) -> np.ndarray:
    """Directed edges [E,2] (as their face winds them) that no other face shares."""
    faces = mesh.faces
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    count = len(mesh.vertices)
    undirected = np.minimum(edges[:, 0], edges[:, 1]) * count + np.maximum(edges[:, 0],
                                                                             edges[:, 1])
    _, inverse, uses = np.unique(undirected, return_inverse=True, return_counts=True)
    return edges[uses[inverse.ravel()] == 1]


def close_holes(mesh: TriMesh) -> TriMesh:
    """The mesh with every boundary loop capped by a fan to the loop's centroid.

    A scalp or a head with an open neck becomes a closed surface whose inside is well defined,
    which collision needs. The cap triangles run each boundary edge backwards, so they wind the
    same way as the faces they meet.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = boundary_edges(mesh)
    if len(edges) == 0:
        return TriMesh(mesh.vertices.copy(), mesh.faces.copy())
    count = len(mesh.vertices)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    _, label = connected_components(graph, directed=False)
    loops, loop_of_edge = np.unique(label[edges[:, 0]], return_inverse=True)
    # Centroid of each loop's vertices (each loop vertex starts exactly one boundary edge).
    sums = np.zeros((len(loops), 3))
    np.add.at(sums, loop_of_edge, mesh.vertices[edges[:, 0]])
    centroids = sums / np.bincount(loop_of_edge, minlength=len(loops))[:, None]
    caps = np.stack([edges[:, 1], edges[:, 0], count + loop_of_edge], axis=1)
    return TriMesh(np.concatenate([mesh.vertices, centroids]),
                   np.concatenate([mesh.faces, caps]))


def orient_consistently(mesh: TriMesh) -> TriMesh:
    """The mesh with faces flipped so that neighbours across every manifold edge agree.

    Per connected piece, a breadth-first tree over face adjacency says which neighbour each face
    follows; whether a face must flip is the parity of disagreements on its path to the tree's
    root, found for all faces at once by pointer jumping (log of the tree depth passes).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    faces = mesh.faces
    nf = len(faces)
    if nf == 0:
        return mesh
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    owner = np.tile(np.arange(nf), 3)
    count = max(len(mesh.vertices), 1)
    key = np.minimum(edges[:, 0], edges[:, 1]) * count + np.maximum(edges[:, 0], edges[:, 1])
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    first = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    uses = np.diff(np.r_[first, len(key)])
    pair = first[uses == 2]
    h1, h2 = order[pair], order[pair + 1]
    f1, f2 = owner[h1], owner[h2]
    # Two faces agree when they run their shared edge in opposite directions.
    disagree = (edges[h1, 0] == edges[h2, 0]).astype(np.int8)
    weight = np.r_[disagree, disagree].astype(np.float64) + 1.0
    graph = coo_matrix((weight, (np.r_[f1, f2], np.r_[f2, f1])), shape=(nf, nf)).tocsr()
    pieces, label = connected_components(graph, directed=False)
    parent = np.full(nf, -1, dtype=np.int64)
    for piece in range(pieces):
        start = int(np.flatnonzero(label == piece)[0])
        _, predecessors = breadth_first_order(graph, start, directed=False,
                                              return_predecessors=True)
        reached = predecessors >= 0
        parent[reached] = predecessors[reached]
    has_parent = parent >= 0
    flip = np.zeros(nf, dtype=np.int8)
    child = np.flatnonzero(has_parent)
    flip[child] = (np.asarray(graph[child, parent[child]]).ravel() > 1.5).astype(np.int8)
    pointer = parent.copy()
    while (pointer >= 0).any():
        active = pointer >= 0
        flip[active] ^= flip[pointer[active]]
        pointer[active] = pointer[pointer[active]]
    fixed = faces.copy()
    fixed[flip == 1] = fixed[flip == 1][:, [0, 2, 1]]
    return TriMesh(mesh.vertices, fixed)


def oriented_outwards(mesh: TriMesh) -> TriMesh:
    """The closed mesh with its faces wound so that normals point out (positive volume)."""
    if signed_volume(mesh) < 0:
        return TriMesh(mesh.vertices, mesh.faces[:, [0, 2, 1]])
    return mesh


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Closest points [M,3] on triangles abc to points p (all [M,3]) and their barycentrics.

    The region tests of Ericson's Real-Time Collision Detection (5.1.5), evaluated for every
    region at once and selected with masks.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2

    def safe(x: np.ndarray) -> np.ndarray:
        return np.where(np.abs(x) > 1e-300, x, 1e-300)

    # Interior by default.
    denom = safe(va + vb + vc)
    v = vb / denom
    w = vc / denom
    u = 1.0 - v - w
    # Edges and corners, assigned in Ericson's order reversed so that his first test wins.
    on_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    t_bc = (d4 - d3) / safe((d4 - d3) + (d5 - d6))
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    t_ac = d2 / safe(d2 - d6)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    t_ab = d1 / safe(d1 - d3)
    at_c = (d6 >= 0) & (d5 <= d6)
    at_b = (d3 >= 0) & (d4 <= d3)
    at_a = (d1 <= 0) & (d2 <= 0)
    for mask, uu, vv, ww in (
        (on_bc, 0.0, 1.0 - t_bc, t_bc),
        (on_ac, 1.0 - t_ac, 0.0, t_ac),
        (at_c, 0.0, 0.0, 1.0),
        (on_ab, 1.0 - t_ab, t_ab, 0.0),
        (at_b, 0.0, 1.0, 0.0),
        (at_a, 1.0, 0.0, 0.0),
    ):
        u = np.where(mask, uu, u)
        v = np.where(mask, vv, v)
        w = np.where(mask, ww, w)
    bary = np.stack([u, v, w], axis=1)
    return a * u[:, None] + b * v[:, None] + c * w[:, None], bary


@dataclass
class ClosestPoints:
    """Per query point: closest surface point, its face and barycentrics, and the distance."""

    points: np.ndarray  # [M,3]
    faces: np.ndarray  # [M] int64
    bary: np.ndarray  # [M,3]
    distance: np.ndarray  # [M]


class MeshQuery:
    """Closest-point queries against one mesh.

    Candidate faces come from a KD-tree over points sampled on every face (at least four per
    face, more on large faces), then the exact closest point on each candidate decides. A
    sample within the k nearest lies on the true closest face unless that face is much larger
    than the sample spacing, which the area-proportional sampling prevents.
    """

    def __init__(self, mesh: TriMesh, samples_per_face: int = 4, candidates: int = 8):
        from scipy.spatial import cKDTree

        self.mesh = mesh
        self.candidates = candidates
        area = 0.5 * np.linalg.norm(face_normals(mesh, unit=False), axis=1)
        typical = float(np.median(area)) if len(area) else 1.0
        per_face = np.clip(np.ceil(area / max(typical, 1e-300) * samples_per_face),
                           samples_per_face, 256).astype(np.int64)
        face_id = np.repeat(np.arange(len(mesh.faces)), per_face)
        rng = np.random.default_rng(0)
        r1, r2 = rng.random(len(face_id)), rng.random(len(face_id))
        root = np.sqrt(r1)
        bary = np.stack([1 - root, root * (1 - r2), root * r2], axis=1)
        # The first sample of every face is its centroid: small faces are never missed.
        first = np.concatenate([[0], np.cumsum(per_face)[:-1]])
        bary[first] = 1.0 / 3.0
        tri = mesh.vertices[mesh.faces[face_id]]
        self._face_of_sample = face_id
        self._tree = cKDTree(np.einsum("sk,skc->sc", bary, tri))
        self._vertex_normals: np.ndarray | None = None

    def closest(self, points: np.ndarray, chunk: int = 65536) -> ClosestPoints:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = ClosestPoints(np.empty_like(points), np.empty(len(points), np.int64),
                            np.empty((len(points), 3)), np.empty(len(points)))
        k = min(self.candidates, len(self._face_of_sample))
        vertices, faces = self.mesh.vertices, self.mesh.faces
        for start in range(0, len(points), chunk):
            p = points[start:start + chunk]
            _, sample = self._tree.query(p, k=k)
            sample = sample.reshape(len(p), k)
            cand = self._face_of_sample[sample]  # [m,k]
            flat = cand.ravel()
            tri = vertices[faces[flat]]
            q, bary = closest_on_triangles(np.repeat(p, k, axis=0), tri[:, 0], tri[:, 1],
                                           tri[:, 2])
            d = np.linalg.norm(q - np.repeat(p, k, axis=0), axis=1).reshape(len(p), k)
            best = d.argmin(axis=1) + np.arange(len(p)) * k
            sl = slice(start, start + len(p))
            out.points[sl] = q[best]
            out.faces[sl] = flat[best]
            out.bary[sl] = bary[best]
            out.distance[sl] = d.ravel()[best]
        return out

    def normals_at(self, hit: ClosestPoints) -> np.ndarray:
        """Smooth unit normals at closest points (barycentric blend of vertex normals)."""
        if self._vertex_normals is None:
            self._vertex_normals = vertex_normals(self.mesh)
        corner = self._vertex_normals[self.mesh.faces[hit.faces]]  # [M,3,3]
        normals = np.einsum("mk,mkc->mc", hit.bary, corner)
        return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)


def winding_numbers(mesh: TriMesh, points: np.ndarray, chunk_pairs: int = 4_000_000
                    ) -> np.ndarray:
    """Generalised winding number of every point (about 1 inside, 0 outside a closed mesh).

    Exact solid angles (Van Oosterom and Strackee) summed over all faces: O(points x faces), so
    meant for checking results, not for the hot path.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    tri = mesh.vertices[mesh.faces]  # [F,3,3]
    out = np.empty(len(points))
    step = max(1, chunk_pairs // max(len(tri), 1))
    for start in range(0, len(points), step):
        p = points[start:start + step]
        a = tri[None, :, 0] - p[:, None]
        b = tri[None, :, 1] - p[:, None]
        c = tri[None, :, 2] - p[:, None]
        la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
        det = np.einsum("pfc,pfc->pf", a, np.cross(b, c))
        denom = (la * lb * lc + np.einsum("pfc,pfc->pf", a, b) * lc
                 + np.einsum("pfc,pfc->pf", b, c) * la + np.einsum("pfc,pfc->pf", c, a) * lb)
        out[start:start + len(p)] = np.arctan2(det, denom).sum(axis=1) / (2.0 * math.pi)
    return out


def uv_sphere(center: tuple[float, float, float], axes: tuple[float, float, float],
              rings: int = 24, segments: int = 48) -> TriMesh:
    """A closed, outward-wound ellipsoid mesh (poles as single vertices)."""
    theta = np.linspace(0.0, math.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], unit.reshape(-1, 3), [[0.0, -1.0, 0.0]]])
    vertices = np.asarray(center) + unit * np.asarray(axes)
    ring = np.arange(1, 1 + (rings - 1) * segments).reshape(rings - 1, segments)
    nxt = np.roll(ring, -1, axis=1)
    top = np.stack([np.zeros(segments, np.int64), ring[0], nxt[0]], 1)
    bottom_pole = len(vertices) - 1
    bottom = np.stack([np.full(segments, bottom_pole), nxt[-1], ring[-1]], 1)
    quads_a = np.stack([ring[:-1], ring[1:], nxt[1:]], -1).reshape(-1, 3)
    quads_b = np.stack([ring[:-1], nxt[1:], nxt[:-1]], -1).reshape(-1, 3)
    return oriented_outwards(TriMesh(vertices, np.concatenate([top, quads_a, quads_b, bottom])))

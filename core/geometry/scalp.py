"""Scalp data for strand placement (SPEC §9): per-vertex tangent frames and UV-space lookup maps.

`compute_scalp_maps` turns a `ScalpMesh` into plain arrays that a bundle stores once:

- `vertex_tangents`, `vertex_bitangents`, `vertex_normals` [V,3] float32: the per-vertex TBN
  (mean of the adjacent faces' frames, unflipped t).
- `face_map` [S,S] int32 and `bary_map` [S,S,3] float32: for texel (row, col) of the UV square
  (t flipped, so row 0 is t = 1), the face holding the closest point of the UV layout to the
  texel centre and that point's barycentric coordinates. Texels outside the layout get the
  closest boundary point.

The closest-point search is exact and vectorised: texels inside a UV triangle are found by
rasterising each triangle's bounding box; the rest can only be closest to a boundary (or fold)
edge of the layout, so only those edges are searched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tressel.errors import BundleError
from tressel.result import ScalpMesh

log = logging.getLogger(__name__)

SCALP_MAP_KEYS = ("vertex_tangents", "vertex_bitangents", "vertex_normals", "face_map",
                  "bary_map")


def _normalize(v: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Unit vectors along the last axis; the DiffLocks normalise divides by max(‖v‖, 1e-5)."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def compute_vertex_tbn(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex (tangents, bitangents, normals) [V,3] float32 from (s, t) UVs, t unflipped."""
    v = np.asarray(vertices, dtype=np.float64)
    st = np.asarray(uv, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    e1 = v[f[:, 1]] - v[f[:, 0]]
    e2 = v[f[:, 2]] - v[f[:, 0]]
    d1 = st[f[:, 1]] - st[f[:, 0]]
    d2 = st[f[:, 2]] - st[f[:, 0]]
    normal = _normalize(np.cross(e1, e2))
    with np.errstate(divide="ignore", invalid="ignore"):
        # A degenerate UV triangle gives inf/NaN here, as in the reference (SPEC §9).
        r = 1.0 / (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
        tangent = _normalize(r[:, None] * (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]))
    bitangent = _normalize(np.cross(normal, tangent))
    count = np.bincount(f.ravel(), minlength=len(v)).astype(np.float64)
    out = []
    for per_face in (tangent, bitangent, normal):
        total = np.zeros_like(v)
        np.add.at(total, f.ravel(), np.repeat(per_face, 3, axis=0))
        out.append(_normalize(total / np.maximum(count, 1.0)[:, None]).astype(np.float32))
    return out[0], out[1], out[2]


@dataclass
class UVMaps:
    """Closest-point lookup of a UV layout on an S×S texel grid (row 0 at t = 1)."""

    face_map: np.ndarray  # [S,S] int32
    bary_map: np.ndarray  # [S,S,3] float32


def _inside_faces(p2: np.ndarray, faces: np.ndarray, size: int,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texel ids, face ids, barycentrics) of texel centres inside a UV triangle, one per texel."""
    corners = p2[faces]  # [F,3,2], x = s, y = 1 - t
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    scale = np.maximum(np.abs(corners.reshape(len(faces), -1)).max(axis=1), 1e-30)
    usable = np.abs(area2) > 1e-14 * scale**2  # zero-area faces are reached through their edges
    lo = np.clip(np.ceil(corners.min(axis=1) * size - 0.5), 0, size)  # texel index of centres
    hi = np.clip(np.floor(corners.max(axis=1) * size - 0.5), -1, size - 1)
    width = np.where(usable, np.maximum(hi[:, 0] - lo[:, 0] + 1, 0), 0).astype(np.int64)
    height = np.where(usable, np.maximum(hi[:, 1] - lo[:, 1] + 1, 0), 0).astype(np.int64)
    per_face = width * height
    total = int(per_face.sum())
    face = np.repeat(np.arange(len(faces)), per_face)
    local = np.arange(total) - np.repeat(np.cumsum(per_face) - per_face, per_face)
    col = lo[face, 0].astype(np.int64) + local % width[face]
    row = lo[face, 1].astype(np.int64) + local // width[face]
    px = (col + 0.5) / size
    py = (row + 0.5) / size
    fa, fb, fc = a[face], b[face], c[face]
    inv = 1.0 / area2[face]
    l1 = ((px - fa[:, 0]) * (fc[:, 1] - fa[:, 1]) - (fc[:, 0] - fa[:, 0]) * (py - fa[:, 1])) * inv
    l2 = ((fb[:, 0] - fa[:, 0]) * (py - fa[:, 1]) - (px - fa[:, 0]) * (fb[:, 1] - fa[:, 1])) * inv
    bary = np.stack([1.0 - l1 - l2, l1, l2], axis=1)
    margin = bary.min(axis=1)
    keep = margin >= -1e-12
    texel, face, bary, margin = (row * size + col)[keep], face[keep], bary[keep], margin[keep]
    # Where triangles share an edge or overlap, keep the one the texel is deepest inside; on an
    # exact tie (a texel centre on a shared edge) the higher face id, as libigl does on the
    # conformance mesh. Either face is correct: the closest point is the same.
    order = np.lexsort((-face, -margin, texel))
    texel, face, bary = texel[order], face[order], bary[order]
    first = np.ones(len(texel), dtype=bool)
    first[1:] = texel[1:] != texel[:-1]
    return texel[first], face[first], np.clip(bary[first], 0.0, 1.0) + 0.0  # no -0.0


def _outline_edges(p2: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Half-edges [E,3] (face, corner i, corner j) that can hold the closest point of an outside
    texel: boundary and non-manifold edges, and edges where the layout folds over itself."""
    nf = len(faces)
    corner_i = np.tile([0, 1, 2], nf)
    corner_j = np.tile([1, 2, 0], nf)
    face = np.repeat(np.arange(nf), 3)
    vi, vj = faces[face, corner_i], faces[face, corner_j]
    key = np.stack([np.minimum(vi, vj), np.maximum(vi, vj)], axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    candidate = counts[inverse] != 2
    # For an interior edge the two opposite corners must lie on opposite sides; otherwise the
    # layout folds there and the edge can be on the outline.
    interior = np.flatnonzero(counts[inverse] == 2)
    order = interior[np.argsort(inverse[interior], kind="stable")]
    h1, h2 = order[0::2], order[1::2]
    a, b = p2[vi[h1]], p2[vj[h1]]

    def side(h: np.ndarray) -> np.ndarray:
        opposite = p2[faces[face[h], 3 - corner_i[h] - corner_j[h]]]
        return ((b[:, 0] - a[:, 0]) * (opposite[:, 1] - a[:, 1])
                - (b[:, 1] - a[:, 1]) * (opposite[:, 0] - a[:, 0]))

    folded = side(h1) * side(h2) >= 0
    candidate[h1[folded]] = True
    candidate[h2[folded]] = True
    pick = np.flatnonzero(candidate)
    return np.stack([face[pick], corner_i[pick], corner_j[pick]], axis=1)


def compute_uv_maps(uv: np.ndarray, faces: np.ndarray, size: int = 512,
                    chunk: int = 8192) -> UVMaps:
    """Closest-point face and barycentrics of every texel centre ((c+0.5)/S, (r+0.5)/S) in
    (s, 1 - t) space (SPEC §9 compute_uv_space_data)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise BundleError("scalp mesh has no faces: cannot build its UV maps")
    # The flip happens in float32 before the float64 search, as in the reference: on texel
    # centres that lie on a shared edge this decides which face is (by a hair) closest.
    uv32 = np.asarray(uv, dtype=np.float32)
    p2 = np.stack([uv32[:, 0], np.float32(1.0) - uv32[:, 1]], axis=1).astype(np.float64)
    face_map = np.full(size * size, -1, dtype=np.int32)
    bary_map = np.zeros((size * size, 3), dtype=np.float64)
    texel, face, bary = _inside_faces(p2, faces, size)
    face_map[texel] = face
    bary_map[texel] = bary
    outside = np.flatnonzero(face_map < 0)
    if outside.size:
        edges = _outline_edges(p2, faces)
        if len(edges) == 0:  # every edge interior and unfolded cannot leave texels outside
            edges = np.stack([np.repeat(np.arange(len(faces)), 3), np.tile([0, 1, 2], len(faces)),
                              np.tile([1, 2, 0], len(faces))], axis=1)
        ea = p2[faces[edges[:, 0], edges[:, 1]]]  # [E,2]
        ed = p2[faces[edges[:, 0], edges[:, 2]]] - ea
        length2 = np.maximum((ed**2).sum(axis=1), 1e-300)
        step = max(1, chunk * 64 // max(len(edges), 1))
        for start in range(0, outside.size, step):
            ids = outside[start:start + step]
            px = ((ids % size) + 0.5) / size
            py = ((ids // size) + 0.5) / size
            rx = px[:, None] - ea[None, :, 0]
            ry = py[:, None] - ea[None, :, 1]
            u = np.clip((rx * ed[None, :, 0] + ry * ed[None, :, 1]) / length2[None], 0.0, 1.0)
            dist2 = (rx - u * ed[None, :, 0]) ** 2 + (ry - u * ed[None, :, 1]) ** 2
            best = dist2.argmin(axis=1)
            best_u = u[np.arange(ids.size), best]
            e = edges[best]
            face_map[ids] = e[:, 0]
            rows = np.zeros((ids.size, 3))
            rows[np.arange(ids.size), e[:, 1]] = 1.0 - best_u
            rows[np.arange(ids.size), e[:, 2]] = best_u
            bary_map[ids] = rows
    return UVMaps(face_map.reshape(size, size),
                  bary_map.reshape(size, size, 3).astype(np.float32))


def compute_scalp_maps(mesh: ScalpMesh, uv_map_size: int = 512) -> dict[str, np.ndarray]:
    """Everything placement needs besides the mesh itself, as arrays a bundle can store."""
    if uv_map_size < 1:
        raise BundleError(f"uv_map_size must be positive, got {uv_map_size}")
    tangents, bitangents, normals = compute_vertex_tbn(mesh.vertices, mesh.faces, mesh.uv)
    bad = ~np.isfinite(tangents).all(axis=1) & (np.bincount(
        np.asarray(mesh.faces).ravel(), minlength=len(mesh.vertices)) > 0)
    if bad.any():
        log.warning("scalp mesh: %d vertices touch a triangle with degenerate UVs; strands "
                    "rooted there get no valid frame", int(bad.sum()))
    maps = compute_uv_maps(mesh.uv, mesh.faces, uv_map_size)
    return {"vertex_tangents": tangents, "vertex_bitangents": bitangents,
            "vertex_normals": normals, "face_map": maps.face_map, "bary_map": maps.bary_map}

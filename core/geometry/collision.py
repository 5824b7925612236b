"""Keep strands out of the head: a voxel signed distance field and a length-keeping push-out.

The head is any closed triangle mesh (open meshes such as a scalp or a head with an open neck
are closed first with `mesh.close_holes`). Its signed distance is sampled once on a voxel grid:
the sign from integer winding numbers counted along z rays (so overlapping closed parts, like a
head made of several shells, are still inside), the distance exactly (point to triangle) in a
narrow band around the surface and by a distance transform beyond it. Strands are then walked
root to tip, vectorised over strands: each point follows the previous one at its original
segment length, aimed at where it was, and is pushed out along the field's gradient wherever
it lies closer to the head than the margin (near the root, than half its arc length from the
root: a strand growing out of the scalp is left as it is). Roots never move.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tressel.geometry.mesh import (
    MeshQuery,
    TriMesh,
    close_holes,
    face_normals,
    orient_consistently,
    oriented_outwards,
)

log = logging.getLogger(__name__)

DEFAULT_MARGIN = 5.0e-4  # metres kept between a strand point and the head surface
MAX_VOXELS = 24_000_000  # keeps the grid (float32) under 100 MB


@dataclass
class HeadSDF:
    """Signed distance (metres, negative inside) on a regular grid of voxel centres."""

    values: np.ndarray  # [X,Y,Z] float32
    origin: np.ndarray  # [3] centre of voxel (0,0,0)
    voxel: float  # edge length
    mesh: TriMesh | None = None  # the closed mesh, for exact checks near the surface
    _query: MeshQuery | None = None

    def exact(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signed distance, closest surface point, outward normal there) from the mesh
        itself, for points near the surface where the grid's interpolation is least sure.
        The sign comes from the closest face's normal, blended with its neighbours' where the
        closest point lies on an edge or a corner."""
        if self._query is None:
            self._query = MeshQuery(self.mesh)
        hit = self._query.closest(points)
        on_face = (hit.bary > 1e-6).all(axis=1)
        normal = self._query.normals_at(hit)
        if on_face.any():
            normal[on_face] = self._face_normals[hit.faces[on_face]]
        offset = points - hit.points
        sign = np.where(np.einsum("ij,ij->i", offset, normal) < 0, -1.0, 1.0)
        return sign * hit.distance, hit.points, normal

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance [...] from the grid, and from the mesh within a voxel of it (the
        grid's interpolation error stays well under a voxel)."""
        d = np.asarray(self.sample(points), dtype=np.float64)
        if self.mesh is not None:
            near = np.abs(d) < self.voxel
            if near.any():
                d[near] = self.exact(np.asarray(points, np.float64)[near])[0]
        return d

    @property
    def _face_normals(self) -> np.ndarray:
        if not hasattr(self, "_face_normal_cache"):
            self._face_normal_cache = face_normals(self.mesh)
        return self._face_normal_cache

    def sample(self, points: np.ndarray, gradient: bool = False
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Trilinear distance at points [...,3]; with `gradient`, also its (cell-wise exact)
        gradient. Points outside the grid read as the nearest border value plus how far out
        they are, so they count as outside."""
        shape = points.shape[:-1]
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        size = np.array(self.values.shape)
        g = (p - self.origin) / self.voxel
        clamped = np.clip(g, 0.0, size - 1 - 1e-9)
        beyond = np.linalg.norm(g - clamped, axis=1) * self.voxel
        cell = np.floor(clamped).astype(np.int64)
        f = clamped - cell
        flat = self.values.reshape(-1)
        sx, sy = size[1] * size[2], size[2]
        base = cell[:, 0] * sx + cell[:, 1] * sy + cell[:, 2]
        c = [flat[base + dx * sx + dy * sy + dz] for dx in (0, 1) for dy in (0, 1)
             for dz in (0, 1)]
        fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
        c00 = c[0] + (c[1] - c[0]) * fz
        c01 = c[2] + (c[3] - c[2]) * fz
        c10 = c[4] + (c[5] - c[4]) * fz
        c11 = c[6] + (c[7] - c[6]) * fz
        c0 = c00 + (c01 - c00) * fy
        c1 = c10 + (c11 - c10) * fy
        distance = (c0 + (c1 - c0) * fx + beyond).reshape(shape)
        if not gradient:
            return distance
        gx = (c1 - c0) / self.voxel
        gy = ((c01 - c00) * (1 - fx) + (c11 - c10) * fx) / self.voxel
        dz0 = (c[1] - c[0]) * (1 - fy) + (c[3] - c[2]) * fy
        dz1 = (c[5] - c[4]) * (1 - fy) + (c[7] - c[6]) * fy
        gz = (dz0 * (1 - fx) + dz1 * fx) / self.voxel
        grad = np.stack([gx, gy, gz], axis=1)
        outside = beyond > 0
        if outside.any():  # outside the grid: away from the grid is away from the head
            grad[outside] = g[outside] - clamped[outside]
        return distance, grad.reshape(*shape, 3)


def collision_mesh(mesh: TriMesh) -> TriMesh:
    """The closed, outward-wound mesh collision uses (open boundaries capped)."""
    return oriented_outwards(close_holes(orient_consistently(mesh)))


def build_head_sdf(mesh: TriMesh, voxel: float | None = None, band_voxels: int = 2,
                   padding: float = 0.01) -> HeadSDF:
    """Signed distance grid of a mesh (closed first if it is open).

    `voxel` defaults to 1/200 of the bounding box diagonal (1.6 mm for a 32 cm head box), at
    least 0.5 mm; the grid extends `padding` metres past the mesh.
    """
    closed = collision_mesh(mesh)
    start = time.perf_counter()
    lo = closed.vertices.min(0) - padding
    hi = closed.vertices.max(0) + padding
    if voxel is None:
        voxel = max(float(np.linalg.norm(hi - lo)) / 200.0, 5e-4)
    size = np.ceil((hi - lo) / voxel).astype(np.int64) + 1
    while int(np.prod(size)) > MAX_VOXELS:
        voxel *= 1.25
        size = np.ceil((hi - lo) / voxel).astype(np.int64) + 1
    inside = _inside_grid(closed, lo, voxel, size)
    distance = _band_distance(closed, lo, voxel, size, band_voxels)
    band = np.isfinite(distance)
    if (~band).any():
        from scipy.ndimage import distance_transform_edt

        # Beyond the band: distance to the nearest band voxel plus that voxel's distance.
        steps, nearest = distance_transform_edt(~band, return_indices=True)
        far = ~band
        distance[far] = (steps[far] * voxel
                         + distance[tuple(index[far] for index in nearest)])
        del steps, nearest
    values = np.where(inside, -distance, distance).astype(np.float32)
    log.debug("head SDF: %s voxels of %.2f mm in %.2f s", "x".join(map(str, size)),
              voxel * 1e3, time.perf_counter() - start)
    return HeadSDF(values=values, origin=lo, voxel=float(voxel), mesh=closed)


# Bump when build_head_sdf's output changes, so cached fields from older versions are rebuilt.
SDF_FORMAT = 1


def save_head_sdf(sdf: HeadSDF, path: str | os.PathLike[str]) -> Path:
    """Write a field (grid and closed mesh) to an .npz, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    arrays = {"format": np.int64(SDF_FORMAT), "values": sdf.values,
              "origin": np.asarray(sdf.origin, np.float64), "voxel": np.float64(sdf.voxel)}
    if sdf.mesh is not None:
        arrays["vertices"] = sdf.mesh.vertices
        arrays["faces"] = sdf.mesh.faces
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_head_sdf(path: str | os.PathLike[str]) -> HeadSDF:
    """A field written by `save_head_sdf`; ValueError when the file is not one (or is from
    another SDF_FORMAT), OSError when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != SDF_FORMAT:
                raise ValueError(f"{path}: head field format {int(data['format'])}, "
                                 f"expected {SDF_FORMAT}")
            values = np.ascontiguousarray(data["values"], np.float32)
            origin = np.asarray(data["origin"], np.float64)
            voxel = float(data["voxel"])
            mesh = (TriMesh(np.asarray(data["vertices"]), np.asarray(data["faces"]))
                    if "vertices" in data else None)
    except (KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a head field file ({exc})") from None
    if values.ndim != 3 or origin.shape != (3,) or not voxel > 0:
        raise ValueError(f"{path}: not a head field file (grid {values.shape})")
    return HeadSDF(values=values, origin=origin, voxel=voxel, mesh=mesh)


def _column_pairs(lo2: np.ndarray, hi2: np.ndarray, origin2: np.ndarray, voxel: float,
                  size2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item, i, j) for every grid column (i, j) whose centre lies in an item's 2-D box."""
    i0 = np.clip(np.ceil((lo2[:, 0] - origin2[0]) / voxel), 0, size2[0]).astype(np.int64)
    i1 = np.clip(np.floor((hi2[:, 0] - origin2[0]) / voxel) + 1, 0, size2[0]).astype(np.int64)
    j0 = np.clip(np.ceil((lo2[:, 1] - origin2[1]) / voxel), 0, size2[1]).astype(np.int64)
    j1 = np.clip(np.floor((hi2[:, 1] - origin2[1]) / voxel) + 1, 0, size2[1]).astype(np.int64)
    ni, nj = np.maximum(i1 - i0, 0), np.maximum(j1 - j0, 0)
    count = ni * nj
    item = np.repeat(np.arange(len(lo2)), count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    nj_rep = np.maximum(nj[item], 1)
    return item, i0[item] + local // nj_rep, j0[item] + local % nj_rep


def _inside_grid(mesh: TriMesh, origin: np.ndarray, voxel: float, size: np.ndarray,
                 chunk: int = 20000) -> np.ndarray:
    """Voxel centres with a positive winding number, counted along +z rays.

    Each triangle adds -sign(n_z) to the voxels above where it crosses a column; the running
    sum along z is the winding number. Columns are shifted by a tiny irrational offset so no
    ray passes exactly through an edge or a vertex.
    """
    counts = np.zeros((size[0], size[1], size[2] + 1), dtype=np.int16)
    jitter = np.array([math_offset(1), math_offset(2)]) * voxel
    tri_all = mesh.vertices[mesh.faces]
    nz_all = face_normals(mesh, unit=False)[:, 2]
    for start in range(0, len(tri_all), chunk):
        tri = tri_all[start:start + chunk]
        nz = nz_all[start:start + chunk]
        keep = np.abs(nz) > 1e-300
        tri, nz = tri[keep], nz[keep]
        xy = tri[:, :, :2]
        item, i, j = _column_pairs(xy.min(1), xy.max(1), origin[:2] + jitter, voxel, size[:2])
        if len(item) == 0:
            continue
        px = origin[0] + jitter[0] + i * voxel
        py = origin[1] + jitter[1] + j * voxel
        a, b, c = tri[item, 0], tri[item, 1], tri[item, 2]
        # 2-D barycentrics of the column in the triangle's xy projection.
        det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
        w1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (py - a[:, 1])) / det
        w2 = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        hit = (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1)
        z = a[hit, 2] + w1[hit] * (b[hit, 2] - a[hit, 2]) + w2[hit] * (c[hit, 2] - a[hit, 2])
        k = np.clip(np.ceil((z - origin[2]) / voxel), 0, size[2]).astype(np.int64)
        step = np.where(nz[item[hit]] > 0, -1, 1).astype(np.int16)
        np.add.at(counts, (i[hit], j[hit], k), step)
    return np.cumsum(counts[:, :, :-1], axis=2, dtype=np.int16) > 0


def math_offset(n: int) -> float:
    """Small irrational fractions of a voxel (golden-ratio sequence) for ray jitter."""
    return ((n * 0.6180339887498949) % 1.0) * 1e-3 + 1e-4


def _band_distance(mesh: TriMesh, origin: np.ndarray, voxel: float, size: np.ndarray,
                   band_voxels: int, max_pairs: int = 4_000_000) -> np.ndarray:
    """Exact unsigned distance for voxels within `band_voxels` of a face's box; inf elsewhere."""
    from tressel.geometry.mesh import closest_on_triangles

    distance = np.full(int(np.prod(size)), np.inf)
    tri_all = mesh.vertices[mesh.faces]
    unit_normals = face_normals(mesh)
    pad = band_voxels * voxel
    lo_all = np.floor((tri_all.min(1) - pad - origin) / voxel).astype(np.int64)
    hi_all = np.ceil((tri_all.max(1) + pad - origin) / voxel).astype(np.int64)
    lo_all = np.clip(lo_all, 0, size - 1)
    hi_all = np.clip(hi_all, 0, size - 1)
    per_face = np.prod(hi_all - lo_all + 1, axis=1)
    bounds = np.searchsorted(np.cumsum(per_face), np.arange(0, per_face.sum(), max_pairs),
                             side="right")
    bounds = np.unique(np.concatenate([[0], bounds, [len(tri_all)]]))
    for f0, f1 in itertools.pairwise(bounds):
        lo, hi = lo_all[f0:f1], hi_all[f0:f1]
        extent = hi - lo + 1
        count = np.prod(extent, axis=1)
        face = np.repeat(np.arange(f0, f1), count)
        local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        ext = extent[face - f0]
        iz = local % ext[:, 2]
        iy = (local // ext[:, 2]) % ext[:, 1]
        ix = local // (ext[:, 2] * ext[:, 1])
        cell = lo[face - f0] + np.stack([ix, iy, iz], axis=1)
        centre = origin + cell * voxel
        # A face's box is mostly far from the face's plane: drop those voxels before the
        # exact (costly) closest-point test.
        near_plane = np.abs(np.einsum("ij,ij->i", centre - tri_all[face, 0],
                                      unit_normals[face])) <= pad
        face, cell, centre = face[near_plane], cell[near_plane], centre[near_plane]
        tri = tri_all[face]
        closest, _ = closest_on_triangles(centre, tri[:, 0], tri[:, 1], tri[:, 2])
        d = np.linalg.norm(closest - centre, axis=1)
        flat = (cell[:, 0] * size[1] + cell[:, 1]) * size[2] + cell[:, 2]
        np.minimum.at(distance, flat, d)
    distance = distance.reshape(tuple(size))
    # Only voxels surely within the band keep exact values; the rest come from the transform.
    distance[distance > pad] = np.inf
    return distance


@dataclass
class CollisionReport:
    """Penetration before and after, as the head's signed distance field sees it."""

    points_inside_before: int  # strand points (roots excluded) inside, as the grid sees them
    # (to within a voxel of the surface); after: settled on the mesh itself near the surface
    points_inside_after: int
    strands_inside_before: int
    strands_inside_after: int
    max_depth_before: float  # metres below the surface, deepest point
    max_depth_after: float
    strands_moved: int
    max_displacement: float  # metres, largest point move
    max_length_change: float  # relative, largest change of a strand's length
    margin: float
    voxel: float
    seconds: float

    def as_provenance(self) -> dict[str, float | int]:
        names = {"points_inside_before": "pointsInsideBefore",
                 "points_inside_after": "pointsInsideAfter",
                 "strands_inside_before": "strandsInsideBefore",
                 "strands_inside_after": "strandsInsideAfter",
                 "max_depth_before": "maxDepthBefore", "max_depth_after": "maxDepthAfter",
                 "strands_moved": "strandsMoved", "max_length_change": "maxLengthChange",
                 "margin": "margin"}
        return {f"collision:{camel}": value for key, value in asdict(self).items()
                if (camel := names.get(key))}

    def summary(self) -> str:
        return (f"collision: {self.points_inside_before} points in "
                f"{self.strands_inside_before} strands inside the head before "
                f"(deepest {self.max_depth_before * 1e3:.2f} mm), {self.points_inside_after} "
                f"after; {self.strands_moved} strands moved, lengths kept within "
                f"{self.max_length_change * 100:.3g}%")


def penetration(positions: np.ndarray, sdf: HeadSDF, exact: bool = True, chunk: int = 8192
                ) -> tuple[np.ndarray, np.ndarray]:
    """(points inside per strand [N], deepest point per strand [N], metres), roots excluded;
    `exact` settles points within a voxel of the surface on the mesh itself."""
    n = len(positions)
    inside = np.zeros(n, np.int64)
    depth = np.zeros(n)
    for start in range(0, n, chunk):
        body = positions[start:start + chunk, 1:]
        d = sdf.distance(body) if exact else sdf.sample(body)
        inside[start:start + chunk] = (d < 0).sum(axis=1)
        depth[start:start + chunk] = np.maximum(-d.min(axis=1), 0.0)
    return inside, depth


# Near the root a strand cannot be `margin` from the surface: its root is on it. A point at arc
# length s from the root needs only CLEARANCE_SLOPE * s (a strand leaving the scalp at up to 60
# degrees from the normal keeps it), so strands that simply grow out of the head are left alone.
CLEARANCE_SLOPE = 0.5


def required_clearance(positions: np.ndarray, margin: float) -> np.ndarray:
    """[N,V-1] clearance each non-root point must keep: `margin`, less near the root
    (CLEARANCE_SLOPE times its arc length from the root)."""
    segment = np.linalg.norm(np.diff(positions, axis=1), axis=2)
    return np.minimum(margin, CLEARANCE_SLOPE * np.cumsum(segment, axis=1))


def resolve_collisions(positions: np.ndarray, sdf: HeadSDF, margin: float = DEFAULT_MARGIN,
                       iterations: int = 8) -> tuple[np.ndarray, CollisionReport]:
    """Strands [N,V,3] with every point but the root outside the head, at least `margin` from
    it (near the root, half the point's arc length from the root, when that is less).

    Only strands that come closer than that are touched (checked on the grid, then on the mesh
    itself within a voxel of the surface). Along each of them, point i is placed at its
    original distance from point i-1, towards its original position, then pushed out along
    the gradient and put back at that distance, a few times; a last push without the length
    constraint catches what is left, so no point stays inside.
    """
    start = time.perf_counter()
    positions = np.asarray(positions, dtype=np.float32)
    n, count, _ = positions.shape
    # Before: the grid's count (to a voxel near the surface); after: exact near the surface.
    inside_before, depth_before = penetration(positions, sdf, exact=False)
    near = np.zeros(n, dtype=bool)
    # A voxel of slack on the grid (its interpolation error stays below it), then the mesh.
    slack = sdf.voxel if sdf.mesh is not None else 0.0
    for lo in range(0, n, 8192):
        body = positions[lo:lo + 8192, 1:]
        need = required_clearance(positions[lo:lo + 8192], margin)
        close = sdf.sample(body) < need + slack
        if sdf.mesh is not None and close.any():
            close[close] = sdf.distance(body[close]) < need[close]
        near[lo:lo + 8192] = close.any(axis=1)
    touched = np.flatnonzero(near)
    out = positions.copy()
    max_shift = 0.0
    max_length_change = 0.0
    if len(touched):
        original = positions[touched].astype(np.float64)
        segment = np.linalg.norm(np.diff(original, axis=1), axis=2)  # [m,V-1]
        need = required_clearance(original, margin)  # [m,V-1]
        moved = np.empty_like(original)
        moved[:, 0] = original[:, 0]
        for i in range(1, count):
            previous = moved[:, i - 1]
            length = segment[:, i - 1:i]
            clearance = need[:, i - 1]
            point = _at_length(previous, original[:, i], length)
            clear = False
            for _ in range(iterations):
                distance, grad = sdf.sample(point, gradient=True)
                low = distance < clearance
                if not low.any():
                    clear = True
                    break
                norm = np.maximum(np.linalg.norm(grad[low], axis=1, keepdims=True), 1e-12)
                point[low] += (clearance[low] - distance[low])[:, None] * grad[low] / norm
                point[low] = _at_length(previous[low], point[low], length[low])
            # Give up the exact length rather than stay inside (nothing to do when all clear).
            for _ in range(0 if clear else iterations):
                distance, grad = sdf.sample(point, gradient=True)
                low = distance < clearance * 0.5
                if not low.any():
                    break
                norm = np.maximum(np.linalg.norm(grad[low], axis=1, keepdims=True), 1e-12)
                point[low] += (clearance[low] - distance[low])[:, None] * grad[low] / norm
            moved[:, i] = point
        if sdf.mesh is not None:
            _exact_clearance(moved, sdf, need)
        out[touched] = moved.astype(np.float32)
        max_shift = float(np.linalg.norm(moved - original, axis=2).max())
        before = segment.sum(axis=1)
        after = np.linalg.norm(np.diff(moved, axis=1), axis=2).sum(axis=1)
        max_length_change = float((np.abs(after - before) / np.maximum(before, 1e-12)).max())
    # Untouched strands passed the same test penetration() applies (grid, then the mesh within
    # a voxel of it) with a positive clearance: none of their points is inside.
    inside_after = np.zeros(n, np.int64)
    depth_after = np.zeros(n)
    if len(touched):
        inside_after[touched], depth_after[touched] = penetration(out[touched], sdf)
    report = CollisionReport(
        points_inside_before=int(inside_before.sum()), points_inside_after=int(inside_after.sum()),
        strands_inside_before=int((inside_before > 0).sum()),
        strands_inside_after=int((inside_after > 0).sum()),
        max_depth_before=float(depth_before.max(initial=0.0)),
        max_depth_after=float(depth_after.max(initial=0.0)),
        strands_moved=len(touched), max_displacement=max_shift,
        max_length_change=max_length_change, margin=float(margin), voxel=sdf.voxel,
        seconds=time.perf_counter() - start,
    )
    log.info("%s (%.2f s)", report.summary(), report.seconds)
    return out, report


def _exact_clearance(strands: np.ndarray, sdf: HeadSDF, need: np.ndarray) -> None:
    """Put points the grid left within half their clearance `need` [N,V-1] (by the mesh's
    exact distance) at that clearance along the surface normal, in place; roots excluded."""
    body = strands[:, 1:]
    near = sdf.sample(body) < need + sdf.voxel
    if not near.any():
        return
    points = body[near]
    clearance = need[near]
    check = np.arange(len(points))
    for _ in range(3):  # a point moved off one face can land near another
        distance, closest, normal = sdf.exact(points[check])
        low = distance < 0.5 * clearance[check]
        if not low.any():
            break
        # Outwards is from the closest point away from an outside point, towards it from an
        # inside one; the normal only where the point sits on the surface.
        offset = (points[check[low]] - closest[low]) * np.sign(distance[low])[:, None]
        length = np.linalg.norm(offset, axis=1, keepdims=True)
        outward = np.where(length > 1e-9, offset / np.maximum(length, 1e-300), normal[low])
        points[check[low]] = closest[low] + outward * clearance[check[low]][:, None]
        check = check[low]
    body[near] = points


def _at_length(anchor: np.ndarray, towards: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The point at `length` from `anchor` in the direction of `towards` (all [m,...])."""
    direction = towards - anchor
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    return anchor + direction * (length / np.maximum(norm, 1e-12))

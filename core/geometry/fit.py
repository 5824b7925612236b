"""Fit a groom to another head: similarity registration, root re-attachment, shape transport.

The model's scalp is registered to the character's head by a similarity transform (scale,
rotation, translation): from user correspondences when given (Umeyama's closed form), refined
by iterative closest points with scale, trimmed so that the parts of the head the scalp does
not cover (face, neck) do not pull on it. Each root then moves to the closest point of the
head, and its strand is carried rigidly along: scaled and rotated like the head, then turned
by the smallest rotation that takes the root's transformed normal onto the head's normal
there. Shapes are unchanged up to that per-strand rotation and the overall scale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np
from tressel.errors import ConfigError
from tressel.geometry.mesh import MeshQuery, TriMesh, face_normals
from tressel.result import HairResult, ScalpMesh

log = logging.getLogger(__name__)


@dataclass
class Similarity:
    """x -> scale * rotation @ x + translation."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        """4x4 column-vector matrix."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
            ) -> Similarity:
    """Least-squares similarity taking points `source` [M,3] onto `target` [M,3] (Umeyama 1991)."""
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s = w @ source
    mu_t = w @ target
    xs, xt = source - mu_s, target - mu_t
    covariance = (xt * w[:, None]).T @ xs
    u, sigma, vt = np.linalg.svd(covariance)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rotation = u @ np.diag(d) @ vt
    variance = float((w * (xs ** 2).sum(axis=1)).sum())
    scale = float((sigma * d).sum() / max(variance, 1e-300))
    return Similarity(scale, rotation, mu_t - scale * rotation @ mu_s)


@dataclass
class Registration:
    """The similarity found and how well the scalp then lies on the head."""

    similarity: Similarity
    rms: float  # metres, over the kept (trimmed) scalp samples
    max_error: float  # metres, over all scalp samples
    iterations: int
    used_correspondences: int


def _samples(mesh: TriMesh, count: int) -> np.ndarray:
    """Vertices and face centroids of a mesh, thinned to at most `count`, deterministically."""
    points = np.concatenate([mesh.vertices[np.unique(mesh.faces)],
                             mesh.vertices[mesh.faces].mean(axis=1)])
    if len(points) > count:
        points = points[np.random.default_rng(0).choice(len(points), count, replace=False)]
    return points


def initial_guess(source: TriMesh, target: TriMesh, up: int = 1) -> Similarity:
    """Scale and translation assuming both heads stand along the same `up` axis (Y up) and
    face the same way: widths across the head give the scale, the crowns are matched."""
    src, tgt = source.vertices, target.vertices
    other = [axis for axis in range(3) if axis != up]
    src_width = np.ptp(src[:, other[0]])
    scale = np.ptp(tgt[:, other[0]]) / max(src_width, 1e-12)
    for _ in range(3):  # widths measured over the top of the head the scalp would cover
        band = tgt[tgt[:, up] > tgt[:, up].max() - scale * np.ptp(src[:, up])]
        scale = np.ptp(band[:, other[0]]) / max(src_width, 1e-12)
    band = tgt[tgt[:, up] > tgt[:, up].max() - scale * np.ptp(src[:, up])]
    translation = np.zeros(3)
    translation[up] = tgt[:, up].max() - scale * src[:, up].max()
    for axis in other:
        translation[axis] = (band[:, axis].min() + band[:, axis].max()) / 2 - scale * (
            src[:, axis].min() + src[:, axis].max()) / 2
    return Similarity(float(scale), np.eye(3), translation)


def register(source: TriMesh, target: TriMesh,
             correspondences: tuple[np.ndarray, np.ndarray] | None = None,
             icp: bool = True, iterations: int = 80, samples: int = 4000,
             trim: float = 10.0, tolerance: float = 1e-9,
             target_query: MeshQuery | None = None, rotate: bool | None = None
             ) -> Registration:
    """Similarity from the `source` (model's scalp) to the `target` head.

    With `correspondences` (source points, target points; three or more), they give the start
    (and the answer when `icp` is off); otherwise `initial_guess`. ICP then pairs every scalp
    sample with its closest head point, ignores pairs farther than `trim` times the median
    distance, and solves the similarity again (point-to-plane) until the error stops
    improving.

    A scalp is a smooth cap that can slide and turn over a round head at little cost, so ICP
    solves the rotation only when correspondences fixed it first (`rotate=None`); without
    them the heads are taken to stand the same way (Y up, facing +Z) and only scale and
    translation are refined.
    """
    if rotate is None:
        rotate = correspondences is not None
    if correspondences is not None:
        src_pts, tgt_pts = (np.asarray(c, np.float64).reshape(-1, 3) for c in correspondences)
        if len(src_pts) != len(tgt_pts) or len(src_pts) < 3:
            raise ConfigError("correspondences need the same number (3 or more) of source and "
                              "target points")
        current = umeyama(src_pts, tgt_pts)
    else:
        current = initial_guess(source, target)
    query = target_query or MeshQuery(target)
    face_normal = face_normals(target)
    points = _samples(source, samples)
    done = 0
    previous = np.inf
    keep = np.ones(len(points), dtype=bool)
    if icp:
        for done in range(1, iterations + 1):
            moved = current.apply(points)
            hit = query.closest(moved)
            median = float(np.median(hit.distance))
            keep = hit.distance <= max(trim * median, 1e-9)
            current = _point_to_plane_step(current, moved[keep], hit.points[keep],
                                           face_normal[hit.faces[keep]], rotate=rotate)
            error = float(np.sqrt(np.mean(hit.distance[keep] ** 2)))
            if previous - error < tolerance * max(target.extent, 1e-9):
                break
            previous = error
    distance = query.closest(current.apply(points)).distance
    return Registration(current, float(np.sqrt(np.mean(distance[keep] ** 2))),
                        float(distance.max()), done,
                        0 if correspondences is None else len(correspondences[0]))


def _point_to_plane_step(current: Similarity, moved: np.ndarray, matched: np.ndarray,
                         normals: np.ndarray, point_weight: float = 0.3,
                         rotate: bool = True) -> Similarity:
    """One Gauss-Newton step of point-to-plane ICP with scale.

    About the centroid c of the moved points, a small update y -> c + (1 + sigma)(I + [w]x)
    (y - c) + tau changes each residual (y - q).n by sigma (y - c).n + w.((y - c) x n) + tau.n;
    the seven unknowns come from linear least squares. Sliding along the surface costs nothing,
    so this converges in a few steps where point-to-point ICP crawls.
    """
    centre = moved.mean(axis=0)
    y = moved - centre
    rows = np.concatenate([np.einsum("ij,ij->i", y, normals)[:, None], np.cross(y, normals),
                           normals], axis=1)
    residual = -np.einsum("ij,ij->i", moved - matched, normals)
    # Weak point-to-point terms too: where the match lies on the head's border, the plane
    # alone would let the scalp overhang it.
    m = len(y)
    point_rows = np.zeros((m, 3, 7))
    point_rows[:, :, 0] = y
    point_rows[:, 0, 2], point_rows[:, 0, 3] = y[:, 2], -y[:, 1]  # (w x y)_x = w_y y_z - w_z y_y
    point_rows[:, 1, 1], point_rows[:, 1, 3] = -y[:, 2], y[:, 0]
    point_rows[:, 2, 1], point_rows[:, 2, 2] = y[:, 1], -y[:, 0]
    point_rows[:, :, 4:] = np.eye(3)
    weight = point_weight
    rows = np.concatenate([rows, weight * point_rows.reshape(-1, 7)])
    residual = np.concatenate([residual, -weight * (moved - matched).reshape(-1)])
    if not rotate:  # orientation fixed: solve scale and translation only
        rows = rows[:, [0, 4, 5, 6]]
    solution, *_ = np.linalg.lstsq(rows, residual, rcond=None)
    if not rotate:
        solution = np.concatenate([solution[:1], np.zeros(3), solution[1:]])
    sigma, omega, tau = solution[0], solution[1:4], solution[4:7]
    angle = float(np.linalg.norm(omega))
    if angle > 1e-15:
        axis = omega / angle
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        turn = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    else:
        turn = np.eye(3)
    factor = 1.0 + float(sigma)
    # new(x) = c + factor * turn (current(x) - c) + tau
    rotation = turn @ current.rotation
    translation = centre + factor * turn @ (current.translation - centre) + tau
    return Similarity(factor * current.scale, rotation, translation)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations [N,3,3] taking unit vectors a [N,3] onto unit vectors b [N,3]."""
    v = np.cross(a, b)
    c = np.einsum("ij,ij->i", a, b)
    k = np.zeros((len(a), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = v[:, 2], -v[:, 1], v[:, 0]
    factor = 1.0 / np.maximum(1.0 + c, 1e-12)
    rotation = np.eye(3)[None] + k + np.einsum("nij,njk->nik", k, k) * factor[:, None, None]
    opposite = c < -1.0 + 1e-9
    if opposite.any():  # half-turn about any axis perpendicular to a
        axis = np.cross(a[opposite], [1.0, 0.0, 0.0])
        small = np.linalg.norm(axis, axis=1) < 1e-6
        axis[small] = np.cross(a[opposite][small], [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        rotation[opposite] = 2 * np.einsum("ni,nj->nij", axis, axis) - np.eye(3)[None]
    return rotation


@dataclass
class FitReport:
    """What `fit_groom` did and how well it fits."""

    registration: Registration
    root_distance_before: tuple[float, float]  # (mean, max) metres, roots moved by the
    # similarity alone to the head surface
    root_distance_after: tuple[float, float]  # (mean, max) after re-attachment
    max_normal_turn: float  # degrees, largest per-strand rotation onto the head's normal
    seconds: float

    def as_provenance(self, head_name: str) -> dict[str, float | int | str]:
        sim = self.registration.similarity
        return {
            "fit:headMesh": head_name,
            "fit:scale": sim.scale,
            "fit:matrix": " ".join(f"{v:.9g}" for v in sim.matrix().ravel()),
            "fit:rmsError": self.registration.rms,
            "fit:maxError": self.registration.max_error,
            "fit:correspondences": self.registration.used_correspondences,
            "fit:rootDistanceMean": self.root_distance_after[0],
            "fit:rootDistanceMax": self.root_distance_after[1],
            "fit:rootDistanceBeforeMean": self.root_distance_before[0],
            "fit:maxNormalTurnDegrees": self.max_normal_turn,
        }

    def summary(self) -> str:
        sim = self.registration.similarity
        return (f"fit: scale {sim.scale:.4f}, scalp-to-head error rms "
                f"{self.registration.rms * 1e3:.3f} mm (max {self.registration.max_error * 1e3:.3f}"
                f" mm, {self.registration.iterations} ICP iterations); roots were "
                f"{self.root_distance_before[0] * 1e3:.3f} mm (mean) off the head, now "
                f"{self.root_distance_after[0] * 1e3:.4f} mm (max "
                f"{self.root_distance_after[1] * 1e3:.4f} mm)")


def transfer_strands(hair: HairResult, source: TriMesh, target: TriMesh,
                     similarity: Similarity, target_query: MeshQuery | None = None,
                     chunk: int = 20000) -> tuple[HairResult, tuple, tuple, float]:
    """Move every root onto the target surface and carry its strand along (see module doc).

    Returns the new groom, root distances (mean, max) before and after re-attachment, and the
    largest normal turn in degrees. Vectorised over strands, in chunks.
    """
    query = target_query or MeshQuery(target)
    source_query = MeshQuery(source)
    positions = np.asarray(hair.positions, np.float32)
    n = len(positions)
    out = np.empty_like(positions)
    normals = np.empty((n, 3), np.float32)
    before = np.empty(n)
    turn = 0.0
    rotation = similarity.rotation
    for start in range(0, n, chunk):
        strands = positions[start:start + chunk].astype(np.float64)
        roots = strands[:, 0]
        source_normal = source_query.normals_at(source_query.closest(roots)) @ rotation.T
        moved_roots = similarity.apply(roots)
        hit = query.closest(moved_roots)
        before[start:start + len(strands)] = hit.distance
        target_normal = query.normals_at(hit)
        turn_matrix = _rotation_between(source_normal, target_normal)
        cosine = np.clip(np.einsum("ij,ij->i", source_normal, target_normal), -1, 1)
        turn = max(turn, float(np.degrees(np.arccos(cosine)).max(initial=0.0)))
        # offsets scaled and rotated with the head, then turned onto the new normal
        offsets = similarity.scale * (strands - roots[:, None]) @ rotation.T
        offsets = np.einsum("nij,nvj->nvi", turn_matrix, offsets)
        out[start:start + len(strands)] = (hit.points[:, None] + offsets).astype(np.float32)
        normals[start:start + len(strands)] = target_normal
    after = query.closest(out[:, 0].astype(np.float64)).distance
    scalp = hair.scalp_mesh
    moved_scalp = None if scalp is None else ScalpMesh(
        vertices=similarity.apply(scalp.vertices).astype(np.float32), faces=scalp.faces,
        uv=scalp.uv)
    fitted = replace(hair, positions=out, root_positions=out[:, 0].copy(),
                     root_normals=normals, scalp_mesh=moved_scalp,
                     provenance=replace(hair.provenance,
                                        operations=dict(hair.provenance.operations)))
    return (fitted, (float(before.mean()), float(before.max())),
            (float(after.mean()), float(after.max())), turn)


def fit_groom(hair: HairResult, source: TriMesh, target: TriMesh,
              correspondences: tuple[np.ndarray, np.ndarray] | None = None, icp: bool = True,
              head_name: str = "", collide: bool = True, margin: float = 5e-4,
              ) -> tuple[HairResult, FitReport, object]:
    """Fit `hair` (grown on `source`, the model's scalp) onto the `target` head.

    Returns the fitted groom (provenance records the fit and, with `collide`, the collision
    pass against the target head), the FitReport and the CollisionReport (or None).
    """
    from tressel.geometry.collision import build_head_sdf, resolve_collisions

    start = time.perf_counter()
    query = MeshQuery(target)
    registration = register(source, target, correspondences, icp=icp, target_query=query)
    fitted, before, after, turn = transfer_strands(hair, source, target,
                                                   registration.similarity, query)
    report = FitReport(registration, before, after, turn, time.perf_counter() - start)
    fitted.provenance.operations.update(report.as_provenance(head_name))
    log.info("%s", report.summary())
    collision = None
    if collide:
        positions, collision = resolve_collisions(fitted.positions, build_head_sdf(target),
                                                  margin)
        fitted.positions = positions
        fitted.provenance.operations.update(collision.as_provenance())
        fitted.provenance.operations["collision:mesh"] = f"fit head {head_name}".strip()
    return fitted, report, collision

"""Tressel's own procedural head: analytic ellipsoid parts plus a UV-mapped scalp mesh.

The head is a union of ellipsoids (cranium, face, nose, eyes, ears, neck, shoulders), in metres,
Y up, face towards +Z, the same frame as the DiffLocks scalp (SPEC §9). Ellipsoids make three
things exact and cheap: the renderer ray-casts them per pixel, the groom generator pushes
strands out of them, and the scalp is a closed-form map from (s, t) to the cranium.

Scalp UV: (s, t) in [0.01, 0.99] is mapped to the unit disk with the Shirley-Chiu concentric
map, the disk radius is scaled to the hairline angle for that azimuth, and the point is placed
on the cranium around a crown pole tilted backwards. Every texel of a scalp texture is therefore
on the scalp (no wasted texels), the disk boundary is the hairline, and +t points to the front,
+s to the head's left (+X).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UV_LO, UV_HI = 0.01, 0.99  # the scalp UV range, as in the official scalp (SPEC §9)


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid part of the head."""

    name: str
    center: tuple[float, float, float]
    axes: tuple[float, float, float]
    color: tuple[float, float, float]  # linear RGB albedo; "skin" parts are tinted per render
    collide: bool  # hair is pushed out of this part


SKIN = (1.0, 1.0, 1.0)

# Cranium first: the scalp lives on it.
HEAD_PARTS: tuple[Ellipsoid, ...] = (
    Ellipsoid("cranium", (0.0, 0.315, -0.005), (0.077, 0.100, 0.098), SKIN, True),
    Ellipsoid("face", (0.0, 0.265, 0.012), (0.066, 0.085, 0.085), SKIN, True),
    Ellipsoid("nose", (0.0, 0.275, 0.095), (0.011, 0.022, 0.016), SKIN, False),
    Ellipsoid("ear_l", (0.078, 0.292, -0.004), (0.011, 0.026, 0.016), SKIN, True),
    Ellipsoid("ear_r", (-0.078, 0.292, -0.004), (0.011, 0.026, 0.016), SKIN, True),
    Ellipsoid("eye_l", (0.032, 0.305, 0.080), (0.013, 0.008, 0.009), (0.85, 0.85, 0.82), False),
    Ellipsoid("eye_r", (-0.032, 0.305, 0.080), (0.013, 0.008, 0.009), (0.85, 0.85, 0.82), False),
    Ellipsoid("iris_l", (0.032, 0.305, 0.086), (0.005, 0.005, 0.004), (0.05, 0.04, 0.03), False),
    Ellipsoid("iris_r", (-0.032, 0.305, 0.086), (0.005, 0.005, 0.004), (0.05, 0.04, 0.03), False),
    Ellipsoid("brow_l", (0.033, 0.323, 0.087), (0.017, 0.003, 0.006), (0.06, 0.04, 0.03), False),
    Ellipsoid("brow_r", (-0.033, 0.323, 0.087), (0.017, 0.003, 0.006), (0.06, 0.04, 0.03), False),
    Ellipsoid("lips", (0.0, 0.225, 0.088), (0.020, 0.006, 0.009), (0.45, 0.12, 0.10), False),
    Ellipsoid("neck", (0.0, 0.170, -0.012), (0.050, 0.090, 0.050), SKIN, True),
    Ellipsoid("shoulders", (0.0, 0.0, -0.012), (0.200, 0.120, 0.110), (0.20, 0.25, 0.35), True),
)

CRANIUM = HEAD_PARTS[0]
# Landmarks used by the DiffLocks crop rule (SPEC §0): chin, top of forehead, cheeks.
LANDMARKS = {
    "chin": (0.0, 0.182, 0.085),
    "forehead": (0.0, 0.370, 0.085),
    "cheek_l": (0.068, 0.285, 0.050),
    "cheek_r": (-0.068, 0.285, 0.050),
}
BROW_Y = 0.323

# The crown pole is tilted back so that the hairline angle varies smoothly from the forehead
# (about 72 degrees from the pole) over the sides (88) to the nape (124).
CROWN_TILT = math.radians(15.0)
HAIRLINE_COEFFS = (math.radians(93.0), math.radians(-26.0), math.radians(5.0))


def _pole_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pole = np.array([0.0, math.cos(CROWN_TILT), -math.sin(CROWN_TILT)])
    side = np.array([1.0, 0.0, 0.0])
    front = np.cross(side, pole)
    return pole, side, front


def concentric_square_to_disk(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shirley-Chiu map of [-1,1]^2 to the unit disk; returns (x, y) on the disk."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    use_a = np.abs(a) > np.abs(b)
    safe_a = np.where(a == 0, 1.0, a)
    safe_b = np.where(b == 0, 1.0, b)
    r = np.where(use_a, a, b)
    phi = np.where(use_a, (math.pi / 4) * (b / safe_a), math.pi / 2 - (math.pi / 4) * (a / safe_b))
    phi = np.where((a == 0) & (b == 0), 0.0, phi)
    return r * np.cos(phi), r * np.sin(phi)


def hairline_angle(azimuth: np.ndarray) -> np.ndarray:
    """Angle from the crown pole to the hairline; azimuth 0 is the front, pi the back."""
    a0, a1, a2 = HAIRLINE_COEFFS
    return a0 + a1 * np.cos(azimuth) + a2 * np.cos(2 * azimuth)


@dataclass
class ScalpPoints:
    """Points on the scalp for given (s, t): position, outward normal, disk coordinates."""

    positions: np.ndarray  # [N,3]
    normals: np.ndarray  # [N,3]
    disk: np.ndarray  # [N,2] (x: towards +X side, y: towards the front), radius <= 1
    azimuth: np.ndarray  # [N] 0 = front, +-pi = back, +pi/2 = +X side


def scalp_points(root_uv: np.ndarray) -> ScalpPoints:
    """Map scalp (s, t) to the cranium surface."""
    root_uv = np.asarray(root_uv, np.float64)
    a = (root_uv[:, 0] - UV_LO) / (UV_HI - UV_LO) * 2 - 1
    b = (root_uv[:, 1] - UV_LO) / (UV_HI - UV_LO) * 2 - 1
    dx, dy = concentric_square_to_disk(np.clip(a, -1, 1), np.clip(b, -1, 1))
    rho = np.hypot(dx, dy)
    azimuth = np.arctan2(dx, dy)
    theta = rho * hairline_angle(azimuth)
    pole, side, front = _pole_frame()
    safe = np.where(rho > 1e-12, rho, 1.0)
    cx, cy = dx / safe, dy / safe
    unit = (np.cos(theta)[:, None] * pole
            + np.sin(theta)[:, None] * (cx[:, None] * side + cy[:, None] * front))
    center = np.array(CRANIUM.center)
    axes = np.array(CRANIUM.axes)
    positions = center + axes * unit
    normals = unit / axes
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return ScalpPoints(positions, normals, np.stack([dx, dy], 1), azimuth)


def scalp_mesh_arrays(resolution: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular (s, t) grid triangulated and mapped to the cranium: vertices, faces, uv.

    Triangles are wound so that (e1 x e2) points away from the head, as the TBN of SPEC §9
    expects for an outward normal.
    """
    n = resolution + 1
    st = np.linspace(UV_LO, UV_HI, n)
    s, t = np.meshgrid(st, st, indexing="xy")  # row index follows t
    uv = np.stack([s.ravel(), t.ravel()], 1)
    vertices = scalp_points(uv).positions
    idx = np.arange(n * n).reshape(n, n)
    v00, v01 = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    v10, v11 = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([v00, v01, v11], 1), np.stack([v00, v11, v10], 1)])
    # Fix the winding per face against the outward normal.
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outward = tri.mean(1) - np.array(CRANIUM.center)
    flip = (face_n * outward).sum(1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return vertices.astype(np.float32), faces.astype(np.int64), uv.astype(np.float32)


def write_scalp_ply(path: Path, resolution: int = 24) -> Path:
    """Write the scalp as an ascii PLY with `x y z s t` per vertex (the SPEC §9 layout)."""
    import os
    import tempfile

    vertices, faces, uv = scalp_mesh_arrays(resolution)
    lines = [
        "ply", "format ascii 1.0", "comment Tressel procedural scalp (metres, Y up)",
        f"element vertex {len(vertices)}",
        "property float x", "property float y", "property float z",
        "property float s", "property float t",
        f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header",
    ]
    lines += [f"{x:.7g} {y:.7g} {z:.7g} {s:.7g} {t:.7g}"
              for (x, y, z), (s, t) in zip(vertices.tolist(), uv.tolist())]
    lines += [f"3 {a} {b} {c}" for a, b, c in faces.tolist()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def push_out_of_head(points: np.ndarray, margin: np.ndarray | float = 0.0,
                     parts: tuple[Ellipsoid, ...] = HEAD_PARTS) -> np.ndarray:
    """Move points that lie inside a colliding part (grown by `margin` metres) onto its shell.

    The push is radial in the ellipsoid's normalised frame: not the exact closest point, but
    continuous and cheap, which is what draping strands over a head needs.
    """
    out = np.array(points, dtype=np.float64, copy=True)
    margin = np.broadcast_to(np.asarray(margin, np.float64), out.shape[:-1])
    for part in parts:
        if not part.collide:
            continue
        center = np.asarray(part.center)
        axes = np.asarray(part.axes)
        q = (out - center) / axes
        r = np.linalg.norm(q, axis=-1)
        limit = 1.0 + margin / axes.mean()
        inside = r < limit
        if not inside.any():
            continue
        scale = np.where(inside, limit / np.maximum(r, 1e-9), 1.0)
        out = np.where(inside[..., None], center + q * scale[..., None] * axes, out)
    return out


def head_signed_scale(points: np.ndarray) -> np.ndarray:
    """Smallest normalised radius |(p - c) / a| over colliding parts (< 1 means inside)."""
    best = np.full(points.shape[:-1], np.inf)
    for part in HEAD_PARTS:
        if part.collide:
            q = (points - np.asarray(part.center)) / np.asarray(part.axes)
            best = np.minimum(best, np.linalg.norm(q, axis=-1))
    return best

"""A groom prepared for drawing, without Qt or OpenGL: curves, levels of detail, GPU buffers.

The view uploads `DrawBuffers` once and draws every strand with one `glDrawElements(GL_LINES)`
call. Strands go into the index buffer in a seeded random order, so any prefix of it is an
even, random subset of the groom: the software-rendered view draws a prefix while the camera
moves (the decimated preview) and the whole buffer when it stops, without a second upload.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LODS = ("full", "preview", "guides")
SHADINGS = ("direction", "colour")
PREVIEW_FRACTION = 0.1  # what the USD writer's preview variant keeps (WriteOptions defaults)
PREVIEW_POINTS = 16
FALLBACK_GUIDES = 2000  # guides drawn from the strands when a layer has none
MIN_HAIR_BRIGHTNESS = 0.22  # display floor for near-black hair (sRGB mean)

# One vertex as the GPU reads it: 20 bytes. The tangent drives both the direction shading and
# the hair lighting (in the shader), so only the hair colour needs its own attribute.
VERTEX_DTYPE = np.dtype([("position", np.float32, 3), ("tangent", np.int8, 4),
                         ("colour", np.uint8, 4)])


@dataclass
class CurveSet:
    """Polylines: all points in one array, `counts[i]` points for curve i (metres, Y up)."""

    points: np.ndarray  # [P, 3] float32
    counts: np.ndarray  # [N] int64, each >= 2

    @classmethod
    def from_strands(cls, positions: np.ndarray) -> CurveSet:
        positions = np.asarray(positions, np.float32)
        num, per_curve, _ = positions.shape
        return cls(positions.reshape(-1, 3), np.full(num, per_curve, np.int64))

    @property
    def num_curves(self) -> int:
        return len(self.counts)

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def offsets(self) -> np.ndarray:
        """Index of each curve's first point."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def uniform(self) -> np.ndarray | None:
        """[N, V, 3] when every curve has the same point count, else None."""
        if self.num_curves and np.all(self.counts == self.counts[0]):
            return self.points.reshape(self.num_curves, int(self.counts[0]), 3)
        return None


@dataclass
class HairLook:
    """What the hair colour shading needs from the predicted material (all in [0, 1])."""

    melanin: float = 0.5
    redness: float = 0.3
    root_darkness_start: float = 0.0
    root_darkness_end: float = 0.0
    root_darkness_strength: float = 0.0

    @classmethod
    def from_material(cls, material: Any) -> HairLook:
        return cls(**{name: float(getattr(material, name)) for name in
                      ("melanin", "redness", "root_darkness_start", "root_darkness_end",
                       "root_darkness_strength")})


@dataclass
class GroomScene:
    """Everything the viewer shows of one groom layer."""

    strands: CurveSet
    guides: CurveSet | None = None
    scalp_vertices: np.ndarray | None = None  # [V, 3] float32
    scalp_faces: np.ndarray | None = None  # [F, 3] int64
    look: HairLook | None = None
    provenance: Any = None
    path: Path | None = None

    def curves(self, lod: str) -> CurveSet:
        """The curves drawn at a level of detail (full, preview or guides)."""
        if lod == "full":
            return self.strands
        if lod == "preview":
            return decimate(self.strands, max(1, round(self.strands.num_curves *
                                                      PREVIEW_FRACTION)), PREVIEW_POINTS)
        if lod == "guides":
            if self.guides is not None and self.guides.num_curves:
                return self.guides
            return decimate(self.strands, FALLBACK_GUIDES, None)
        raise ValueError(f"unknown level of detail {lod!r}: use one of {', '.join(LODS)}")

    def describe(self) -> str:
        text = f"{self.strands.num_curves:,} strands"
        uniform = self.strands.uniform()
        if uniform is not None:
            text += f" x {uniform.shape[1]} points"
        if self.guides is not None:
            text += f", {self.guides.num_curves:,} guides"
        return text


def scene_from_hair(hair: Any, guides: CurveSet | None = None,
                    path: Path | None = None) -> GroomScene:
    """A scene from a `tressel.result.HairResult` (what `read_groom` returns)."""
    scalp = getattr(hair, "scalp_mesh", None)
    return GroomScene(
        strands=CurveSet.from_strands(hair.positions), guides=guides,
        scalp_vertices=None if scalp is None else np.asarray(scalp.vertices, np.float32),
        scalp_faces=None if scalp is None else np.asarray(scalp.faces, np.int64),
        look=HairLook.from_material(hair.material), provenance=hair.provenance, path=path,
    )


def load_groom_scene(path: str | os.PathLike[str]) -> GroomScene:
    """Read a groom layer (any Tressel layer, with or without lod variants) for viewing."""
    from tressel.usd import read_groom

    path = Path(path)
    hair = read_groom(path)  # the full strands; lod variants, if any, set to "full"
    return scene_from_hair(hair, guides=read_guides(path), path=path)


def read_guides(path: Path) -> CurveSet | None:
    """The layer's guide curves (`/Groom/Guides`), in metres, or None when it has none."""
    from pxr import UsdGeom
    from tressel.usd.reader import open_groom_stage

    stage = open_groom_stage(path, lod=None)
    groom = stage.GetDefaultPrim()
    prim = groom.GetChild("Guides") if groom else None
    if not prim or not prim.IsA(UsdGeom.BasisCurves):
        return None
    curves = UsdGeom.BasisCurves(prim)
    counts = np.array(curves.GetCurveVertexCountsAttr().Get() or [], np.int64)
    points = np.array(curves.GetPointsAttr().Get() or [], np.float32).reshape(-1, 3)
    if not len(counts) or counts.sum() != len(points) or counts.min() < 2:
        return None
    return CurveSet(points * np.float32(UsdGeom.GetStageMetersPerUnit(stage)), counts)


def decimate(curves: CurveSet, max_curves: int | None, points_per_curve: int | None,
             seed: int = 0) -> CurveSet:
    """A seeded subset of at most `max_curves` curves, each resampled to `points_per_curve`
    points picked evenly along it (its root and tip kept); None keeps that dimension."""
    num = curves.num_curves
    keep = np.arange(num)
    if max_curves is not None and max_curves < num:
        keep = np.sort(np.random.default_rng(seed).choice(num, int(max_curves), replace=False))
    counts = curves.counts[keep]
    offsets = curves.offsets[keep]
    if points_per_curve is None:
        index = np.concatenate([np.arange(o, o + c) for o, c in zip(offsets, counts)]) \
            if len(keep) else np.zeros(0, np.int64)
        return CurveSet(curves.points[index], counts.copy())
    target = np.minimum(counts, int(points_per_curve))
    # Per curve: `target` indices spread evenly over 0..count-1 (vectorised over all curves).
    curve_of = np.repeat(np.arange(len(keep)), target)
    first = np.concatenate([[0], np.cumsum(target)[:-1]])
    rank = np.arange(int(target.sum())) - np.repeat(first, target)
    span = (counts - 1)[curve_of] / np.maximum(target - 1, 1)[curve_of]
    index = offsets[curve_of] + np.rint(rank * span).astype(np.int64)
    return CurveSet(curves.points[index], target.astype(np.int64))


def vertex_tangents(curves: CurveSet) -> np.ndarray:
    """Unit direction of each curve at each point (central differences, one-sided at ends)."""
    points = curves.points.astype(np.float32)
    ahead = np.empty_like(points)
    behind = np.empty_like(points)
    ahead[:-1] = points[1:]
    ahead[-1] = points[-1]
    behind[1:] = points[:-1]
    behind[0] = points[0]
    starts = curves.offsets
    ends = starts + curves.counts - 1
    behind[starts] = points[starts]  # a curve must not borrow its neighbour's points
    ahead[ends] = points[ends]
    tangent = ahead - behind
    length = np.linalg.norm(tangent, axis=1, keepdims=True)
    return tangent / np.maximum(length, 1e-12)


def direction_colours(tangents: np.ndarray) -> np.ndarray:
    """[P, 3] uint8: strands coloured by where they point (|x|, |y|, |z| as red, green, blue),
    lifted so that no direction draws black on the dark background."""
    return np.rint(255 * (0.25 + 0.75 * np.abs(tangents))).astype(np.uint8)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def base_hair_colour(look: HairLook) -> np.ndarray:
    """Display (sRGB) colour of the predicted hair: the layer's UsdPreviewSurface colour."""
    from tressel.usd.material import absorption_to_color, melanin_absorption

    linear = absorption_to_color(melanin_absorption(look.melanin, look.redness))
    return linear_to_srgb(np.asarray(linear, np.float64))


def hair_colours(curves: CurveSet, look: HairLook | None, seed: int = 0) -> np.ndarray:
    """[P, 3] uint8: the predicted hair colour, darker towards the root as the material's root
    darkness says, with a small per-strand variation so neighbouring strands stay apart."""
    base = base_hair_colour(look or HairLook())
    # Near-black hair would vanish on the dark background: lift it to a floor of brightness.
    base = base + max(0.0, MIN_HAIR_BRIGHTNESS - float(base.mean()))
    # float32 and few temporaries: this runs over every point of 100,000-strand grooms.
    counts = curves.counts
    along = (np.arange(curves.num_points) - np.repeat(curves.offsets, counts)).astype(np.float32)
    t = along / np.repeat(np.maximum(counts - 1, 1).astype(np.float32), counts)
    jitter = np.random.default_rng(seed).uniform(0.8, 1.15, curves.num_curves)
    shade = np.repeat(jitter.astype(np.float32), counts) * (0.85 + 0.3 * t)  # tips: lighter
    if look is not None and look.root_darkness_strength > 0:
        lo, hi = look.root_darkness_start, max(look.root_darkness_end, look.root_darkness_start
                                               + 1e-3)
        ramp = np.clip((t - lo) / (hi - lo), 0.0, 1.0)
        # Softened on screen: full-strength dark roots would hide where strands start.
        shade *= 1.0 - 0.7 * look.root_darkness_strength * (1.0 - ramp)
    rgb = shade[:, None] * (255 * base).astype(np.float32)[None, :] + 0.5
    return np.clip(rgb, 0.0, 255.0, out=rgb).astype(np.uint8)


@dataclass
class DrawBuffers:
    """GPU-ready arrays for one groom at one level of detail."""

    vertices: np.ndarray  # [P] VERTEX_DTYPE
    indices: np.ndarray  # [2 * segments] uint32: GL_LINES pairs, strands in shuffled order
    curve_index_ends: np.ndarray  # [N] int64: indices used by the first k+1 strands drawn
    bounds_min: np.ndarray  # [3] float32
    bounds_max: np.ndarray
    prepare_seconds: float = 0.0

    @property
    def num_curves(self) -> int:
        return len(self.curve_index_ends)

    @property
    def num_segments(self) -> int:
        return int(len(self.indices) // 2)

    @property
    def nbytes(self) -> int:
        return int(self.vertices.nbytes + self.indices.nbytes)

    def index_count(self, max_segments: int | None = None) -> int:
        """How many indices to draw for at most `max_segments` segments of whole strands
        (None: all); at least one strand, so a decimated view is never empty."""
        if max_segments is None or max_segments >= self.num_segments or not self.num_curves:
            return len(self.indices)
        cut = int(np.searchsorted(self.curve_index_ends, 2 * max_segments, side="right"))
        return int(self.curve_index_ends[max(cut - 1, 0)])

    def positions(self) -> np.ndarray:
        return self.vertices["position"]

    def colours(self, shading: str) -> np.ndarray:
        """[P, 3] uint8 colours for a shading mode (the painter fallback's; the GPU derives the
        direction colours from the tangents itself)."""
        if shading == "colour":
            return self.vertices["colour"][:, :3]
        tangents = self.vertices["tangent"][:, :3].astype(np.float32) / 127.0
        return direction_colours(tangents)


def prepare_buffers(curves: CurveSet, look: HairLook | None = None, seed: int = 0) -> DrawBuffers:
    """Interleaved vertices and a GL_LINES index buffer for `curves` (all numpy, no loops)."""
    start = time.perf_counter()
    if curves.num_curves == 0:
        raise ValueError("the groom has no strands to draw")
    if curves.num_points >= 2**32 - 1:
        raise ValueError(f"{curves.num_points:,} points do not fit 32-bit indices: "
                         "view the preview or guides level of detail")
    vertices = np.empty(curves.num_points, VERTEX_DTYPE)
    vertices["position"] = curves.points
    tangents = vertex_tangents(curves)
    vertices["tangent"][:, :3] = np.rint(tangents * 127.0).astype(np.int8)
    vertices["tangent"][:, 3] = 0
    vertices["colour"][:, :3] = hair_colours(curves, look, seed)
    vertices["colour"][:, 3] = 255

    order = np.random.default_rng(seed).permutation(curves.num_curves)
    segments = (curves.counts - 1)[order]
    offsets = curves.offsets[order]
    first = np.concatenate([[0], np.cumsum(segments)[:-1]])
    total = int(segments.sum())
    starts = np.repeat(offsets, segments) + (np.arange(total) - np.repeat(first, segments))
    indices = np.empty(2 * total, np.uint32)
    indices[0::2] = starts
    indices[1::2] = starts + 1
    buffers = DrawBuffers(
        vertices=vertices, indices=indices, curve_index_ends=2 * np.cumsum(segments),
        bounds_min=curves.points.min(axis=0), bounds_max=curves.points.max(axis=0),
    )
    buffers.prepare_seconds = time.perf_counter() - start
    log.debug("prepared %d strands (%d segments, %.1f MB) in %.3f s", curves.num_curves,
              total, buffers.nbytes / 1e6, buffers.prepare_seconds)
    return buffers


@dataclass
class HeadMesh:
    """Triangles drawn for context: the scalp the strands grow from and a head fitted to it."""

    vertices: np.ndarray  # [V, 3] float32
    normals: np.ndarray  # [V, 3] float32
    faces: np.ndarray  # [F, 3] uint32


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through `points` (the roots lie on the scalp): centre, radius."""
    points = np.asarray(points, np.float64)
    a = np.column_stack([2 * points, np.ones(len(points))])
    b = (points ** 2).sum(axis=1)
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    centre = solution[:3]
    radius = float(np.sqrt(max(solution[3] + centre @ centre, 0.0)))
    extent = float(np.ptp(points, axis=0).max()) if len(points) else 0.0
    if not np.isfinite(radius) or radius <= 0 or radius > 10 * max(extent, 1e-6):
        # Degenerate (too few or coplanar roots): a sphere around the roots' box instead.
        centre = points.mean(axis=0) if len(points) else np.zeros(3)
        radius = max(extent / 2, 0.05)
    return centre.astype(np.float32), radius


def sphere_mesh(centre: np.ndarray, radius: float, rings: int = 24,
                segments: int = 48) -> HeadMesh:
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    normals = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1)
    normals = normals.reshape(-1, 3).astype(np.float32)
    idx = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.uint32)
    return HeadMesh(np.asarray(centre, np.float32) + radius * normals, normals, faces)


def mesh_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            ).astype(np.float32)


def head_mesh(scene: GroomScene) -> HeadMesh:
    """The layer's scalp mesh (when it has one) and a head sphere fitted to the strand roots,
    shrunk slightly so the scalp and the roots sit on top of it."""
    roots = scene.strands.points[scene.strands.offsets]
    centre, radius = fit_sphere(roots)
    head = sphere_mesh(centre, radius * 0.97)
    if scene.scalp_vertices is None or scene.scalp_faces is None or not len(scene.scalp_faces):
        return head
    scalp_vertices = np.asarray(scene.scalp_vertices, np.float32)
    scalp_faces = np.asarray(scene.scalp_faces, np.int64)
    normals = mesh_normals(scalp_vertices, scalp_faces)
    base = len(head.vertices)
    return HeadMesh(
        vertices=np.concatenate([head.vertices, scalp_vertices]),
        normals=np.concatenate([head.normals, normals]),
        faces=np.concatenate([head.faces, (scalp_faces + base).astype(np.uint32)]),
    )

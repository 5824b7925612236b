"""Write a `HairResult` as a USD groom layer that lookdev artists open directly in their DCC.

Layout of the layer (DESIGN.md "The USD layer"):

    /Groom                  Xform, kind=component, defaultPrim, TresselGroomAPI (provenance)
        Strands             BasisCurves: the render strands
        Guides              BasisCurves, purpose=guide: a few thousand strands for DCC import
        Scalp               Mesh, purpose=guide, on request
        Looks/HairMaterial  MaterialX Chiang hair + UsdPreviewSurface fallback

With level-of-detail variants, /Groom carries a `lod` variant set (full, preview, guides); the
strands of `full` and `preview` come through payloads to the abstract /TresselPayloads prim of
the same file, so the layer stays one file and a stage opened without payloads skips the
heavy geometry.
"""

from __future__ import annotations

import ctypes
import inspect
import logging
import os
import time
import uuid
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, Vt
from tressel import __version__
from tressel.errors import ConfigError
from tressel.geometry.guides import GUIDES_PER_STRAND, pick_guides, reconstruction_error
from tressel.params import WRITE_CHECKS
from tressel.result import HairResult
from tressel.usd import curves as curve_ops
from tressel.usd.material import author_hair_material, preview_color
from tressel.usd.schema import GROOM_API, groom_attribute_types, register_schemas

log = logging.getLogger(__name__)

UNITS = {"m": 1.0, "cm": 0.01}
LOD_VARIANTS = ("full", "preview", "guides")
PAYLOAD_ROOT = Sdf.Path("/TresselPayloads")
FORMATS = {".usdc": "usdc", ".usd": "usdc", ".usda": "usda"}
OPERATIONS_KEY = "tresselOperations"  # customData on the groom prim: collision, fit, guides


@dataclass
class WriteOptions:
    """How to turn strands into curves; every length is in metres, whatever `units` says."""

    points_per_strand: int = 64  # points written per render strand (control points for bspline)
    basis: str = "linear"  # "linear" (every importer reads it) or "bspline" (cubic)
    units: str = "m"  # stage unit: "m" (metersPerUnit 1) or "cm" (metersPerUnit 0.01)
    root_width: float = 1.0e-4  # strand width at the root
    tip_width: float = 2.0e-5  # strand width at the tip
    # Per-strand thickness variation: each strand's widths times a factor in [1 - v, 1 + v]
    # (fixed per strand id). With it USD stores widths as they are instead of compressing the
    # repeated taper: faster to write and to read, a larger file (README, "USD groom layers").
    width_variation: float = 0.0
    guides: int = 2000  # guide strands; 0 for none
    guide_method: str = "clusters"  # "clusters": one guide per shape clump; "spread": even
    guide_points: int | None = None  # points per guide; None: same as points_per_strand
    lod: bool = False  # author lod variants (full, preview, guides) with payloads
    lod_selection: str = "full"  # the variant a stage opens with
    preview_fraction: float = 0.1  # share of strands in the preview variant
    preview_points: int = 16  # points per strand in the preview variant
    scalp: bool = False  # add the scalp mesh, as guide purpose, for context
    material: bool = True  # author and bind the hair material
    groom_name: str = "Groom"  # name of the root prim

    def check(self) -> None:
        if self.basis not in curve_ops.BASES:
            raise ConfigError(f"unknown curve basis {self.basis!r}: use linear or bspline")
        if self.units not in UNITS:
            raise ConfigError(f"unknown units {self.units!r}: use m or cm")
        minimum = 2 if self.basis == "linear" else 4
        for name in ("points_per_strand", "preview_points", "guide_points"):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ConfigError(f"{name}={value} is too few for {self.basis} curves: "
                                  f"use at least {minimum}")
        if self.guide_method not in ("clusters", "spread"):
            raise ConfigError(f"guide_method={self.guide_method!r}: use clusters or spread")
        if self.guides < 0:
            raise ConfigError(f"guides={self.guides}: use 0 for no guides or a positive count")
        if not 0.0 < self.preview_fraction <= 1.0:
            raise ConfigError(f"preview_fraction={self.preview_fraction}: use a value in (0, 1]")
        if self.lod_selection not in LOD_VARIANTS:
            raise ConfigError(f"lod_selection={self.lod_selection!r}: use one of "
                              f"{', '.join(LOD_VARIANTS)}")
        if self.lod_selection == "guides" and self.guides == 0:
            raise ConfigError("lod_selection='guides' needs guides: set guides > 0")
        if not (self.root_width > 0 and self.tip_width > 0):
            raise ConfigError("strand widths must be positive")
        WRITE_CHECKS["width_variation"](self.width_variation)
        if not Sdf.Path.IsValidIdentifier(self.groom_name):
            raise ConfigError(f"groom_name {self.groom_name!r} is not a valid USD prim name")


@dataclass
class WriteReport:
    """What `write_groom` wrote, and how close the written curves stay to the strands."""

    path: Path
    file_format: str
    num_strands: int
    points_per_strand: int
    source_points_per_strand: int
    basis: str
    units: str
    meters_per_unit: float
    max_deviation: float  # metres: farthest input point from the written render curve
    mean_deviation: float  # metres
    num_guides: int
    lod: bool
    scalp: bool
    bytes: int
    seconds: float
    timings: dict = field(default_factory=dict)  # seconds per phase: resample, author, save
    options: dict = field(default_factory=dict)


def _scaled(array: np.ndarray, scale: float) -> np.ndarray:
    """Metres to stage units; no copy of a large array when they are metres."""
    return array if scale == 1.0 else array * np.float32(scale)


def _vt_buffer(array_type, count: int, shape: tuple[int, ...]) -> tuple[object, np.ndarray]:
    """A new USD array of `count` elements and a writable float32/int32 numpy view of it.

    `Vt.*Array.FromNumpy` converts element by element (about 11 ns per float here: a second for
    100,000 strands x 256 points), while filling a view of the array's own storage is a memcpy.
    Vt exposes its buffer read-only; the array is new and referenced only here, so writing into
    it before handing it to USD changes nothing anyone else holds. Falls back to the slow path
    (the caller copies via FromNumpy) when the buffer is not the plain layout expected.
    """
    vt_array = array_type(count)
    readonly = np.asarray(vt_array)
    expected = int(np.prod(shape))
    if (readonly.size != expected or readonly.dtype.itemsize != 4
            or not readonly.flags.c_contiguous or count == 0):
        return vt_array, None
    address = readonly.__array_interface__["data"][0]
    raw = (ctypes.c_char * (expected * 4)).from_address(address)
    view = np.frombuffer(raw, dtype=readonly.dtype).reshape(shape)
    return vt_array, view


def _vec3f(array: np.ndarray) -> Vt.Vec3fArray:
    """A Vt.Vec3fArray holding float32 points [..., 3], copied once."""
    flat = np.asarray(array).reshape(-1, 3)
    vt_array, view = _vt_buffer(Vt.Vec3fArray, len(flat), flat.shape)
    if view is None:
        return Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(flat, dtype=np.float32))
    np.copyto(view, flat, casting="same_kind")
    return vt_array


def _widths_array(widths: np.ndarray, num: int, factors: np.ndarray | None = None
                  ) -> Vt.FloatArray:
    """Per-vertex widths: the per-strand taper repeated for `num` strands, each times its
    factor when `factors` [num] are given; written once, into USD's own array."""
    per_strand = len(widths)
    vt_array, view = _vt_buffer(Vt.FloatArray, num * per_strand, (num, per_strand))
    if factors is not None:
        if view is None:
            return Vt.FloatArray.FromNumpy(curve_ops.strand_widths(widths, factors).ravel())
        curve_ops.strand_widths(widths, factors, out=view)
        return vt_array
    if view is None:
        return Vt.FloatArray.FromNumpy(np.tile(widths.astype(np.float32), num))
    view[...] = widths.astype(np.float32)
    return vt_array


def _curves_extent(points: np.ndarray, widths: np.ndarray) -> Vt.Vec3fArray:
    """UsdGeom.Curves.ComputeExtent of points [N,K,3] and per-point widths, vectorised.

    The bounds of the points, widened by half the largest width, in float32 as USD does it.
    Reducing over strands first keeps the inner axis contiguous ([N, K*3] -> [K*3]), which
    numpy does at memory speed; a reduction over [M, 3] rows would not.
    """
    rows = points.reshape(len(points), -1)
    low = rows.min(axis=0).reshape(-1, 3).min(axis=0)
    high = rows.max(axis=0).reshape(-1, 3).max(axis=0)
    half = np.float32(widths.max()) * np.float32(0.5)
    return Vt.Vec3fArray([Gf.Vec3f(*(low - half).tolist()), Gf.Vec3f(*(high + half).tolist())])


def _define_curves(
    stage: Usd.Stage,
    path: Sdf.Path,
    points: np.ndarray,
    widths: np.ndarray,
    basis: str,
    root_uv: np.ndarray,
    strand_ids: np.ndarray,
    root_normals: np.ndarray,
    color: Gf.Vec3f,
    guide_links: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    points_vt: Vt.Vec3fArray | None = None,
    width_factors: np.ndarray | None = None,
) -> Gf.Range3f:
    """Define one BasisCurves prim from [N,K,3] points; returns its extent.

    `widths` [K] is the taper; `width_factors` [N], when given, scales it per strand.

    `points_vt`, when given, is a USD array that already holds `points` (the writer resamples
    straight into it), so the points are not copied again.

    `guide_links` (guide positions [N,3], weights [N,3], clump ids [N]) become the uniform
    primvars guideIndices and guideWeights (element size 3) and clumpId.
    """
    num, per_strand, _ = points.shape
    points_vt = points_vt if points_vt is not None else _vec3f(points)
    curves = UsdGeom.BasisCurves.Define(stage, path)
    if basis == "linear":
        curves.CreateTypeAttr(UsdGeom.Tokens.linear)
    else:
        curves.CreateTypeAttr(UsdGeom.Tokens.cubic)
        curves.CreateBasisAttr(UsdGeom.Tokens.bspline)
    curves.CreateWrapAttr(UsdGeom.Tokens.nonperiodic)
    curves.CreateCurveVertexCountsAttr(
        Vt.IntArray.FromNumpy(np.full(num, per_strand, dtype=np.int32))
    )
    curves.CreatePointsAttr(points_vt)
    # The plain `widths` attribute, not primvars:widths: Blender reads only the former.
    widths_vt = _widths_array(widths, num, width_factors)
    curves.CreateWidthsAttr(widths_vt)
    curves.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
    widest = widths if width_factors is None else widths * np.float32(width_factors.max())
    extent = _curves_extent(points, widest)
    curves.CreateExtentAttr(extent)
    del points_vt, widths_vt
    primvars = UsdGeom.PrimvarsAPI(curves)
    primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.uniform).Set(
        Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(root_uv, dtype=np.float32))
    )
    primvars.CreatePrimvar("strandId", Sdf.ValueTypeNames.IntArray, UsdGeom.Tokens.uniform).Set(
        Vt.IntArray.FromNumpy(np.ascontiguousarray(strand_ids, dtype=np.int32))
    )
    primvars.CreatePrimvar(
        "rootNormal", Sdf.ValueTypeNames.Normal3fArray, UsdGeom.Tokens.uniform
    ).Set(_vec3f(root_normals))
    curves.CreateDisplayColorPrimvar(UsdGeom.Tokens.constant).Set(Vt.Vec3fArray([color]))
    if guide_links is not None:
        guide_ids, weights, clump = guide_links
        primvars.CreatePrimvar("guideIndices", Sdf.ValueTypeNames.IntArray,
                               UsdGeom.Tokens.uniform, GUIDES_PER_STRAND).Set(
            Vt.IntArray.FromNumpy(np.ascontiguousarray(guide_ids, dtype=np.int32).ravel()))
        primvars.CreatePrimvar("guideWeights", Sdf.ValueTypeNames.FloatArray,
                               UsdGeom.Tokens.uniform, GUIDES_PER_STRAND).Set(
            Vt.FloatArray.FromNumpy(np.ascontiguousarray(weights, dtype=np.float32).ravel()))
        primvars.CreatePrimvar("clumpId", Sdf.ValueTypeNames.IntArray,
                               UsdGeom.Tokens.uniform).Set(
            Vt.IntArray.FromNumpy(np.ascontiguousarray(clump, dtype=np.int32)))
    return Gf.Range3f(Gf.Vec3f(extent[0]), Gf.Vec3f(extent[1]))


def _bind(prim: Usd.Prim, material: UsdShade.Material | None) -> None:
    if material is not None:
        UsdShade.MaterialBindingAPI.Apply(prim).Bind(material)


def _author_provenance(groom: Usd.Prim, result: HairResult, report_fields: dict) -> None:
    """Apply TresselGroomAPI and author every one of its attributes with its schema type."""
    if not groom.ApplyAPI(GROOM_API):
        groom.AddAppliedSchema(GROOM_API)  # schema registered too late to look up: same data
    prov = result.provenance
    mat = result.material
    values = {
        "tressel:version": prov.tressel_version or __version__,
        "tressel:source:imageSha256": prov.image_sha256,
        "tressel:source:cropBox": list(prov.crop_box) if prov.crop_box else [],
        "tressel:model:bundleName": prov.bundle_name,
        "tressel:model:bundleHash": prov.bundle_hash,
        "tressel:sampling:seed": int(prov.seed),
        "tressel:sampling:steps": int(prov.steps),
        "tressel:sampling:guidance": float(prov.guidance),
        "tressel:sampling:guidanceInterval": Gf.Vec2d(*prov.guidance_interval),
        "tressel:material:melanin": mat.melanin,
        "tressel:material:melaninRedness": mat.redness,
        "tressel:material:rootDarknessStart": mat.root_darkness_start,
        "tressel:material:rootDarknessEnd": mat.root_darkness_end,
        "tressel:material:rootDarknessStrength": mat.root_darkness_strength,
        "tressel:material:raw": [float(v) for v in mat.raw],
        **report_fields,
    }
    types = groom_attribute_types()
    for name, value in values.items():
        type_name = Sdf.ValueTypeNames.Find(types[name])
        groom.CreateAttribute(name, type_name, custom=False).Set(value)
    # Steps after the model (collision, fit, guides) vary in what they record: kept as the
    # groom prim's customData dictionary `tresselOperations` ("step:name" -> value).
    if prov.operations:
        groom.SetCustomDataByKey(OPERATIONS_KEY, {
            key: int(value) if isinstance(value, bool | int | np.integer)
            else float(value) if isinstance(value, float | np.floating) else str(value)
            for key, value in sorted(prov.operations.items())})


def _extents_hint(default: Gf.Range3f, guide: Gf.Range3f) -> Vt.Vec3fArray:
    """extentsHint in UsdGeom's purpose order (default, render, proxy, guide)."""
    boxes = []
    for purpose in UsdGeom.Imageable.GetOrderedPurposeTokens():
        box = {UsdGeom.Tokens.default_: default, UsdGeom.Tokens.guide: guide}.get(
            purpose, Gf.Range3f()
        )
        boxes += [box.GetMin(), box.GetMax()]
    while len(boxes) > 2 and Gf.Range3f(boxes[-2], boxes[-1]).IsEmpty():
        boxes = boxes[:-2]  # UsdGeom drops trailing empty purposes
    return Vt.Vec3fArray(boxes)


def _cap_points(opts: WriteOptions, source_points: int) -> WriteOptions:
    """Never write more points than the model predicted: they would add size, not shape.

    A linear curve keeps at most the input points; a B-spline at most one knot per input point
    (two more control points).
    """
    cap = source_points + (0 if opts.basis == "linear" else 2)
    capped = {name: cap for name in ("points_per_strand", "preview_points", "guide_points")
              if (getattr(opts, name) or 0) > cap}
    if capped:
        log.info("strands have %d points: writing at most %d per curve (asked %s)", source_points,
                 cap, ", ".join(f"{name}={getattr(opts, name)}" for name in capped))
    return replace(opts, **capped)


def write_groom(result: HairResult, path: str | os.PathLike, **options) -> WriteReport:
    """Write `result` as a USD groom layer at `path` (.usdc, .usd or .usda), atomically.

    Options are the fields of `WriteOptions`. The returned report says how far the written
    curves stray from the predicted strands (`max_deviation`, metres).
    """
    start = time.perf_counter()
    try:
        opts = WriteOptions(**options)
    except TypeError as exc:
        raise ConfigError(f"write_groom: {exc}; options are the fields of WriteOptions") from exc
    opts.check()
    path = Path(path)
    file_format = FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ConfigError(f"cannot write {path.name}: use a .usdc, .usd or .usda file name")
    if not isinstance(result, HairResult):
        raise TypeError(f"write_groom needs a tressel.result.HairResult, got "
                        f"{type(result).__name__}")
    positions = np.asarray(result.positions)
    if positions.ndim != 3 or positions.shape[2] != 3 or positions.shape[1] < 2:
        raise ConfigError(f"strand positions must be [N, V>=2, 3], got {positions.shape}")
    num, source_points, _ = positions.shape
    if num == 0:
        raise ConfigError("the groom has no strands: nothing to write")
    if opts.scalp and result.scalp_mesh is None:
        raise ConfigError("scalp=True but this groom carries no scalp mesh: write without it")
    opts = _cap_points(opts, source_points)
    register_schemas()

    scale = 1.0 / UNITS[opts.units]  # metres -> stage units
    root_uv = np.asarray(result.root_uv, dtype=np.float32).reshape(num, 2)
    root_normals = np.asarray(result.root_normals, dtype=np.float32).reshape(num, 3)
    strand_ids = np.arange(num, dtype=np.int32)
    color = preview_color(result.material)
    widths = curve_ops.tapered_widths(opts.points_per_strand, opts.root_width, opts.tip_width)
    factors = (curve_ops.width_factors(strand_ids, opts.width_variation)
               if opts.width_variation else None)

    timings = {}
    phase_start = time.perf_counter()
    # Resampled straight into the USD array's storage: the points are written once, and the
    # layer's copy is the only one (no numpy array beside it).
    render_vt, render_view = _vt_buffer(Vt.Vec3fArray, num * opts.points_per_strand,
                                        (num, opts.points_per_strand, 3))
    render = curve_ops.resample_strands(positions, opts.points_per_strand, opts.basis,
                                        out=render_view)
    render_points = render.points  # stage units from here on
    if render_view is None:
        render_vt = None
        render_points = _scaled(render_points, scale)
    elif scale != 1.0:
        render_points *= np.float32(scale)  # the same float32 product as _scaled, in place
    timings["resample"] = time.perf_counter() - phase_start
    phase_start = time.perf_counter()
    log.debug("resampled %d strands to %d points: max deviation %.3g m",
              num, opts.points_per_strand, render.max_deviation)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        layer = Sdf.Layer.CreateNew(str(tmp), args={"format": file_format})
    except BaseException:  # a full disk fails here already, after creating the file
        tmp.unlink(missing_ok=True)
        raise
    try:
        # LoadNone: authoring needs no payload contents, and skips recomposing them.
        stage = Usd.Stage.Open(layer, Usd.Stage.LoadNone)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, UNITS[opts.units])
        layer.customLayerData = {"creator": f"tressel {__version__}"}
        groom_path = Sdf.Path.absoluteRootPath.AppendChild(opts.groom_name)
        groom = UsdGeom.Xform.Define(stage, groom_path).GetPrim()
        stage.SetDefaultPrim(groom)
        Usd.ModelAPI(groom).SetKind(Kind.Tokens.component)

        material = None
        if opts.material:
            looks = UsdGeom.Scope.Define(stage, groom_path.AppendChild("Looks"))
            material = author_hair_material(
                stage, looks.GetPath().AppendChild("HairMaterial"), result.material
            )

        # Guides: one per shape clump (or evenly spread); small enough to stay outside any
        # payload. Every strand links to three of them with weights (guideIndices/Weights).
        guide_box = Gf.Range3f()
        guide_links = None
        guide_index = np.zeros(0, dtype=np.int64)
        if opts.guides > 0:
            phase_start_guides = time.perf_counter()
            guide_set = pick_guides(positions, opts.guides, opts.guide_method)
            guide_index = guide_set.index
            guide_links = (guide_set.guides, guide_set.weights, guide_set.clump)
            error = reconstruction_error(positions, guide_set)
            guide_record = {"guides:method": opts.guide_method,
                            "guides:count": len(guide_index),
                            "guides:reconstructionMean": error["mean"],
                            "guides:reconstructionP95": error["p95"]}
            timings["guides"] = time.perf_counter() - phase_start_guides
        else:
            guide_record = {}
        guides_prim = None
        if len(guide_index):
            guide_points = opts.guide_points or opts.points_per_strand
            guide_curves = curve_ops.resample_strands(
                positions[guide_index], guide_points, opts.basis
            ).points
            guide_box = _define_curves(
                stage, groom_path.AppendChild("Guides"), _scaled(guide_curves, scale),
                curve_ops.tapered_widths(guide_points, opts.root_width, opts.tip_width) * scale,
                opts.basis, root_uv[guide_index], strand_ids[guide_index],
                root_normals[guide_index], color,
                width_factors=None if factors is None else factors[guide_index],
            )
            guides_prim = stage.GetPrimAtPath(groom_path.AppendChild("Guides"))
            _bind(guides_prim, material)

        if opts.scalp:
            guide_box.UnionWith(_define_scalp(stage, groom_path.AppendChild("Scalp"),
                                              result, scale))

        strands_path = groom_path.AppendChild("Strands")
        if not opts.lod:
            strands_box = _define_curves(
                stage, strands_path, render_points, widths * scale, opts.basis,
                root_uv, strand_ids, root_normals, color, guide_links, points_vt=render_vt,
                width_factors=factors,
            )
            _bind(stage.GetPrimAtPath(strands_path), material)
            if guides_prim is not None:
                UsdGeom.Imageable(guides_prim).CreatePurposeAttr(UsdGeom.Tokens.guide)
        else:
            strands_box = _author_lod(
                stage, groom, opts, positions, render_points, widths, scale, root_uv,
                strand_ids, root_normals, color, material, guides_prim, guide_links,
                full_vt=render_vt, width_factors=factors,
            )
        del render.points, render_points, render_vt, render_view

        UsdGeom.ModelAPI(groom).SetExtentsHint(_extents_hint(strands_box, guide_box))
        if guide_record:
            result = replace(result, provenance=replace(
                result.provenance, operations={**result.provenance.operations,
                                               **guide_record}))
        _author_provenance(groom, result, {
            "tressel:strands:sourcePointsPerStrand": int(source_points),
            "tressel:strands:maxDeviation": float(render.max_deviation),
        })
        timings["author"] = time.perf_counter() - phase_start
        phase_start = time.perf_counter()
        layer.Save()
        timings["save"] = time.perf_counter() - phase_start
        del stage
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        del layer
    # A layer already open under the final name would keep serving its old contents.
    stale = Sdf.Layer.Find(str(path))
    if stale is not None:
        stale.Reload()

    report = WriteReport(
        path=path, file_format=file_format, num_strands=num,
        points_per_strand=opts.points_per_strand, source_points_per_strand=source_points,
        basis=opts.basis, units=opts.units, meters_per_unit=UNITS[opts.units],
        max_deviation=render.max_deviation, mean_deviation=render.mean_deviation,
        num_guides=len(guide_index), lod=opts.lod, scalp=opts.scalp,
        bytes=path.stat().st_size, seconds=time.perf_counter() - start, timings=timings,
        options=asdict(opts),
    )
    log.info("wrote %s: %d strands x %d points, max deviation %.3g m, %.1f MB in %.1f s",
             path, num, opts.points_per_strand, report.max_deviation, report.bytes / 1e6,
             report.seconds)
    return report


def _define_scalp(stage: Usd.Stage, path: Sdf.Path, result: HairResult, scale: float) -> Gf.Range3f:
    """The scalp mesh as guide-purpose context; returns its extent."""
    scalp = result.scalp_mesh
    faces = np.asarray(scalp.faces, dtype=np.int32)
    mesh = UsdGeom.Mesh.Define(stage, path)
    points_vt = _vec3f(_scaled(np.asarray(scalp.vertices, dtype=np.float32), scale))
    mesh.CreatePointsAttr(points_vt)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreatePurposeAttr(UsdGeom.Tokens.guide)
    extent = UsdGeom.PointBased.ComputeExtent(points_vt)
    mesh.CreateExtentAttr(extent)
    UsdGeom.PrimvarsAPI(mesh).CreatePrimvar(
        "st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex
    ).Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(scalp.uv, dtype=np.float32)))
    return Gf.Range3f(Gf.Vec3f(extent[0]), Gf.Vec3f(extent[1]))


def _author_lod(
    stage: Usd.Stage, groom: Usd.Prim, opts: WriteOptions, positions: np.ndarray,
    full_points: np.ndarray, widths: np.ndarray, scale: float, root_uv: np.ndarray,
    strand_ids: np.ndarray, root_normals: np.ndarray, color: Gf.Vec3f,
    material: UsdShade.Material | None, guides_prim: Usd.Prim | None,
    guide_links: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    full_vt: Vt.Vec3fArray | None = None,
    width_factors: np.ndarray | None = None,
) -> Gf.Range3f:
    """The lod variant set; heavy strands live under the abstract /TresselPayloads prim.

    `full_points` are in stage units already (`full_vt`, when given, holds them for USD)."""
    stage.CreateClassPrim(PAYLOAD_ROOT)
    full_box = _define_curves(
        stage, PAYLOAD_ROOT.AppendChild("Full"), full_points, widths * scale, opts.basis,
        root_uv, strand_ids, root_normals, color, guide_links, points_vt=full_vt,
        width_factors=width_factors,
    )
    subset = curve_ops.preview_subset(len(positions), opts.preview_fraction)
    preview_points = curve_ops.resample_strands(positions[subset], opts.preview_points,
                                                opts.basis).points
    _define_curves(
        stage, PAYLOAD_ROOT.AppendChild("Preview"), _scaled(preview_points, scale),
        curve_ops.tapered_widths(opts.preview_points, opts.root_width, opts.tip_width) * scale,
        opts.basis, root_uv[subset], strand_ids[subset], root_normals[subset], color,
        None if guide_links is None else tuple(link[subset] for link in guide_links),
        width_factors=None if width_factors is None else width_factors[subset],
    )
    strands_path = groom.GetPath().AppendChild("Strands")
    variants = groom.GetVariantSets().AddVariantSet("lod")
    # Without guides there is nothing to show in a guides variant.
    for name in LOD_VARIANTS if guides_prim is not None else LOD_VARIANTS[:2]:
        variants.AddVariant(name)
        variants.SetVariantSelection(name)
        with variants.GetVariantEditContext():
            if name != "guides":
                strands = UsdGeom.BasisCurves.Define(stage, strands_path).GetPrim()
                strands.GetPayloads().AddInternalPayload(PAYLOAD_ROOT.AppendChild(name.title()))
                _bind(strands, material)
            if guides_prim is not None:
                # Purpose lives in the variants: the guides variant shows the guides.
                UsdGeom.Imageable(guides_prim).CreatePurposeAttr(
                    UsdGeom.Tokens.default_ if name == "guides" else UsdGeom.Tokens.guide
                )
    variants.SetVariantSelection(opts.lod_selection)
    return full_box


def _options_signature() -> inspect.Signature:
    """write_groom's signature with every WriteOptions field as a keyword-only parameter, so
    callers that introspect it (the daemon checks job options this way) see the options."""
    params = [
        inspect.Parameter("result", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation="HairResult"),
        inspect.Parameter("path", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation="str | os.PathLike"),
    ]
    for option in fields(WriteOptions):
        default = option.default if option.default is not MISSING else inspect.Parameter.empty
        params.append(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=option.type))
    return inspect.Signature(params, return_annotation="WriteReport")


write_groom.__signature__ = _options_signature()

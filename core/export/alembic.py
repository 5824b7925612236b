"""Write a HairResult as an Alembic (Ogawa) groom that Unreal, Maya and Blender import.

Layout, following Epic's "Alembic for Grooms" schema (attribute names `groom_*`, read by
Unreal's groom importer) on standard `ICurves`, which Maya's AbcImport and Blender read:

    /Groom                          Xform
        Strands/StrandsShape        Xform/Curves, linear: every render strand
        Guides/GuidesShape          Xform/Curves, linear: the guide strands (groom_guide = 1)

Both curves carry widths per point (the schema's widths, tapered root to tip) and root UVs
(the schema's uvs, one per curve), and as arbGeomParams: groom_version_major/minor and
groom_tool (constant), groom_guide (constant int16: 0 strands, 1 guides), groom_group_id and
groom_id (per curve), groom_root_uv (per curve). Strands also carry groom_closest_guides and
groom_guide_weights (three per curve; the guides' groom_id), so Unreal can use the imported
interpolation instead of building its own. Positions are in centimetres by default (what Unreal
and Maya expect; Alembic has no unit field), Y up like the groom.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from tressel import __version__
from tressel.errors import ConfigError
from tressel.params import WRITE_CHECKS
from tressel.result import HairResult

log = logging.getLogger(__name__)

UNITS = {"m": 1.0, "cm": 100.0}  # stage units per metre
GROOM_VERSION = (1, 4)  # Alembic for Grooms schema version written


@dataclass
class AlembicOptions:
    """How to write the .abc; lengths in metres whatever `units` says."""

    points_per_strand: int = 32  # linear curve points per strand (arc-length resampled)
    units: str = "cm"  # "cm" (Unreal, Maya) or "m" (Blender, Houdini)
    root_width: float = 1.0e-4
    tip_width: float = 2.0e-5
    width_variation: float = 0.0  # per-strand thickness variation, as in the USD layer
    guides: int = 2000  # guide curves; 0 for none
    guide_method: str = "clusters"  # "clusters" (shape clumps) or "spread" (even)
    group_id: int = 0  # groom_group_id of every curve

    def check(self) -> None:
        if self.points_per_strand < 2:
            raise ConfigError(f"points_per_strand={self.points_per_strand}: use at least 2")
        if self.units not in UNITS:
            raise ConfigError(f"units {self.units!r}: use cm or m")
        if self.guides < 0:
            raise ConfigError(f"guides={self.guides}: use 0 for none or a positive count")
        if self.guide_method not in ("clusters", "spread"):
            raise ConfigError(f"guide_method={self.guide_method!r}: use clusters or spread")
        if not (self.root_width > 0 and self.tip_width > 0):
            raise ConfigError("strand widths must be positive")
        WRITE_CHECKS["width_variation"](self.width_variation)


@dataclass
class AlembicReport:
    """What `write_alembic` wrote."""

    path: Path
    num_strands: int
    num_guides: int
    points_per_strand: int
    units: str
    max_deviation: float  # metres, farthest input point from the written polyline
    bytes: int
    seconds: float
    options: dict = field(default_factory=dict)


def alembic_options(write_options: dict) -> dict:
    """The USD writer options (`WriteOptions` fields) that also mean something in Alembic."""
    names = {f.name for f in fields(AlembicOptions)}
    return {key: value for key, value in write_options.items() if key in names}


def require_alembic() -> None:
    """Raise a ConfigError saying what to install when alembic3d is missing, without importing
    it: commands check `--alembic` before they load the model, not after the groom is made."""
    from tressel.extras import require_extra

    require_extra("alembic", {"alembic3d": "alembic3d", "imath": "alembic3d"},
                  "writing Alembic")


def _import_alembic():
    try:
        import imath
        from alembic3d import Abc, AbcGeom
    except ImportError:
        require_alembic()  # names the package when it is missing, else the error stands
        raise
    return Abc, AbcGeom, imath


def _filled(imath, kind: str, values: np.ndarray):
    """An imath array of `kind` holding `values`, filled through numpy (no Python loop)."""
    array = getattr(imath, kind)(len(values))
    if kind == "ShortArray":  # no buffer view for int16 arrays; only used for constants
        for i, value in enumerate(np.asarray(values).tolist()):
            array[i] = int(value)
        return array
    np.asarray(array)[...] = values
    return array


def _param(AbcGeom, imath, parent, name: str, kind: str, values: np.ndarray, scope,
           extent: int = 1) -> None:
    """One arbGeomParam: kind is Int16, Int32, Float or V2f."""
    array_kind = {"Int16": "ShortArray", "Int32": "IntArray", "Float": "FloatArray",
                  "V2f": "V2fArray"}[kind]
    param = getattr(AbcGeom, f"O{kind}GeomParam")(parent, name, False, scope, extent)
    sample = getattr(AbcGeom, f"O{kind}GeomParamSample")(
        _filled(imath, array_kind, values), scope)
    param.set(sample)


def _curves(AbcGeom, imath, parent, name: str, points: np.ndarray, widths: np.ndarray,
            root_uv: np.ndarray, ids: np.ndarray, guide: int, group_id: int,
            links: tuple[np.ndarray, np.ndarray] | None) -> None:
    num, per_strand, _ = points.shape
    scope = AbcGeom.GeometryScope
    # A transform with a shape under it, as Maya writes curves: Maya and Blender name the
    # imported objects after the transform.
    curves = AbcGeom.OCurves(AbcGeom.OXform(parent, name), f"{name}Shape")
    schema = curves.getSchema()
    width_sample = AbcGeom.OFloatGeomParamSample(
        _filled(imath, "FloatArray", widths.ravel()), scope.kVertexScope)
    uv_sample = AbcGeom.OV2fGeomParamSample(_filled(imath, "V2fArray", root_uv),
                                            scope.kUniformScope)
    sample = AbcGeom.OCurvesSchemaSample(
        _filled(imath, "V3fArray", points.reshape(-1, 3)),
        _filled(imath, "IntArray", np.full(num, per_strand, np.int32)),
        AbcGeom.CurveType.kLinear, AbcGeom.CurvePeriodicity.kNonPeriodic, width_sample,
        uv_sample, AbcGeom.ON3fGeomParamSample(), AbcGeom.BasisType.kNoBasis)
    schema.set(sample)
    arb = schema.getArbGeomParams()
    _param(AbcGeom, imath, arb, "groom_version_major", "Int16",
           np.array([GROOM_VERSION[0]], np.int16), scope.kConstantScope)
    _param(AbcGeom, imath, arb, "groom_version_minor", "Int16",
           np.array([GROOM_VERSION[1]], np.int16), scope.kConstantScope)
    tool = AbcGeom.OStringGeomParam(arb, "groom_tool", False, scope.kConstantScope, 1)
    names = imath.StringArray(1)
    names[0] = f"Tressel {__version__}"
    tool.set(AbcGeom.OStringGeomParamSample(names, scope.kConstantScope))
    _param(AbcGeom, imath, arb, "groom_guide", "Int16", np.array([guide], np.int16),
           scope.kConstantScope)
    _param(AbcGeom, imath, arb, "groom_group_id", "Int32", np.full(num, group_id, np.int32),
           scope.kUniformScope)
    _param(AbcGeom, imath, arb, "groom_id", "Int32", ids.astype(np.int32), scope.kUniformScope)
    _param(AbcGeom, imath, arb, "groom_root_uv", "V2f", root_uv, scope.kUniformScope)
    if links is not None:
        closest, weights = links
        _param(AbcGeom, imath, arb, "groom_closest_guides", "Int32",
               closest.astype(np.int32).ravel(), scope.kUniformScope, closest.shape[1])
        _param(AbcGeom, imath, arb, "groom_guide_weights", "Float",
               weights.astype(np.float32).ravel(), scope.kUniformScope, weights.shape[1])


def write_alembic(result: HairResult, path: str | os.PathLike, **options) -> AlembicReport:
    """Write `result` as an Ogawa Alembic groom at `path` (.abc), atomically.

    Options are the fields of `AlembicOptions`. Guides and their per-strand links come from
    `tressel.geometry.guides` (shape clumps by default), as in the USD layer.
    """
    from tressel.geometry.guides import pick_guides
    from tressel.usd.curves import resample_strands, strand_widths, tapered_widths, width_factors

    start = time.perf_counter()
    try:
        opts = AlembicOptions(**options)
    except TypeError as exc:
        raise ConfigError(f"write_alembic: {exc}; options are the fields of AlembicOptions"
                          ) from exc
    opts.check()
    path = Path(path)
    if path.suffix.lower() != ".abc":
        raise ConfigError(f"cannot write {path.name} as Alembic: use a .abc file name")
    positions = np.asarray(result.positions)
    if positions.ndim != 3 or positions.shape[2] != 3 or positions.shape[1] < 2:
        raise ConfigError(f"strand positions must be [N, V>=2, 3], got {positions.shape}")
    num = len(positions)
    if num == 0:
        raise ConfigError("the groom has no strands: nothing to write")
    Abc, AbcGeom, imath = _import_alembic()
    scale = np.float32(UNITS[opts.units])
    points = min(opts.points_per_strand, positions.shape[1])
    render = resample_strands(positions, points)
    # Per-vertex widths [N, P]; the same per-strand factors as the USD layer.
    widths = strand_widths(tapered_widths(points, opts.root_width, opts.tip_width) * scale,
                           width_factors(np.arange(num), opts.width_variation))
    root_uv = np.asarray(result.root_uv, np.float32).reshape(num, 2)
    guide_set = pick_guides(positions, opts.guides, opts.guide_method) if opts.guides else None

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.abc")
    try:
        archive = Abc.OArchive(str(tmp), True)  # Ogawa
        groom = AbcGeom.OXform(archive.getTop(), "Groom")
        links = None if guide_set is None else (guide_set.guides, guide_set.weights)
        _curves(AbcGeom, imath, groom, "Strands", render.points * scale, widths, root_uv,
                np.arange(num), 0, opts.group_id, links)
        num_guides = 0
        if guide_set is not None and len(guide_set.index):
            num_guides = len(guide_set.index)
            _curves(AbcGeom, imath, groom, "Guides", render.points[guide_set.index] * scale,
                    widths[guide_set.index], root_uv[guide_set.index], np.arange(num_guides), 1,
                    opts.group_id, None)
        del groom, archive  # closing the archive writes the file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report = AlembicReport(path=path, num_strands=num, num_guides=num_guides,
                           points_per_strand=points, units=opts.units,
                           max_deviation=render.max_deviation, bytes=path.stat().st_size,
                           seconds=time.perf_counter() - start, options=asdict(opts))
    log.info("wrote %s: %d strands x %d points, %d guides, %.1f MB in %.1f s", path, num,
             points, num_guides, report.bytes / 1e6, report.seconds)
    return report

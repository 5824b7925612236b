"""Read a Tressel groom layer into flat buffers that Houdini's bulk geometry setters take as is.

Houdini ships its own `pxr`; it is imported inside `read_layer` only, so the host package
imports anywhere (a bare interpreter, hython without USD). Every per-point array stays a Vt
array (unit conversion is Vt arithmetic, in C++) and is handed on as a `memoryview` over it:
no Python object per point, no numpy.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tressel.errors import TresselError

LOADS = ("strands", "guides", "both")


@dataclass
class CurveBatch:
    """One BasisCurves prim as buffers: float32 for points (xyz), widths, uv (st); int32 ids."""

    prim: str  # "Strands" or "Guides"
    guide: bool
    counts: list[int]  # points per curve
    points: memoryview  # float32, 3 per point, metres
    widths: memoryview  # float32, 1 per point, metres (diameter)
    pscale: memoryview  # float32, 1 per point: half the width (Houdini's radius convention)
    root_uv: memoryview  # float32, 2 per curve
    strand_ids: memoryview  # int32, 1 per curve
    keep: list[Any] = field(default_factory=list, repr=False)  # the Vt arrays viewed above

    @property
    def num_curves(self) -> int:
        return len(self.counts)

    @property
    def num_points(self) -> int:
        return self.points.nbytes // 12  # three float32 per point


@dataclass
class GroomLayer:
    """What the SOP builds: curve batches plus detail values (material, provenance)."""

    path: Path
    batches: list[CurveBatch]
    details: dict[str, Any]  # Houdini attribute name -> float, int, str or tuple

    @property
    def num_curves(self) -> int:
        return sum(batch.num_curves for batch in self.batches)

    @property
    def num_points(self) -> int:
        return sum(batch.num_points for batch in self.batches)


def _flat(view: memoryview) -> memoryview:
    """A 1-D byte view of a buffer (Vt exports [N, 3] for vectors)."""
    return view.cast("B")


def _filled(value: float, count: int, code: str = "f") -> memoryview:
    return memoryview(array(code, [value]) * count)


def _read_curves(curves: Any, meters_per_unit: float, guide: bool, path: Path) -> CurveBatch:
    from pxr import UsdGeom

    name = curves.GetPrim().GetName()
    counts_vt = curves.GetCurveVertexCountsAttr().Get()
    points_vt = curves.GetPointsAttr().Get()
    if not counts_vt or points_vt is None or sum(counts_vt) != len(points_vt):
        raise TresselError(f"{path}: {curves.GetPath()} has no curves or its point counts do "
                           "not add up: the layer is damaged; generate it again")
    counts = list(counts_vt)
    num_points = len(points_vt)
    if meters_per_unit != 1.0:
        points_vt = points_vt * meters_per_unit  # Vt arithmetic: one C++ loop

    keep = [points_vt]
    widths_vt = curves.GetWidthsAttr().Get()
    interpolation = curves.GetWidthsInterpolation()
    if widths_vt is None or len(widths_vt) == 0:
        widths = _filled(1.0e-4, num_points)
        pscale = _filled(0.5e-4, num_points)
    elif interpolation == UsdGeom.Tokens.constant or len(widths_vt) == 1:
        width = float(widths_vt[0]) * meters_per_unit
        widths, pscale = _filled(width, num_points), _filled(width / 2, num_points)
    elif len(widths_vt) == num_points:
        if meters_per_unit != 1.0:
            widths_vt = widths_vt * meters_per_unit
        half_vt = widths_vt * 0.5
        keep += [widths_vt, half_vt]
        widths, pscale = memoryview(widths_vt), memoryview(half_vt)
    else:  # one width per curve: repeat it along the curve (a loop per curve, not per point)
        if len(widths_vt) != len(counts):
            raise TresselError(f"{path}: {curves.GetPath()} has {len(widths_vt)} widths for "
                               f"{len(counts)} curves and {num_points} points: generate it again")
        per_point, half = array("f"), array("f")
        for width, count in zip(widths_vt, counts, strict=True):
            per_point.extend(array("f", [float(width) * meters_per_unit]) * count)
            half.extend(array("f", [float(width) * meters_per_unit / 2]) * count)
        widths, pscale = memoryview(per_point), memoryview(half)

    primvars = UsdGeom.PrimvarsAPI(curves)
    st = primvars.GetPrimvar("st")
    st_vt = st.ComputeFlattened() if st and st.HasValue() else None
    if st_vt is not None and len(st_vt) == len(counts):
        keep.append(st_vt)
        root_uv = memoryview(st_vt)
    else:
        root_uv = _filled(0.0, 2 * len(counts))
    ids = primvars.GetPrimvar("strandId")
    ids_vt = ids.ComputeFlattened() if ids and ids.HasValue() else None
    if ids_vt is not None and len(ids_vt) == len(counts):
        keep.append(ids_vt)
        strand_ids = memoryview(ids_vt)
    else:
        strand_ids = memoryview(array("i", range(len(counts))))
    return CurveBatch(
        prim=name, guide=guide, counts=counts, points=_flat(memoryview(points_vt)),
        widths=_flat(widths), pscale=_flat(pscale), root_uv=_flat(root_uv),
        strand_ids=_flat(strand_ids), keep=keep,
    )


def _detail_value(value: Any) -> Any:
    """A USD attribute value as what `setGlobalAttribValue` takes: float, int, str or tuple."""
    if isinstance(value, (bool, int, float, str)):
        return int(value) if isinstance(value, bool) else value
    try:
        items = tuple(value)
    except TypeError:
        return str(value)
    return tuple(float(v) if isinstance(v, float) else v for v in items)


def read_details(groom: Any) -> dict[str, Any]:
    """Every `tressel:*` attribute of the groom prim (material, provenance) by Houdini name."""
    details: dict[str, Any] = {}
    for attribute in groom.GetAttributes():
        name = attribute.GetName()
        if not name.startswith("tressel:"):
            continue
        value = attribute.Get()
        if value is None:
            continue
        value = _detail_value(value)
        if isinstance(value, tuple) and not value:
            continue  # an empty array (no crop box): nothing to store
        details[name.replace(":", "_")] = value
    return details


def read_layer(path: str | os.PathLike[str], load: str = "strands") -> GroomLayer:
    """Open the layer with Houdini's (or any) `pxr` and return the curves `load` asks for."""
    from pxr import Sdf, Usd, UsdGeom

    path = Path(path)
    if load not in LOADS:
        raise TresselError(f"load {load!r}: choose one of {', '.join(LOADS)}")
    if not path.is_file():
        raise TresselError(f"groom layer {path} not found: press Generate to make it again")
    cached = Sdf.Layer.Find(str(path))
    if cached is not None:
        cached.Reload()  # a file rewritten since it was first opened
    stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    if stage is None:
        raise TresselError(f"{path} is not a USD layer USD can read: generate it again")
    groom = stage.GetDefaultPrim()
    if not groom:
        raise TresselError(f"{path} has no default prim: it is not a Tressel groom layer")
    meters_per_unit = float(UsdGeom.GetStageMetersPerUnit(stage))
    wanted = {"strands": ("Strands",), "guides": ("Guides",),
              "both": ("Strands", "Guides")}[load]
    batches = []
    for name in wanted:
        prim = groom.GetChild(name)
        if not prim or not prim.IsA(UsdGeom.BasisCurves):
            if name == "Guides":
                raise TresselError(f"{path} has no guide curves: set Guide Strands above 0 and "
                                   "Generate again, or load Strands")
            raise TresselError(f"{path} has no {groom.GetPath()}/{name} curves: it is not a "
                               "Tressel groom layer")
        batches.append(_read_curves(UsdGeom.BasisCurves(prim), meters_per_unit,
                                    name == "Guides", path))
    details = read_details(groom)
    details["tressel_layer"] = str(path)
    details["tressel_layer_meters_per_unit"] = meters_per_unit
    return GroomLayer(path=path, batches=batches, details=details)

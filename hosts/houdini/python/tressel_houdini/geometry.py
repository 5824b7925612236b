"""Build Houdini curves from a read groom layer with Houdini's bulk geometry calls only.

Per point, nothing runs in Python: points are created in one call, every point attribute is
set from one byte buffer (`set*AttribValuesFromString`), and the only Python loop is one slice
per curve to group the new points into open polylines.
"""

from __future__ import annotations

from array import array
from itertools import accumulate
from typing import Any

from tressel_houdini.layer import GroomLayer


def _joined(views: list[memoryview]) -> bytes | memoryview:
    """One buffer for all batches (a copy only when there are several)."""
    return views[0] if len(views) == 1 else b"".join(views)


def _detail_default(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, int):
        return 0
    if isinstance(value, tuple):
        return tuple("" if isinstance(v, str) else 0 if isinstance(v, int) else 0.0
                      for v in value)
    return 0.0


def build_geometry(hou: Any, geo: Any, groom: GroomLayer) -> dict[str, int]:
    """Fill `geo` (a Python SOP's geometry) with the groom's curves; returns what was built.

    Point attributes: `P`, `width` (diameter, metres), `pscale` (half of it). Primitive
    attributes: `uv` (root UV, the layer's `st`), `strand_id`, `guide` (1 on guide curves).
    Detail attributes: every `tressel:*` value of the layer (material, provenance), named with
    `_` for `:`, plus `tressel_layer`.
    """
    batches = groom.batches
    total_points = groom.num_points
    float32, int32 = hou.numericData.Float32, hou.numericData.Int32
    point, prim, detail = hou.attribType.Point, hou.attribType.Prim, hou.attribType.Global

    # Positions come from the P buffer below; createPoints only needs the count.
    points = geo.createPoints(((0.0, 0.0, 0.0),) * total_points)
    counts = [count for batch in batches for count in batch.counts]
    curves = [points[start:start + count]
              for start, count in zip(accumulate(counts, initial=0), counts)]
    geo.createPolygons(curves, is_closed=False)

    geo.setPointFloatAttribValuesFromString(
        "P", _joined([b.points for b in batches]), float_type=float32)
    geo.addAttrib(point, "width", 0.0)
    geo.setPointFloatAttribValuesFromString(
        "width", _joined([b.widths for b in batches]), float_type=float32)
    geo.addAttrib(point, "pscale", 0.0)
    geo.setPointFloatAttribValuesFromString(
        "pscale", _joined([b.pscale for b in batches]), float_type=float32)

    geo.addAttrib(prim, "uv", (0.0, 0.0))
    geo.setPrimFloatAttribValuesFromString(
        "uv", _joined([b.root_uv for b in batches]), float_type=float32)
    geo.addAttrib(prim, "strand_id", 0)
    geo.setPrimIntAttribValuesFromString(
        "strand_id", _joined([b.strand_ids for b in batches]), int_type=int32)
    geo.addAttrib(prim, "guide", 0)
    flags = [memoryview(array("i", [int(b.guide)]) * b.num_curves).cast("B") for b in batches]
    geo.setPrimIntAttribValuesFromString("guide", _joined(flags), int_type=int32)

    for name, value in sorted(groom.details.items()):
        geo.addAttrib(detail, name, _detail_default(value))
        geo.setGlobalAttribValue(name, value)
    return {"curves": len(curves), "points": total_points}

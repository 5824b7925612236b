"""A short summary of a groom layer, for `tressel usd-info` and for people triaging a farm run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pxr import UsdGeom
from tressel.usd.reader import open_groom_stage, read_groom_material, read_provenance
from tressel.usd.schema import GROOM_API


def _curves_summary(prim) -> dict | None:
    if not prim or not prim.IsA(UsdGeom.BasisCurves):
        return None
    curves = UsdGeom.BasisCurves(prim)
    counts = np.array(curves.GetCurveVertexCountsAttr().Get() or [], dtype=np.int64)
    curve_type = curves.GetTypeAttr().Get()
    widths = curves.GetWidthsAttr().Get()
    summary = {
        "curves": len(counts),
        "points_per_curve": int(counts[0]) if len(counts) and counts.min() == counts.max()
        else "varies",
        "basis": "linear" if curve_type == UsdGeom.Tokens.linear else curves.GetBasisAttr().Get(),
        "purpose": UsdGeom.Imageable(prim).GetPurposeAttr().Get(),
    }
    if widths is not None and len(counts):
        summary["width_root_tip"] = (float(widths[0]), float(widths[int(counts[0]) - 1]))
    return summary


def layer_summary(path: str | os.PathLike) -> dict:
    """What a groom layer holds; counts come from the `full` level of detail."""
    path = Path(path)
    stage = open_groom_stage(path, lod="full")
    groom = stage.GetDefaultPrim()
    summary = {
        "file": str(path),
        "size_mb": round(path.stat().st_size / 1e6, 3),
        "up_axis": UsdGeom.GetStageUpAxis(stage),
        "meters_per_unit": UsdGeom.GetStageMetersPerUnit(stage),
        "default_prim": str(groom.GetPath()) if groom else None,
    }
    if not groom:
        return summary
    variants = groom.GetVariantSets()
    if variants.HasVariantSet("lod"):
        lod = groom.GetVariantSet("lod")
        summary["lod_variants"] = lod.GetVariantNames()
        # The layer's own selection, not the session's `full` that opened it.
        spec = stage.GetRootLayer().GetPrimAtPath(groom.GetPath())
        summary["lod_default"] = spec.variantSelections.get("lod") if spec else None
    for name in ("Strands", "Guides"):
        curves = _curves_summary(groom.GetChild(name))
        if curves is not None:
            summary[name.lower()] = curves
    summary["scalp"] = bool(groom.GetChild("Scalp"))
    summary["schema"] = GROOM_API if GROOM_API in groom.GetAppliedSchemas() else None
    deviation = groom.GetAttribute("tressel:strands:maxDeviation")
    if deviation and deviation.Get() is not None:
        summary["max_deviation_mm"] = round(deviation.Get() * 1e3, 4)
    material = read_groom_material(groom)
    summary["material"] = {
        "melanin": round(material.melanin, 4),
        "melanin_redness": round(material.redness, 4),
        "root_darkness": (round(material.root_darkness_start, 4),
                          round(material.root_darkness_end, 4),
                          round(material.root_darkness_strength, 4)),
    }
    prov = read_provenance(groom)
    summary["provenance"] = {
        "image_sha256": prov.image_sha256, "bundle": prov.bundle_name,
        "bundle_hash": prov.bundle_hash, "seed": prov.seed, "steps": prov.steps,
        "guidance": prov.guidance, "guidance_interval": prov.guidance_interval,
        "crop_box": prov.crop_box, "tressel_version": prov.tressel_version,
    }
    return summary

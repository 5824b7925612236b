"""Read a groom layer back into a `HairResult`, for batch jobs, the review tool and tests.

It reads what `write_groom` writes (and any layer whose default prim has a `Strands`
BasisCurves child with the same number of points on every curve): positions come back in
metres, whatever the layer's metersPerUnit; B-spline strands come back as the points where
their segments meet, which are points on the curve.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from pxr import Sdf, Tf, Usd, UsdGeom, UsdShade
from tressel.errors import TresselError, usd_error_reason
from tressel.result import MATERIAL_CHANNELS, HairMaterial, HairResult, Provenance, ScalpMesh
from tressel.usd.curves import evaluate_bspline_knots
from tressel.usd.material import INTERFACE_INPUTS, read_interface
from tressel.usd.schema import register_schemas

log = logging.getLogger(__name__)


def open_groom_stage(path: str | os.PathLike, lod: str | None = "full") -> Usd.Stage:
    """Open a groom layer with every payload loaded and, if it has lod variants, `lod` chosen
    (None keeps the layer's own selection)."""
    register_schemas()
    path = Path(path)
    if not path.is_file():
        raise TresselError(f"groom layer not found: {path}")
    # A layer cached from an earlier open would hide a file rewritten since.
    cached = Sdf.Layer.Find(str(path))
    if cached is not None:
        cached.Reload()
    try:
        layer = Sdf.Layer.FindOrOpen(str(path))
    except Tf.ErrorException as exc:  # not USD at all, a truncated crate file, an unknown suffix
        raise TresselError(f"{path} is not a USD layer USD can read ({usd_error_reason(exc)}): give "
                           "a .usdc, .usda or .usd groom layer") from None
    if layer is None:
        raise TresselError(f"{path} is not a USD layer USD can read")
    stage = Usd.Stage.Open(layer, Sdf.Layer.CreateAnonymous("session.usda"), Usd.Stage.LoadNone)
    groom = stage.GetDefaultPrim()
    if groom and lod is not None and groom.GetVariantSets().HasVariantSet("lod"):
        names = groom.GetVariantSet("lod").GetVariantNames()
        if lod not in names:
            raise TresselError(f"{path} has no lod {lod!r}: it has {', '.join(names)}")
        with Usd.EditContext(stage, stage.GetSessionLayer()):
            groom.GetVariantSet("lod").SetVariantSelection(lod)
    stage.Load()
    return stage


def _array(value, dtype, shape=None) -> np.ndarray:
    array = np.array(value, dtype=dtype) if value is not None else np.zeros(0, dtype)
    return array.reshape(shape) if shape is not None else array


def _strand_curves(groom: Usd.Prim, path: Path) -> UsdGeom.BasisCurves:
    strands = groom.GetChild("Strands")
    if not strands:
        # The guides-only lod has no render strands; the guides stand in for them.
        strands = groom.GetChild("Guides")
    if not strands or not strands.IsA(UsdGeom.BasisCurves):
        raise TresselError(
            f"{path} has no {groom.GetPath()}/Strands BasisCurves: it is not a groom layer "
            "written by Tressel"
        )
    return UsdGeom.BasisCurves(strands)


def read_groom(path: str | os.PathLike, lod: str = "full") -> HairResult:
    """Load the strands, root UVs, material and provenance of a groom layer."""
    path = Path(path)
    stage = open_groom_stage(path, lod)
    groom = stage.GetDefaultPrim()
    if not groom:
        raise TresselError(f"{path} has no defaultPrim: it is not a groom layer written by Tressel")
    meters_per_unit = UsdGeom.GetStageMetersPerUnit(stage)
    curves = _strand_curves(groom, path)

    counts = _array(curves.GetCurveVertexCountsAttr().Get(), np.int64)
    points = _array(curves.GetPointsAttr().Get(), np.float32, (-1, 3))
    if len(counts) == 0 or counts.min() != counts.max():
        raise TresselError(
            f"{curves.GetPath()} in {path} has curves with different point counts; "
            "a HairResult needs the same number of points on every strand"
        )
    num, per_strand = len(counts), int(counts[0])
    positions = points.reshape(num, per_strand, 3)
    if curves.GetTypeAttr().Get() == UsdGeom.Tokens.cubic:
        basis = curves.GetBasisAttr().Get()
        if basis != UsdGeom.Tokens.bspline:
            raise TresselError(f"{path}: reading cubic {basis} curves is not supported; "
                               "write bspline or linear curves")
        positions = evaluate_bspline_knots(positions.astype(np.float64)).astype(np.float32)
    if meters_per_unit != 1.0:
        positions = (positions * meters_per_unit).astype(np.float32)

    primvars = UsdGeom.PrimvarsAPI(curves)
    root_uv = _primvar(primvars, "st", np.float32, (num, 2))
    root_normals = _primvar(primvars, "rootNormal", np.float32, (num, 3))
    if root_normals is None:
        # Foreign layers: the first segment's direction is the best guess at the normal.
        first = positions[:, 1] - positions[:, 0]
        root_normals = first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)
    return HairResult(
        positions=np.ascontiguousarray(positions),
        root_uv=root_uv if root_uv is not None else np.zeros((num, 2), np.float32),
        root_positions=positions[:, 0].copy(),
        root_normals=root_normals.astype(np.float32),
        material=read_groom_material(groom),
        provenance=read_provenance(groom),
        scalp_mesh=_read_scalp(groom, meters_per_unit),
    )


def _primvar(primvars: UsdGeom.PrimvarsAPI, name: str, dtype, shape) -> np.ndarray | None:
    primvar = primvars.GetPrimvar(name)
    if not primvar or primvar.Get() is None:
        return None
    values = np.array(primvar.ComputeFlattened(), dtype=dtype)
    return values.reshape(shape) if values.size == np.prod(shape) else None


def _get(prim: Usd.Prim, name: str, default=None):
    attr = prim.GetAttribute(name)
    value = attr.Get() if attr else None
    return default if value is None else value


def read_groom_material(groom: Usd.Prim) -> HairMaterial:
    """The predicted material from TresselGroomAPI, else from the hair Material's inputs."""
    raw = [float(v) for v in _get(groom, "tressel:material:raw", [])]
    named = {
        "melanin": _get(groom, "tressel:material:melanin"),
        "redness": _get(groom, "tressel:material:melaninRedness"),
        "root_darkness_start": _get(groom, "tressel:material:rootDarknessStart"),
        "root_darkness_end": _get(groom, "tressel:material:rootDarknessEnd"),
        "root_darkness_strength": _get(groom, "tressel:material:rootDarknessStrength"),
    }
    if any(value is None for value in named.values()):
        # Not written by Tressel's schema: fall back on the bound material's interface.
        material_prim = groom.GetStage().GetPrimAtPath(groom.GetPath().AppendPath(
            Sdf.Path("Looks/HairMaterial")))
        interface = read_interface(UsdShade.Material(material_prim)) if material_prim else {}
        for name, field in INTERFACE_INPUTS:
            if named[field] is None:
                named[field] = interface.get(name, 0.0)
    if not raw:
        raw = [0.0] * (max(MATERIAL_CHANNELS.values()) + 1)
        for field, index in MATERIAL_CHANNELS.items():
            raw[index] = float(named[field])
    return HairMaterial(**{k: float(v) for k, v in named.items()}, raw=raw)


def read_provenance(groom: Usd.Prim) -> Provenance:
    """Provenance from TresselGroomAPI attributes; defaults where a layer lacks them."""
    crop = list(_get(groom, "tressel:source:cropBox", []))
    interval = _get(groom, "tressel:sampling:guidanceInterval", (0.0, 5.0))
    return Provenance(
        image_sha256=_get(groom, "tressel:source:imageSha256", ""),
        bundle_name=_get(groom, "tressel:model:bundleName", ""),
        bundle_hash=_get(groom, "tressel:model:bundleHash", ""),
        seed=int(_get(groom, "tressel:sampling:seed", 0)),
        steps=int(_get(groom, "tressel:sampling:steps", 0)),
        guidance=float(_get(groom, "tressel:sampling:guidance", 1.0)),
        guidance_interval=(float(interval[0]), float(interval[1])),
        crop_box=tuple(int(v) for v in crop) if len(crop) == 4 else None,
        tressel_version=_get(groom, "tressel:version", ""),
        operations=dict(groom.GetCustomDataByKey("tresselOperations") or {}),
    )


def _read_scalp(groom: Usd.Prim, meters_per_unit: float) -> ScalpMesh | None:
    prim = groom.GetChild("Scalp")
    if not prim or not prim.IsA(UsdGeom.Mesh):
        return None
    mesh = UsdGeom.Mesh(prim)
    counts = _array(mesh.GetFaceVertexCountsAttr().Get(), np.int64)
    if len(counts) == 0 or np.any(counts != 3):
        log.warning("%s is not a triangle mesh; not read as the scalp", prim.GetPath())
        return None
    vertices = _array(mesh.GetPointsAttr().Get(), np.float32, (-1, 3)) * meters_per_unit
    uv = _primvar(UsdGeom.PrimvarsAPI(mesh), "st", np.float32, (len(vertices), 2))
    return ScalpMesh(
        vertices=vertices.astype(np.float32),
        faces=_array(mesh.GetFaceVertexIndicesAttr().Get(), np.int64, (-1, 3)),
        uv=uv if uv is not None else np.zeros((len(vertices), 2), np.float32),
    )

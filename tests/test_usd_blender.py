"""A real DCC reads Tressel's groom layers: Blender's USD importer, through `bpy` 5.0.1.

`bpy` needs Python 3.11 and numpy<2, so it lives in its own venv, `.venv-blender` at the
repository root (README "USD groom layers" says how to make it); without it these tests skip.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tressel.usd  # noqa: F401  (registers the schema before any stage exists)
from pxr import Usd, UsdGeom
from test_usd import make_groom
from tressel.usd import write_groom

REPO = Path(__file__).resolve().parents[1]
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
IMPORT_SCRIPT = Path(__file__).with_name("blender_import_groom.py")

pytestmark = pytest.mark.skipif(
    not BLENDER_PYTHON.is_file(),
    reason=(
        f"no Blender venv at {BLENDER_PYTHON.parent.parent}: make it with `python3.11 -m venv "
        ".venv-blender && .venv-blender/bin/pip install 'bpy==5.0.1' 'numpy<2'` to run the "
        "Blender import tests"
    ),
)

# Blender's curve types (CURVE_TYPE_* in Blender's geometry code).
BLENDER_POLY, BLENDER_NURBS = 1, 3


def blender_import(path: Path, guides: bool = False) -> dict:
    command = [str(BLENDER_PYTHON), str(IMPORT_SCRIPT), str(path)]
    command += ["--guides"] if guides else []
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [text for text in proc.stdout.splitlines() if text.startswith("{")][-1]
    return json.loads(line)


def layer_curves(path: Path, prim_path: str) -> dict:
    stage = Usd.Stage.Open(str(path))
    curves = UsdGeom.BasisCurves(stage.GetPrimAtPath(prim_path))
    return {
        "points": np.array(curves.GetPointsAttr().Get()),
        "widths": np.array(curves.GetWidthsAttr().Get()),
        "st": np.array(UsdGeom.PrimvarsAPI(curves).GetPrimvar("st").Get()),
    }


def only(objects: list, name: str) -> dict:
    matches = [obj for obj in objects if obj["name"] == name]
    assert len(matches) == 1, [obj["name"] for obj in objects]
    return matches[0]


def test_blender_imports_linear_strands_as_hair_curves(tmp_path):
    groom = make_groom(200, seed=5)
    path = tmp_path / "groom.usdc"
    write_groom(groom, path, points_per_strand=16, guides=20)
    facts = blender_import(path, guides=True)
    assert facts["result"] == ["FINISHED"]
    strands = only(facts["objects"], "Strands")
    layer = layer_curves(path, "/Groom/Strands")
    assert strands["type"] == "CURVES"
    assert strands["curves"] == 200 and strands["points"] == 200 * 16
    assert set(strands["curve_type"]) == {BLENDER_POLY}
    np.testing.assert_allclose(strands["position"], layer["points"], atol=1e-7)
    # Blender's radius is half the USD width, point by point.
    np.testing.assert_allclose(strands["radius"], layer["widths"] / 2, rtol=1e-6)
    # The root UV arrives as a per-curve 2D attribute.
    assert strands["attributes"]["st"] == ["CURVE", "FLOAT2"]
    np.testing.assert_allclose(strands["st"], groom.root_uv, atol=1e-7)
    assert strands["attributes"]["strandId"] == ["CURVE", "INT"]
    guides = only(facts["objects"], "Guides")
    assert guides["curves"] == 20


def test_blender_imports_bspline_centimetre_lod_layer(tmp_path):
    groom = make_groom(200, seed=6)
    path = tmp_path / "groom.usdc"
    write_groom(groom, path, points_per_strand=18, basis="bspline", units="cm", lod=True,
                guides=20)
    facts = blender_import(path)
    strands = only(facts["objects"], "Strands")  # the full variant, through its payload
    layer = layer_curves(path, "/TresselPayloads/Full")
    assert strands["curves"] == 200 and strands["points"] == 200 * 18
    assert set(strands["curve_type"]) == {BLENDER_NURBS}
    np.testing.assert_allclose(strands["radius"], layer["widths"] / 2, rtol=1e-6)
    np.testing.assert_allclose(strands["st"], groom.root_uv, atol=1e-7)
    # Centimetres: Blender scales the objects to its metres.
    assert strands["scale"] == pytest.approx([0.01] * 3)
    assert not [obj for obj in facts["objects"] if obj["name"] == "Guides"]  # guide purpose

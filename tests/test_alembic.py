"""Alembic grooms read back by the Alembic library itself and by Blender's importer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_guides import clumpy_groom
from tressel.usd.curves import resample_strands, tapered_widths

abc = pytest.importorskip("alembic3d", reason="pip install 'tressel[alembic]' for Alembic")
from alembic3d import Abc, AbcGeom
from tressel.export import write_alembic

REPO = Path(__file__).resolve().parents[1]
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
IMPORT_SCRIPT = Path(__file__).with_name("blender_import_alembic.py")


def read_curves(path: Path, name: str) -> dict:
    """Everything a groom importer reads from one curves object, via the Alembic binding."""
    archive = Abc.IArchive(str(path))
    groom = archive.getTop().getChild("Groom")
    shape = groom.getChild(name).getChild(f"{name}Shape")
    curves = AbcGeom.ICurves(shape, Abc.WrapExistingFlag.kWrapExisting)
    schema = curves.getSchema()
    sample = schema.getValue()
    arb = schema.getArbGeomParams()
    params = {}
    for i in range(arb.getNumProperties()):
        header = arb.getPropertyHeader(i)
        prop = arb.getProperty(header.getName())
        value = prop.getValue()
        params[header.getName()] = np.array(list(value)) if not isinstance(value, str) else value
    return {
        "counts": np.array(sample.getCurvesNumVertices()),
        "points": np.asarray(sample.getPositions()).copy(),
        "type": sample.getType(),
        "widths": np.array(schema.getWidthsParam().getExpandedValue().getVals()),
        "widths_scope": schema.getWidthsParam().getScope(),
        "uvs": np.asarray(schema.getUVsParam().getExpandedValue().getVals()).copy(),
        "params": params,
        "archive": archive,
    }


@pytest.fixture(scope="module")
def groom_abc(tmp_path_factory):
    hair = clumpy_groom(600, points=24, seed=7)
    path = tmp_path_factory.mktemp("abc") / "groom.abc"
    report = write_alembic(hair, path, guides=30, points_per_strand=12)
    return hair, path, report


def test_alembic_read_back_by_the_binding(groom_abc):
    hair, path, report = groom_abc
    assert path.read_bytes()[:5] == b"Ogawa"
    assert report.num_strands == 600 and report.num_guides == 30 and report.units == "cm"
    strands = read_curves(path, "Strands")
    assert len(strands["counts"]) == 600 and (strands["counts"] == 12).all()
    assert strands["type"] == AbcGeom.CurveType.kLinear
    expected = resample_strands(hair.positions, 12).points * 100.0  # centimetres
    np.testing.assert_allclose(strands["points"].reshape(600, 12, 3), expected, atol=1e-4)
    assert strands["widths_scope"] == AbcGeom.GeometryScope.kVertexScope
    np.testing.assert_allclose(strands["widths"].reshape(600, 12),
                               np.tile(tapered_widths(12, 1e-4, 2e-5) * 100, (600, 1)),
                               rtol=1e-6)
    np.testing.assert_allclose(strands["uvs"], hair.root_uv, atol=1e-7)
    params = strands["params"]
    assert params["groom_guide"].tolist() == [0]
    assert params["groom_version_major"].tolist() == [1]
    assert (params["groom_group_id"] == 0).all() and len(params["groom_group_id"]) == 600
    assert params["groom_id"].tolist() == list(range(600))
    np.testing.assert_allclose(params["groom_root_uv"].reshape(600, 2), hair.root_uv, atol=1e-7)
    closest = params["groom_closest_guides"].reshape(600, 3)
    weights = params["groom_guide_weights"].reshape(600, 3)
    assert closest.min() >= 0 and closest.max() < 30
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    guides = read_curves(path, "Guides")
    assert len(guides["counts"]) == 30
    assert guides["params"]["groom_guide"].tolist() == [1]
    assert guides["params"]["groom_id"].tolist() == list(range(30))
    # each guide curve is a strand of the groom, and the strands' links point at them
    guide_points = guides["points"].reshape(30, 12, 3)
    strand_points = strands["points"].reshape(600, 12, 3)
    first = closest[:, 0]
    own_guide_root = guide_points[first, 0]
    assert np.linalg.norm(own_guide_root - strand_points[:, 0], axis=1).mean() < 10.0  # cm
    matches = (np.abs(strand_points[None] - guide_points[:, None]).max(axis=(2, 3)) < 1e-5)
    assert (matches.sum(axis=1) >= 1).all()


@pytest.mark.skipif(not BLENDER_PYTHON.is_file(), reason="no .venv-blender (README tests)")
def test_alembic_imported_by_blender(groom_abc):
    hair, path, _ = groom_abc
    proc = subprocess.run([str(BLENDER_PYTHON), str(IMPORT_SCRIPT), str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [text for text in proc.stdout.splitlines() if text.startswith("{")][-1]
    facts = json.loads(line)
    assert facts["result"] == ["FINISHED"]
    by_name = {obj["name"]: obj for obj in facts["objects"] if obj["type"] == "CURVES"}
    assert set(by_name) == {"Strands", "Guides"}
    strands, guides = by_name["Strands"], by_name["Guides"]
    assert strands["curves"] == 600 and strands["points"] == 600 * 12
    assert guides["curves"] == 30 and guides["points"] == 30 * 12
    # Blender turns Alembic's Y up into its Z up: (x, y, z) -> (x, -z, y)
    expected = resample_strands(hair.positions, 12).points.reshape(-1, 3) * 100.0
    position = np.array(strands["position"])
    np.testing.assert_allclose(position, expected[:, [0, 2, 1]] * [1, -1, 1], atol=1e-4)
    radius = np.array(strands["radius"]).reshape(600, 12)
    np.testing.assert_allclose(radius * 2, np.tile(tapered_widths(12, 1e-4, 2e-5) * 100,
                                                   (600, 1)), rtol=1e-5)


def test_generate_writes_alembic_beside_the_layer(tmp_path, capsys, monkeypatch):
    import skimage.data
    from helpers import write_image
    from tressel.cli import main
    from tressel.random_bundle import make_random_bundle
    from tressel.usd import read_groom

    bundle = make_random_bundle(tmp_path / "store" / "tiny", "tiny", seed=0)
    image = write_image(tmp_path / "astronaut.png", skimage.data.astronaut())
    code = main(["generate", str(image), "-o", str(tmp_path / "out" / "groom.usdc"),
                 "--model", str(bundle.path), "--steps", "1", "--guides", "25", "--alembic",
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "groom.abc" in printed and "collision:" in printed
    layer = read_groom(tmp_path / "out" / "groom.usdc")
    strands = read_curves(tmp_path / "out" / "groom.abc", "Strands")
    assert len(strands["counts"]) == layer.num_strands
    np.testing.assert_allclose(strands["uvs"], layer.root_uv, atol=1e-6)
    assert len(read_curves(tmp_path / "out" / "groom.abc", "Guides")["counts"]) == 25


def test_alembic_widths_vary_per_strand_like_the_usd_layer(tmp_path):
    from tressel.usd.curves import tapered_widths, width_factors

    hair = clumpy_groom(300, points=24, seed=3)
    path = tmp_path / "varied.abc"
    write_alembic(hair, path, guides=12, points_per_strand=12, width_variation=0.15)
    strands = read_curves(path, "Strands")
    taper = tapered_widths(12, 1e-4, 2e-5) * np.float32(100)  # cm
    factors = width_factors(np.arange(300), 0.15)
    widths = strands["widths"].reshape(300, 12)
    np.testing.assert_allclose(widths, factors[:, None] * taper[None], rtol=1e-6)
    guides = read_curves(path, "Guides")["widths"].reshape(-1, 12)
    # Each guide is one of the strands, as thick as that strand.
    assert all(np.any(np.all(np.isclose(widths, row, rtol=1e-6), axis=1)) for row in guides)
    assert len({round(float(w), 9) for w in guides[:, 0]}) > 1

"""USD groom layers: schema, writer, reader, validation and round trips (tressel.usd)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pxr import Sdf, Usd, UsdGeom, UsdShade
from tressel.errors import ConfigError, TresselError
from tressel.result import HairMaterial, HairResult, Provenance, ScalpMesh
from tressel.usd import curves as curve_ops
from tressel.usd import read_groom, write_groom
from tressel.usd.material import preview_color
from tressel.usd.validate import validate_layer

REPO = Path(__file__).resolve().parents[1]

HEAD_CENTRE = np.array([0.0, 1.6, 0.0])
HEAD_RADIUS = 0.095


def hemisphere_scalp(rings: int = 8, segments: int = 16) -> ScalpMesh:
    """A triangulated upper hemisphere with (s, t) = (azimuth, 1 - polar angle) UVs."""
    polar = np.linspace(0.0, np.pi / 2, rings + 1)
    azimuth = np.linspace(0.0, 2 * np.pi, segments + 1)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    direction = np.stack([np.sin(p) * np.cos(a), np.cos(p), np.sin(p) * np.sin(a)], axis=-1)
    vertices = (HEAD_CENTRE + HEAD_RADIUS * direction).reshape(-1, 3).astype(np.float32)
    uv = np.stack([a / (2 * np.pi), 1.0 - p / (np.pi / 2)], axis=-1).reshape(-1, 2)
    grid = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    quads = np.stack([grid[:-1, :-1], grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]], axis=-1)
    quads = quads.reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return ScalpMesh(vertices=vertices, faces=faces.astype(np.int64), uv=uv.astype(np.float32))


def make_groom(num_strands: int = 500, points: int = 256, seed: int = 0) -> HairResult:
    """Plausible wavy strands on a hemisphere scalp: out along the normal, then falling under
    gravity, with a per-strand curl; 256 points per strand like DiffLocks."""
    rng = np.random.default_rng(seed)
    polar = np.arccos(rng.uniform(0.15, 1.0, num_strands))  # uniform over the cap's area
    azimuth = rng.uniform(0.0, 2 * np.pi, num_strands)
    normal = np.stack([np.sin(polar) * np.cos(azimuth), np.cos(polar),
                       np.sin(polar) * np.sin(azimuth)], axis=-1)
    roots = HEAD_CENTRE + HEAD_RADIUS * normal
    length = rng.uniform(0.12, 0.3, num_strands)[:, None, None]
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    # Out along the normal, bending down (-Y) as it goes: a parabola in (normal, -Y).
    down = np.array([0.0, -1.0, 0.0])
    path = normal[:, None] * (0.35 * t) + down * (t**2) * 0.9
    # A helical curl around the path, growing towards the tip.
    side = np.cross(normal, down)
    side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-6)
    binormal = np.cross(normal, side)
    phase = rng.uniform(0, 2 * np.pi, num_strands)[:, None, None]
    turns = rng.uniform(2.0, 6.0, num_strands)[:, None, None]
    angle = 2 * np.pi * turns * t + phase
    curl = 0.03 * t * (np.cos(angle) * side[:, None] + np.sin(angle) * binormal[:, None])
    positions = roots[:, None] + length * (path + curl)
    root_uv = np.stack([azimuth / (2 * np.pi), 1.0 - polar / (np.pi / 2)], axis=-1)
    raw = list(rng.uniform(0.05, 0.95, 11))
    return HairResult(
        positions=positions.astype(np.float32),
        root_uv=root_uv.astype(np.float32),
        root_positions=roots.astype(np.float32),
        root_normals=normal.astype(np.float32),
        material=HairMaterial.from_raw(raw),
        provenance=Provenance(
            image_sha256="ab" * 32, bundle_name="tressel-demo", bundle_hash="cd" * 32,
            seed=seed, steps=20, guidance=2.5, guidance_interval=(0.3, 4.0),
            crop_box=(10, 20, 780, 790), tressel_version="0.1.0",
        ),
        scalp_mesh=hemisphere_scalp(),
    )


# --- helpers ---------------------------------------------------------------------------------


def distance_to_polylines(points: np.ndarray, polylines: np.ndarray) -> np.ndarray:
    """Brute force: distance from each point [N,V,3] to the nearest segment of its own
    polyline [N,K,3]."""
    a = polylines[:, None, :-1].astype(np.float64)  # [N,1,K-1,3]
    b = polylines[:, None, 1:].astype(np.float64)
    p = points[:, :, None].astype(np.float64)  # [N,V,1,3]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-30), 0.0, 1.0)
    closest = a + ab * t[..., None]
    return np.linalg.norm(p - closest, axis=-1).min(axis=2)


def dense_bspline(control: np.ndarray, samples: int = 16) -> np.ndarray:
    """Uniform cubic B-spline curves [N,K,3] sampled densely, segment by segment."""
    t = np.linspace(0.0, 1.0, samples, endpoint=False)
    basis = np.stack([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1,
                      t**3], axis=-1) / 6.0  # [S,4]
    segments = control.shape[1] - 3
    windows = np.stack([control[:, i : i + segments] for i in range(4)], axis=2)  # [N,seg,4,3]
    curve = np.einsum("sk,nqkc->nqsc", basis, windows).reshape(len(control), -1, 3)
    end = (control[:, -3] + 4 * control[:, -2] + control[:, -1]) / 6.0
    return np.concatenate([curve, end[:, None]], axis=1)



@pytest.fixture(scope="module")
def groom() -> HairResult:
    return make_groom(300)


def errors_of(path, lod=None) -> list:
    return [issue for issue in validate_layer(path, lod=lod) if issue.severity == "error"]


# --- schema ----------------------------------------------------------------------------------


def test_import_tressel_does_not_import_pxr():
    code = "import sys, tressel; sys.exit('pxr' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_schema_registry_knows_groom_api_in_a_fresh_process():
    code = (
        "import tressel.usd\n"
        "from pxr import Usd\n"
        "definition = Usd.SchemaRegistry().FindAppliedAPIPrimDefinition('TresselGroomAPI')\n"
        "assert definition is not None, 'not registered'\n"
        "kind = Usd.SchemaRegistry.GetSchemaKind('TresselGroomAPI')\n"
        "assert kind == Usd.SchemaKind.SingleApplyAPI, kind\n"
        "print(' '.join(definition.GetPropertyNames()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    names = set(proc.stdout.split())
    for name in ("tressel:source:imageSha256", "tressel:model:bundleName",
                 "tressel:model:bundleHash", "tressel:sampling:seed", "tressel:sampling:steps",
                 "tressel:sampling:guidance", "tressel:version", "tressel:material:melanin",
                 "tressel:material:melaninRedness", "tressel:material:rootDarknessStrength"):
        assert name in names


def test_written_layer_carries_the_schema_and_provenance(tmp_path, groom):
    path = tmp_path / "groom.usdc"
    write_groom(groom, path, guides=10)
    stage = Usd.Stage.Open(str(path))
    prim = stage.GetDefaultPrim()
    assert "TresselGroomAPI" in prim.GetAppliedSchemas()
    assert prim.HasAPI("TresselGroomAPI")
    prov = groom.provenance
    assert prim.GetAttribute("tressel:source:imageSha256").Get() == prov.image_sha256
    assert prim.GetAttribute("tressel:model:bundleHash").Get() == prov.bundle_hash
    assert prim.GetAttribute("tressel:sampling:seed").Get() == prov.seed
    assert prim.GetAttribute("tressel:sampling:guidance").Get() == pytest.approx(prov.guidance)
    assert list(prim.GetAttribute("tressel:source:cropBox").Get()) == list(prov.crop_box)
    assert prim.GetAttribute("tressel:material:melanin").Get() == pytest.approx(
        groom.material.melanin)
    # Every authored tressel: attribute is one the schema defines, with the schema's type.
    definition = Usd.SchemaRegistry().FindAppliedAPIPrimDefinition("TresselGroomAPI")
    authored = [a for a in prim.GetAuthoredAttributes() if a.GetName().startswith("tressel:")]
    assert len(authored) == len(definition.GetPropertyNames())
    for attr in authored:
        assert attr.GetTypeName() == definition.GetSchemaAttributeSpec(attr.GetName()).typeName


def test_schema_files_are_generated_and_mirrored_into_the_package(tmp_path):
    pytest.importorskip("jinja2", reason="usdGenSchema needs jinja2 to regenerate the schema")
    from tressel.usd.schema import PACKAGE_SCHEMA_DIR, SCHEMA_FILES, generate

    source = REPO / "usd_schemas"
    generate(source / "schema.usda", tmp_path)
    for name in ("generatedSchema.usda", "plugInfo.json"):
        assert (tmp_path / name).read_text() == (source / name).read_text(), (
            f"usd_schemas/{name} is stale: run `python -m tressel.usd.schema`")
    for name in SCHEMA_FILES:
        assert (PACKAGE_SCHEMA_DIR / name).read_bytes() == (source / name).read_bytes(), (
            f"core/data/usd_schemas/{name} differs: run `python -m tressel.usd.schema`")


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [
    ("linear.usdc", {}),
    ("bspline_cm.usda", {"basis": "bspline", "points_per_strand": 34, "units": "cm",
                         "scalp": True}),
    ("lod.usdc", {"lod": True, "scalp": True}),
])
def test_usd_validation_reports_no_errors(tmp_path, groom, name, options):
    path = tmp_path / name
    write_groom(groom, path, guides=40, **options)
    for lod in (["full", "preview", "guides"] if options.get("lod") else [None]):
        assert errors_of(path, lod) == [], lod


def test_usd_validation_catches_a_broken_layer(tmp_path, groom):
    """Negative control: the same validators flag a missing unit and a mistyped shader input,
    so the clean results above mean something."""
    path = tmp_path / "broken.usda"
    write_groom(groom, path, guides=0)
    layer = Sdf.Layer.FindOrOpen(str(path))
    layer.pseudoRoot.ClearInfo("metersPerUnit")
    bsdf = layer.GetPrimAtPath("/Groom/Looks/HairMaterial/ChiangHairBsdf")
    bsdf.properties["inputs:absorption_coefficient"].SetInfo(
        "typeName", str(Sdf.ValueTypeNames.Color3f))
    layer.Save()
    names = {issue.name.split(".")[-1] for issue in errors_of(path)}
    assert "MissingMetersPerUnitMetadata" in names
    assert "MismatchedPropertyType" in names


# --- layer contents --------------------------------------------------------------------------


@pytest.mark.parametrize("units, meters_per_unit", [("m", 1.0), ("cm", 0.01)])
def test_stage_metadata_and_extents(tmp_path, groom, units, meters_per_unit):
    path = tmp_path / "groom.usdc"
    write_groom(groom, path, guides=20, units=units, scalp=True)
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert UsdGeom.GetStageMetersPerUnit(stage) == meters_per_unit
    assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/Groom")
    gprims = [p for p in stage.Traverse() if p.IsA(UsdGeom.Boundable)]
    assert {p.GetName() for p in gprims} == {"Strands", "Guides", "Scalp"}
    for prim in gprims:
        authored = prim.GetAttribute("extent").Get()
        assert authored is not None, prim.GetPath()
        computed = UsdGeom.Boundable.ComputeExtentFromPlugins(UsdGeom.Boundable(prim),
                                                              Usd.TimeCode.Default())
        np.testing.assert_allclose(np.array(authored), np.array(computed), rtol=1e-6)
    # Strand extent in stage units: metres scaled by 1 / metersPerUnit.
    strands = UsdGeom.BasisCurves(stage.GetPrimAtPath("/Groom/Strands"))
    lo = np.array(strands.GetExtentAttr().Get()[0])
    assert lo == pytest.approx(groom.positions.reshape(-1, 3).min(0) / meters_per_unit,
                               abs=2e-4 / meters_per_unit)
    purposes = UsdGeom.Imageable.GetOrderedPurposeTokens()
    hint = UsdGeom.ModelAPI(stage.GetDefaultPrim()).GetExtentsHint()
    expected = UsdGeom.ModelAPI(stage.GetDefaultPrim()).ComputeExtentsHint(
        UsdGeom.BBoxCache(Usd.TimeCode.Default(), purposes))
    np.testing.assert_allclose(np.array(hint), np.array(expected), rtol=1e-6)


def test_render_strands_are_authored_for_every_importer(tmp_path, groom):
    path = tmp_path / "groom.usda"
    report = write_groom(groom, path, points_per_strand=24, guides=0, root_width=2e-4,
                         tip_width=1e-5, units="cm")
    stage = Usd.Stage.Open(str(path))
    prim = stage.GetPrimAtPath("/Groom/Strands")
    curves = UsdGeom.BasisCurves(prim)
    assert curves.GetTypeAttr().Get() == UsdGeom.Tokens.linear
    assert list(curves.GetCurveVertexCountsAttr().Get()) == [24] * groom.num_strands
    assert report.num_strands == groom.num_strands and report.points_per_strand == 24
    # Widths: the plain attribute, per vertex, root to tip in stage units (cm).
    assert prim.GetAttribute("widths").HasAuthoredValue()
    assert not prim.HasAttribute("primvars:widths")
    assert curves.GetWidthsInterpolation() == UsdGeom.Tokens.vertex
    widths = np.array(curves.GetWidthsAttr().Get()).reshape(groom.num_strands, 24)
    assert widths[:, 0] == pytest.approx(2e-4 * 100)
    assert widths[:, -1] == pytest.approx(1e-5 * 100)
    assert np.all(np.diff(widths, axis=1) <= 0)
    primvars = UsdGeom.PrimvarsAPI(prim)
    st = primvars.GetPrimvar("st")
    assert st.GetInterpolation() == UsdGeom.Tokens.uniform
    assert st.GetTypeName() == Sdf.ValueTypeNames.TexCoord2fArray
    np.testing.assert_allclose(np.array(st.Get()), groom.root_uv, atol=1e-7)
    strand_id = primvars.GetPrimvar("strandId")
    assert strand_id.GetInterpolation() == UsdGeom.Tokens.uniform
    assert list(strand_id.Get()) == list(range(groom.num_strands))


def test_hair_material_network_and_fallback(tmp_path, groom):
    path = tmp_path / "groom.usda"
    write_groom(groom, path, guides=5)
    stage = Usd.Stage.Open(str(path))
    for name in ("Strands", "Guides"):
        bound, _ = UsdShade.MaterialBindingAPI(
            stage.GetPrimAtPath(f"/Groom/{name}")).ComputeBoundMaterial()
        assert bound.GetPath() == Sdf.Path("/Groom/Looks/HairMaterial")
    material = UsdShade.Material(stage.GetPrimAtPath("/Groom/Looks/HairMaterial"))

    def upstream(shader_input):
        source, _, _ = shader_input.GetConnectedSource()
        return UsdShade.Shader(source.GetPrim())

    surface = material.ComputeSurfaceSource("mtlx")[0]
    assert surface.GetShaderId() == "ND_surface"
    bsdf = upstream(surface.GetInput("bsdf"))
    assert bsdf.GetShaderId() == "ND_chiang_hair_bsdf"
    absorption = upstream(bsdf.GetInput("absorption_coefficient"))
    assert absorption.GetShaderId() == "ND_deon_hair_absorption_from_melanin"
    # The melanin inputs come from the Material's interface, which holds the predictions.
    melanin = absorption.GetInput("melanin_concentration").GetValueProducingAttributes()[0]
    assert melanin.Get() == pytest.approx(groom.material.melanin)
    redness = absorption.GetInput("melanin_redness").GetValueProducingAttributes()[0]
    assert redness.Get() == pytest.approx(groom.material.redness)
    for name, value in [("root_darkness_start", groom.material.root_darkness_start),
                        ("root_darkness_end", groom.material.root_darkness_end),
                        ("root_darkness_strength", groom.material.root_darkness_strength)]:
        assert material.GetInput(name).Get() == pytest.approx(value)
    preview = material.ComputeSurfaceSource()[0]
    assert preview.GetShaderId() == "UsdPreviewSurface"
    assert preview.GetInput("diffuseColor").Get() == pytest.approx(
        preview_color(groom.material), abs=1e-6)


def test_preview_colour_darkens_with_melanin_and_reddens_with_redness():
    dark = np.array(preview_color(HairMaterial.from_raw([0.5] * 3 + [0.9, 0.2] + [0.5] * 6)))
    light = np.array(preview_color(HairMaterial.from_raw([0.5] * 3 + [0.2, 0.2] + [0.5] * 6)))
    red = np.array(preview_color(HairMaterial.from_raw([0.5] * 3 + [0.5, 0.95] + [0.5] * 6)))
    assert np.all(dark < light)
    assert np.all((light > 0) & (light <= 1))
    assert red[0] > red[1] > red[2]  # red > green > blue: pheomelanin is red


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("units", ["m", "cm"])
def test_round_trip_linear_within_reported_deviation(tmp_path, groom, units):
    path = tmp_path / "groom.usdc"
    report = write_groom(groom, path, points_per_strand=32, units=units, scalp=True, guides=10)
    back = read_groom(path)
    assert back.positions.shape == (groom.num_strands, 32, 3)
    distance = distance_to_polylines(groom.positions, back.positions)
    assert distance.max() <= report.max_deviation + 1e-6
    assert 0.25 * report.max_deviation < distance.max()  # the bound is not vacuous
    assert report.max_deviation < 5e-3
    np.testing.assert_allclose(back.root_positions, groom.positions[:, 0], atol=1e-6)
    np.testing.assert_allclose(back.positions[:, -1], groom.positions[:, -1], atol=1e-6)
    np.testing.assert_allclose(back.root_uv, groom.root_uv, atol=1e-7)
    np.testing.assert_allclose(back.root_normals, groom.root_normals, atol=1e-7)
    assert back.material.raw == pytest.approx(groom.material.raw)
    assert back.material.melanin == pytest.approx(groom.material.melanin)
    # the writer adds its guide record (method, count, reconstruction error) to provenance
    assert back.provenance.operations.pop("guides:count") == 10
    assert back.provenance.operations.pop("guides:method") == "clusters"
    assert {k.split(":")[0] for k in back.provenance.operations} == {"guides"}
    back.provenance.operations.clear()
    assert back.provenance == groom.provenance
    np.testing.assert_allclose(back.scalp_mesh.vertices, groom.scalp_mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.scalp_mesh.faces, groom.scalp_mesh.faces)
    np.testing.assert_allclose(back.scalp_mesh.uv, groom.scalp_mesh.uv)


def test_round_trip_bspline_within_reported_deviation(tmp_path):
    groom = make_groom(80, seed=2)  # the brute-force distance to dense splines is costly
    path = tmp_path / "groom.usda"
    report = write_groom(groom, path, points_per_strand=34, basis="bspline", guides=0)
    stage = Usd.Stage.Open(str(path))
    curves = UsdGeom.BasisCurves(stage.GetPrimAtPath("/Groom/Strands"))
    assert curves.GetTypeAttr().Get() == UsdGeom.Tokens.cubic
    assert curves.GetBasisAttr().Get() == UsdGeom.Tokens.bspline
    control = np.array(curves.GetPointsAttr().Get()).reshape(groom.num_strands, 34, 3)
    spline = dense_bspline(control)
    distance = distance_to_polylines(groom.positions, spline)
    assert distance.max() <= report.max_deviation + 2e-5
    assert 0.5 * report.max_deviation < distance.max()  # the bound is not vacuous
    # The reader returns the points where segments meet: on the curve, at the knots, which
    # are the arc-length-uniform resampling of the strand, root and tip included.
    back = read_groom(path)
    assert back.positions.shape == (groom.num_strands, 32, 3)
    knots = curve_ops.resample_strands(groom.positions, 32, "linear").points
    np.testing.assert_allclose(back.positions, knots, atol=2e-6)
    assert distance_to_polylines(back.positions, spline).max() < 1e-5


def test_more_points_give_smaller_deviation(groom):
    deviations = [curve_ops.resample_strands(groom.positions, k).max_deviation
                  for k in (16, 32, 64, 128, 256)]
    assert deviations == sorted(deviations, reverse=True)
    assert deviations[-1] == 0.0  # as many points as the input: written unchanged
    spline = curve_ops.resample_strands(groom.positions, 258, "bspline")
    assert spline.max_deviation < 1e-6
    knots = curve_ops.evaluate_bspline_knots(spline.points.astype(np.float64))
    np.testing.assert_allclose(knots, groom.positions, atol=1e-6)


def test_never_writes_more_points_than_the_strands_have(tmp_path):
    groom = make_groom(40, points=24)
    path = tmp_path / "groom.usdc"
    report = write_groom(groom, path, points_per_strand=64, guides=4)
    assert report.points_per_strand == 24 and report.max_deviation == 0.0
    np.testing.assert_array_equal(read_groom(path).positions, groom.positions)
    report = write_groom(groom, path, points_per_strand=64, basis="bspline", guides=4)
    assert report.points_per_strand == 26 and report.max_deviation < 1e-6
    np.testing.assert_allclose(read_groom(path).positions, groom.positions, atol=1e-6)


def test_resampling_handles_straight_and_zero_length_strands():
    t = np.linspace(0.0, 1.0, 256)[None, :, None]
    straight = np.concatenate([t * np.array([0.0, -0.3, 0.1]), np.zeros((1, 256, 3))])
    result = curve_ops.resample_strands(straight.astype(np.float32), 5)
    assert result.max_deviation < 1e-6
    np.testing.assert_allclose(result.points[0, :, 1], np.linspace(0, -0.3, 5), atol=1e-6)
    np.testing.assert_allclose(result.points[1], 0.0)


def test_rewriting_a_layer_replaces_it_atomically(tmp_path, groom):
    path = tmp_path / "groom.usdc"
    write_groom(groom, path, points_per_strand=8, guides=0)
    assert read_groom(path).points_per_strand == 8
    write_groom(groom, path, points_per_strand=12, guides=0)
    assert read_groom(path).points_per_strand == 12  # not a stale cached layer
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="scalp"):
        write_groom(_without_scalp(groom), path, scalp=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["groom.usdc"]  # no temporary files left behind


def _without_scalp(result: HairResult) -> HairResult:
    from dataclasses import replace

    return replace(result, scalp_mesh=None)


# --- guides and levels of detail -------------------------------------------------------------


def _spacing(roots: np.ndarray, chosen: np.ndarray) -> tuple[float, float]:
    """(smallest distance between chosen roots, largest distance from any root to a chosen
    one): even spread means a large first and a small second."""
    picked = roots[chosen]
    pairwise = np.linalg.norm(picked[:, None] - picked[None], axis=-1)
    np.fill_diagonal(pairwise, np.inf)
    cover = np.linalg.norm(roots[:, None] - picked[None], axis=-1).min(axis=1)
    return float(pairwise.min()), float(cover.max())


def test_guides_are_a_sparse_even_spread_of_the_strands(tmp_path):
    groom = make_groom(1500, seed=3)
    path = tmp_path / "groom.usdc"
    report = write_groom(groom, path, guides=60, points_per_strand=16, guide_method="spread")
    assert report.num_guides == 60
    stage = Usd.Stage.Open(str(path))
    guides = stage.GetPrimAtPath("/Groom/Guides")
    assert UsdGeom.Imageable(guides).GetPurposeAttr().Get() == UsdGeom.Tokens.guide
    curves = UsdGeom.BasisCurves(guides)
    assert len(curves.GetCurveVertexCountsAttr().Get()) == 60
    ids = np.array(UsdGeom.PrimvarsAPI(guides).GetPrimvar("strandId").Get())
    assert len(set(ids)) == 60
    # Each guide is its source strand, resampled.
    points = np.array(curves.GetPointsAttr().Get()).reshape(60, 16, 3)
    expected = curve_ops.resample_strands(groom.positions[ids], 16).points
    np.testing.assert_allclose(points, expected, atol=1e-6)
    # Evenly spread: better spacing and coverage than any of a few random picks.
    roots = groom.positions[:, 0]
    spread_gap, spread_cover = _spacing(roots, ids)
    rng = np.random.default_rng(0)
    for _ in range(5):
        random_gap, random_cover = _spacing(roots, rng.choice(len(roots), 60, replace=False))
        assert spread_gap > random_gap and spread_cover < random_cover


def test_lod_variants_keep_heavy_strands_in_payloads(tmp_path, groom):
    path = tmp_path / "groom.usdc"
    write_groom(groom, path, lod=True, guides=30, preview_fraction=0.2, preview_points=8,
                points_per_strand=32)
    stage = Usd.Stage.Open(str(path), Usd.Stage.LoadNone)
    prim = stage.GetDefaultPrim()
    variants = prim.GetVariantSet("lod")
    assert variants.GetVariantNames() == ["full", "guides", "preview"]
    assert variants.GetVariantSelection() == "full"
    strands = stage.GetPrimAtPath("/Groom/Strands")
    assert strands.HasAuthoredPayloads() and not strands.IsLoaded()
    assert strands.GetAttribute("points").Get() is None  # unloaded: no heavy data composed
    assert UsdGeom.ModelAPI(prim).GetExtentsHint()  # bounds without loading
    assert not stage.GetPrimAtPath("/TresselPayloads").IsDefined() or \
        stage.GetPrimAtPath("/TresselPayloads").IsAbstract()

    full = read_groom(path, lod="full")
    assert full.positions.shape == (groom.num_strands, 32, 3)
    preview = read_groom(path, lod="preview")
    assert preview.positions.shape == (round(0.2 * groom.num_strands), 8, 3)
    guides_only = open_stage_with(path, "guides")
    assert not guides_only.GetPrimAtPath("/Groom/Strands")
    purpose = UsdGeom.Imageable(guides_only.GetPrimAtPath("/Groom/Guides")).GetPurposeAttr()
    assert purpose.Get() == UsdGeom.Tokens.default_
    assert read_groom(path, lod="guides").num_strands == 30
    with pytest.raises(TresselError, match="no lod 'proxy'"):
        read_groom(path, lod="proxy")
    # Without guides there is no guides variant, and the layer still validates.
    write_groom(groom, path, lod=True, guides=0)
    assert read_groom(path, lod="preview").num_strands == round(0.1 * groom.num_strands)
    assert errors_of(path, "preview") == []
    with pytest.raises(TresselError, match="no lod 'guides'"):
        read_groom(path, lod="guides")


def open_stage_with(path, lod):
    from tressel.usd.reader import open_groom_stage

    return open_groom_stage(path, lod)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"basis": "catmullRom"}, "basis"),
    ({"units": "mm"}, "units"),
    ({"points_per_strand": 1}, "too few"),
    ({"basis": "bspline", "points_per_strand": 3}, "too few"),
    ({"guides": -1}, "guides"),
    ({"colour": "red"}, "WriteOptions"),
    ({"preview_fraction": 0.0}, "preview_fraction"),
    ({"lod": True, "guides": 0, "lod_selection": "guides"}, "needs guides"),
])
def test_bad_options_raise_config_errors(tmp_path, groom, options, message):
    with pytest.raises(ConfigError, match=message):
        write_groom(groom, tmp_path / "groom.usdc", **options)
    assert list(tmp_path.iterdir()) == []


def test_bad_paths_and_layers_raise_tressel_errors(tmp_path, groom):
    with pytest.raises(ConfigError, match=".usdc"):
        write_groom(groom, tmp_path / "groom.abc")
    with pytest.raises(TresselError, match="not found"):
        read_groom(tmp_path / "missing.usdc")
    other = tmp_path / "cube.usda"
    stage = Usd.Stage.CreateNew(str(other))
    stage.SetDefaultPrim(UsdGeom.Cube.Define(stage, "/Cube").GetPrim())
    stage.Save()
    with pytest.raises(TresselError, match="not a groom layer"):
        read_groom(other)


def test_write_groom_signature_lists_every_option():
    """The daemon checks job options against write_groom's signature."""
    import inspect
    from dataclasses import fields

    from tressel.usd import WriteOptions

    params = inspect.signature(write_groom).parameters
    for option in fields(WriteOptions):
        assert params[option.name].kind == inspect.Parameter.KEYWORD_ONLY
        assert params[option.name].default == option.default


# --- usd-info --------------------------------------------------------------------------------


def run_usd_info(*argv: str) -> int:
    """The `usd-info` command through its own parser (the CLI loads every command module)."""
    import argparse

    from tressel.commands import usd_info

    parser = argparse.ArgumentParser()
    usd_info.register(parser.add_subparsers())
    args = parser.parse_args(["usd-info", *argv])
    return args.func(args)


def test_usd_info_summarises_and_validates(tmp_path, groom, capsys):
    import json

    path = tmp_path / "groom.usdc"
    write_groom(groom, path, lod=True, guides=25, points_per_strand=20)
    assert run_usd_info(str(path), "--validate", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strands"]["curves"] == groom.num_strands
    assert summary["strands"]["points_per_curve"] == 20
    assert summary["guides"]["curves"] == 25
    assert summary["lod_variants"] == ["full", "guides", "preview"]
    assert summary["schema"] == "TresselGroomAPI"
    assert summary["provenance"]["seed"] == groom.provenance.seed
    assert summary["validation"] == []
    # A layer with an error fails the command.
    layer = Sdf.Layer.FindOrOpen(str(path))
    layer.pseudoRoot.ClearInfo("upAxis")
    layer.Save()
    assert run_usd_info(str(path), "--validate") == 1
    assert "MissingUpAxisMetadata" in capsys.readouterr().out


def test_taper_has_few_distinct_widths_close_to_the_smooth_one():
    """Few distinct widths keep USD's lookup-table encoding of `widths` fast (see curves.py)."""
    from tressel.usd.curves import WIDTH_LEVELS, tapered_widths

    t = np.linspace(0.0, 1.0, 256)
    smooth = 2e-5 + (1e-4 - 2e-5) * (1.0 - t**2)
    widths = tapered_widths(256, 1e-4, 2e-5)
    assert len(np.unique(widths)) == WIDTH_LEVELS
    assert widths[0] == np.float32(1e-4) and widths[-1] == np.float32(2e-5)
    assert np.abs(widths - smooth).max() <= (1e-4 - 2e-5) / (2 * (WIDTH_LEVELS - 1)) + 1e-9
    assert np.all(np.diff(widths) <= 0)
    t8 = np.linspace(0.0, 1.0, 8)  # few points: the smooth taper itself
    np.testing.assert_allclose(tapered_widths(8, 1e-4, 2e-5),
                               2e-5 + (1e-4 - 2e-5) * (1.0 - t8**2), rtol=1e-6)

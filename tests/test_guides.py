"""Guides picked by shape clusters rebuild the groom better than evenly spread ones."""

from __future__ import annotations

import numpy as np
from pxr import Usd, UsdGeom
from tressel.geometry.guides import (
    GuideSet,
    cluster_guides,
    reconstruction_error,
    spread_guide_set,
)
from tressel.result import HairMaterial, HairResult
from tressel.synth.head import scalp_points


def clumpy_groom(count: int = 3000, points: int = 32, seed: int = 0) -> HairResult:
    """Strands in clumps of shared length and curl phase, clumps mixed over the scalp, as
    real hair is: neighbours on the scalp need not look alike."""
    rng = np.random.default_rng(seed)
    root_uv = rng.uniform(0.05, 0.95, size=(count, 2))
    scalp = scalp_points(root_uv)
    clump = rng.integers(0, 40, count)
    phase = rng.uniform(0, 6.3, 40)[clump][:, None]
    length = rng.uniform(0.08, 0.3, 40)[clump][:, None, None]
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    curl = np.stack([np.sin(t[..., 0] * 14 + phase), np.zeros((count, points)),
                     np.cos(t[..., 0] * 14 + phase)], -1) * 0.04
    path = scalp.normals[:, None] * 0.1 * t + np.array([0.0, -1.0, 0.0]) * t ** 2 + curl * t
    positions = (scalp.positions[:, None] + length * path).astype(np.float32)
    return HairResult(positions=positions, root_uv=root_uv.astype(np.float32),
                      root_positions=positions[:, 0].copy(),
                      root_normals=scalp.normals.astype(np.float32),
                      material=HairMaterial.from_raw([0.5] * 11))


def test_clustered_guides_rebuild_strands_better_than_spread_ones():
    hair = clumpy_groom()
    clustered = cluster_guides(hair.positions, 80)
    spread = spread_guide_set(hair.positions, 80)
    assert len(clustered.index) == len(spread.index) == 80
    ours = reconstruction_error(hair.positions, clustered)
    baseline = reconstruction_error(hair.positions, spread)
    assert ours["mean"] < 0.5 * baseline["mean"]
    assert ours["p95"] < baseline["p95"]
    # weights: non-negative, summing to one; each strand's first guide is its clump's
    for guide_set in (clustered, spread):
        assert (guide_set.weights >= 0).all()
        np.testing.assert_allclose(guide_set.weights.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(clustered.guides[:, 0], clustered.clump)
    # a guide strand is its own clump's guide and rebuilds itself almost exactly
    own = clustered.guides[clustered.index, 0]
    assert np.array_equal(own, np.arange(len(clustered.index)))


def test_layer_carries_guide_links_that_rebuild_the_groom(tmp_path):
    from tressel.usd import read_groom, write_groom

    hair = clumpy_groom(1200, points=24, seed=5)
    path = tmp_path / "groom.usdc"
    report = write_groom(hair, path, guides=50, points_per_strand=24)
    assert report.num_guides == 50
    stage = Usd.Stage.Open(str(path))
    strands = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath("/Groom/Strands"))
    ids_primvar = strands.GetPrimvar("guideIndices")
    weights_primvar = strands.GetPrimvar("guideWeights")
    assert ids_primvar.GetInterpolation() == UsdGeom.Tokens.uniform
    assert ids_primvar.GetElementSize() == 3 and weights_primvar.GetElementSize() == 3
    guide_ids = np.array(ids_primvar.Get()).reshape(-1, 3)
    weights = np.array(weights_primvar.Get()).reshape(-1, 3)
    clump = np.array(strands.GetPrimvar("clumpId").Get())
    assert guide_ids.shape == (1200, 3) and guide_ids.max() < 50
    assert np.array_equal(guide_ids[:, 0], clump)
    guide_strand_ids = np.array(UsdGeom.PrimvarsAPI(
        stage.GetPrimAtPath("/Groom/Guides")).GetPrimvar("strandId").Get())
    # Rebuilding from what the layer says gives the error its provenance reports.
    back = read_groom(path)
    links = GuideSet(index=guide_strand_ids, guides=guide_ids, weights=weights, clump=clump,
                     method="clusters")
    error = reconstruction_error(back.positions, links)
    ops = back.provenance.operations
    assert ops["guides:method"] == "clusters" and ops["guides:count"] == 50
    assert abs(error["mean"] - ops["guides:reconstructionMean"]) < 1e-5
    spread = reconstruction_error(hair.positions, spread_guide_set(hair.positions, 50))
    assert error["mean"] < spread["mean"]

"""The fast USD write path (issue 19) gives the same bits as the code it replaced."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from pxr import Usd, UsdGeom, Vt
from tressel.geometry import guides as guide_ops
from tressel.usd import curves, write_groom
from tressel.usd import writer as usd_writer

ROOT = Path(__file__).resolve().parents[1]


def _previous():
    """benchmarks/resample_previous.py: the resampler before issue 19."""
    spec = importlib.util.spec_from_file_location("resample_previous",
                                                  ROOT / "benchmarks" / "resample_previous.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def awkward_strands(count: int = 1300, points: int = 40, seed: int = 3) -> np.ndarray:
    """Curly strands plus the cases that take other branches: a zero-length strand, repeated
    points, one segment spanning many knots, values far apart in magnitude, a strand that
    passes its tip and comes back."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    phase = rng.uniform(0, 6.3, (count, 1, 1))
    down = np.broadcast_to(t * -2.0, phase.shape[:1] + t.shape[1:])
    strands = np.concatenate([np.cos(t * 20 + phase), down, np.sin(t * 20 + phase)], -1)
    strands = strands * rng.uniform(0.01, 0.3, (count, 1, 1)) + rng.normal(size=(count, 1, 3))
    strands[0] = strands[0, :1]  # zero length
    strands[1, 5:9] = strands[1, 5]  # repeated points
    strands[2, 1:] += np.array([0.0, -5.0, 0.0])  # one long first segment
    strands[3] *= 1e-6
    # Out past its tip and back: points project beyond the ends of the written segments.
    strands[4] = 0.0
    strands[4, :, 0] = np.sin(0.75 * np.pi * t[0, :, 0]) / np.sin(0.75 * np.pi)
    strands[4, :, 1] = -0.1 * t[0, :, 0]
    return strands.astype(np.float32)


def use_path(monkeypatch, path: str) -> None:
    """Resample with numpy alone ("numpy"), numpy with torch's cumsum ("numpy+torch") or the
    compiled loop ("compiled"), whatever earlier tests in this process loaded."""
    monkeypatch.setattr(curves, "_kernel", None)
    if path == "numpy":
        monkeypatch.delitem(sys.modules, "torch", raising=False)
    elif path == "numpy+torch":
        import torch  # noqa: F401  (loaded: the cumsum goes through torch)
    else:
        assert curves.load_compiled_kernel()
        assert curves._loaded_kernel() is not None


@pytest.mark.parametrize("points, basis, deviation", [
    (32, "linear", True), (2, "linear", True), (5, "linear", False), (40, "linear", True),
    (61, "linear", True), (12, "bspline", True), (42, "bspline", True),
])
@pytest.mark.parametrize("path", ["numpy", "numpy+torch", "compiled"])
def test_resample_gives_the_previous_bits(monkeypatch, points, basis, deviation, path):
    previous = _previous()
    strands = awkward_strands()
    use_path(monkeypatch, path)
    expected = previous.resample_strands(strands, points, basis, deviation=deviation)
    for threads in (1, 3):
        got = curves.resample_strands(strands, points, basis, deviation=deviation,
                                      threads=threads)
        assert got.points.dtype == np.float32
        assert np.array_equal(got.points, expected.points)
        assert got.max_deviation == expected.max_deviation
        if path == "compiled" and basis == "linear":
            # Summed strand by strand rather than numpy's pairwise order.
            assert got.mean_deviation == pytest.approx(expected.mean_deviation, rel=1e-12)
        else:
            assert got.mean_deviation == expected.mean_deviation


@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_compiled_and_numpy_resampling_agree_on_any_input(monkeypatch, path):
    """Float64 and non-contiguous input, more points out than in, the guide counts, and a
    NaN point: one clear error on either path."""
    strands = awkward_strands(600, 25, seed=8)
    monkeypatch.setattr(curves, "_kernel", None)
    expected = {points: curves.resample_strands(strands, points).points for points in (7, 40)}
    many = curves.resample_many(strands, (8, 16, 25))
    use_path(monkeypatch, path)
    for points, want in expected.items():
        got = curves.resample_strands(np.asfortranarray(strands.astype(np.float64)), points)
        assert np.array_equal(got.points, want)
    for want, got in zip(many, curves.resample_many(strands, (8, 16, 25)), strict=True):
        assert np.array_equal(got, want)
    broken = strands.copy()
    broken[4, 3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        curves.resample_strands(broken, 9)


def test_the_compiled_loop_falls_back_to_numpy_when_it_cannot_load(monkeypatch, caplog):
    monkeypatch.setattr(curves, "_kernel", None)
    monkeypatch.setitem(sys.modules, "tressel.usd.resample_kernel", None)  # import fails
    assert curves.load_compiled_kernel() is False
    assert "resampling with numpy" in caplog.text
    assert curves._loaded_kernel() is None
    strands = awkward_strands(50, 20)
    assert curves.resample_strands(strands, 6).points.shape == (50, 6, 3)
    caplog.clear()
    assert curves.load_compiled_kernel() is False  # decided once: no second warning
    assert caplog.text == ""


def test_a_batch_loads_the_compiled_loop_after_its_first_groom_if_more_follow(monkeypatch,
                                                                             tmp_path):
    """Once per process, after the first groom is written and only when another follows: a
    one-photo batch (like `tressel generate`) never pays for it. The daemon does the same after
    its first job (`tests/test_daemon.py`)."""
    import contextlib
    from types import SimpleNamespace

    from tressel.batch import runner

    events = []
    monkeypatch.setattr(curves, "_kernel_requested", False)
    monkeypatch.setattr(curves, "load_compiled_kernel", lambda: events.append("loaded"))
    monkeypatch.setattr(runner, "_save", lambda *a: None)
    monkeypatch.setattr(runner, "stale_temp_files", lambda outputs: {})
    monkeypatch.setattr(runner, "photo_request", lambda job, bundle: {})
    monkeypatch.setattr(runner, "unfinished_reason", lambda job, request: "new")
    monkeypatch.setattr(runner, "write_job_outputs",
                        lambda result, output, options, request: events.append("written"))
    monkeypatch.setattr("tressel.cpu_threads.cpu_job_threads",
                        lambda device, name: contextlib.nullcontext())
    monkeypatch.setattr("tressel.pipeline.run_generate", lambda *a, **k: SimpleNamespace(
        hair=SimpleNamespace(num_strands=10)))

    def run(count: int) -> None:
        jobs = [runner.ItemJob(runner.BatchItem(i, tmp_path / f"{i}.png",
                                                tmp_path / f"{i}.usdc", f"row {i}"),
                               params=SimpleNamespace(device="cpu")) for i in range(count)]
        summary = runner.BatchSummary(str(tmp_path), "all", count, {}, "cpu", "")
        runner.run_batch(jobs, None, summary, tmp_path / "summary.json")
        assert [outcome.status for outcome in summary.outcomes] == [runner.DONE] * count
        for thread in threading.enumerate():
            if thread.name == "tressel-resample-kernel":
                thread.join()

    run(1)
    assert events == ["written"]
    events.clear()
    run(3)  # loading runs beside the later items: only its count and start are fixed
    assert events[0] == "written" and sorted(events) == ["loaded"] + ["written"] * 3
    events.clear()
    run(2)  # once per process
    assert events == ["written", "written"]


def test_resample_into_a_given_buffer_and_many_counts_at_once():
    strands = awkward_strands(700, 30)
    out = np.full((700, 9, 3), np.nan, np.float32)
    result = curves.resample_strands(strands, 9, out=out)
    assert result.points is out
    assert np.array_equal(out, _previous().resample_strands(strands, 9).points)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        curves.resample_strands(strands, 9, out=np.empty((700, 8, 3), np.float32))
    many = curves.resample_many(strands, (8, 16, 30))
    for count, got in zip((8, 16, 30), many, strict=True):
        expected = curves.resample_strands(strands, count, deviation=False).points
        assert np.array_equal(got, expected)
    params, length = curves.arc_length_params(strands)
    assert params[:, 0].max() == 0.0 and (params[:, -1] == 1.0).all()
    assert length[0] == 0.0 and length[1] > 0.0


def test_usd_arrays_are_filled_in_place_and_extents_match_usd():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 7, 3)).astype(np.float32)
    vt_points = usd_writer._vec3f(points)
    assert isinstance(vt_points, Vt.Vec3fArray) and len(vt_points) == 350
    assert np.array_equal(np.asarray(vt_points), points.reshape(-1, 3))
    widths = curves.tapered_widths(7, 1e-2, 2e-3)
    vt_widths = usd_writer._widths_array(widths, 50)
    assert np.array_equal(np.asarray(vt_widths), np.tile(widths, 50))
    extent = usd_writer._curves_extent(points, widths)
    assert np.array_equal(np.asarray(extent),
                          np.asarray(UsdGeom.Curves.ComputeExtent(vt_points, vt_widths)))


@pytest.mark.parametrize("units, lod", [("m", False), ("cm", True)])
def test_layer_points_are_the_resampled_strands(tmp_path, units, lod):
    from tressel.result import HairMaterial, HairResult

    strands = awkward_strands(400, 24)
    hair = HairResult(positions=strands, root_uv=np.zeros((400, 2), np.float32),
                      root_positions=strands[:, 0].copy(),
                      root_normals=np.tile(np.float32([0, 1, 0]), (400, 1)),
                      material=HairMaterial.from_raw([0.5] * 11))
    path = tmp_path / "groom.usdc"
    report = write_groom(hair, path, points_per_strand=10, guides=0, units=units, lod=lod)
    stage = Usd.Stage.Open(str(path))
    prim = stage.GetPrimAtPath("/TresselPayloads/Full" if lod else "/Groom/Strands")
    written = np.asarray(UsdGeom.BasisCurves(prim).GetPointsAttr().Get())
    expected = _previous().resample_strands(strands, 10)
    scale = np.float32(100.0 if units == "cm" else 1.0)
    assert np.array_equal(written, (expected.points * scale).reshape(-1, 3))
    assert report.max_deviation == expected.max_deviation


def test_cheaper_guides_keep_the_reconstruction_error(monkeypatch):
    """Second and third guides searched among the own guide's neighbours, and k-means stopped
    once settled: the error stays within 1% of the exhaustive search run to 10 passes."""
    from test_guides import clumpy_groom

    positions = clumpy_groom(12000, points=32, seed=2).positions
    fast = guide_ops.cluster_guides(positions, 300)
    monkeypatch.setattr(guide_ops, "NEIGHBOURS", 10**6)
    monkeypatch.setattr(guide_ops, "CONVERGED", 0.0)
    full = guide_ops.cluster_guides(positions, 300)
    ours = guide_ops.reconstruction_error(positions, fast)
    exhaustive = guide_ops.reconstruction_error(positions, full)
    assert ours["mean"] <= 1.01 * exhaustive["mean"]
    assert ours["p95"] <= 1.01 * exhaustive["p95"]
    # the kept samples are what a fresh resampling gives
    assert np.array_equal(fast.sampled, curves.resample_strands(
        positions, guide_ops.WEIGHT_POINTS, deviation=False).points)


def test_width_factors_are_a_fixed_function_of_the_strand_id():
    ids = np.arange(5000)
    factors = curves.width_factors(ids, 0.1)
    assert factors.dtype == np.float32 and factors.shape == (5000,)
    assert 0.9 <= factors.min() < 0.91 and 1.09 < factors.max() <= 1.1
    assert abs(float(factors.mean()) - 1.0) < 0.005  # centred: the groom keeps its thickness
    order = np.random.default_rng(0).permutation(5000)
    np.testing.assert_array_equal(curves.width_factors(ids[order], 0.1), factors[order])
    np.testing.assert_array_equal(curves.width_factors(ids, 0.0), np.ones(5000, np.float32))
    wider = curves.width_factors(ids, 0.3)
    np.testing.assert_allclose(wider - 1, 3 * (factors - 1), atol=1e-6)


def test_width_variation_gives_each_strand_one_thickness_in_every_level_of_detail(tmp_path):
    from tressel.result import HairMaterial, HairResult

    count = 600
    strands = awkward_strands(count, 24)[4:]  # no degenerate strands: guides pick among all
    count = len(strands)
    hair = HairResult(positions=strands, root_uv=np.zeros((count, 2), np.float32),
                      root_positions=strands[:, 0].copy(),
                      root_normals=np.tile(np.float32([0, 1, 0]), (count, 1)),
                      material=HairMaterial.from_raw([0.5] * 11))
    varied_path, plain_path = tmp_path / "varied.usdc", tmp_path / "plain.usdc"
    common = {"points_per_strand": 16, "guides": 20, "lod": True, "preview_fraction": 0.25,
              "preview_points": 8, "units": "cm"}
    write_groom(hair, varied_path, width_variation=0.2, **common)
    write_groom(hair, plain_path, **common)
    stage = Usd.Stage.Open(str(varied_path))
    factors = curves.width_factors(np.arange(count), 0.2)
    for prim_path, points in (("/TresselPayloads/Full", 16), ("/TresselPayloads/Preview", 8),
                              ("/Groom/Guides", 16)):
        curves_prim = UsdGeom.BasisCurves(stage.GetPrimAtPath(prim_path))
        ids = np.asarray(UsdGeom.PrimvarsAPI(curves_prim).GetPrimvar("strandId").Get())
        widths = np.asarray(curves_prim.GetWidthsAttr().Get()).reshape(len(ids), points)
        taper = curves.tapered_widths(points, 1e-4, 2e-5) * np.float32(100)
        np.testing.assert_allclose(widths, factors[ids][:, None] * taper[None], rtol=1e-6)
        extent = np.asarray(curves_prim.GetExtentAttr().Get())
        computed = np.asarray(UsdGeom.Curves.ComputeExtent(curves_prim.GetPointsAttr().Get(),
                                                           curves_prim.GetWidthsAttr().Get()))
        np.testing.assert_allclose(extent, computed, rtol=1e-6)
    # Thousands of distinct widths: USD stores them as they are, not as a compressed pattern.
    grown = varied_path.stat().st_size - plain_path.stat().st_size
    raw_widths = 4 * count * (16 + 8 * 0.25 + 16 * 20 / count)
    assert grown > 0.8 * raw_widths


def test_width_variation_is_checked():
    from tressel.errors import ConfigError
    from tressel.params import check_write_options

    with pytest.raises(ConfigError, match="width_variation"):
        usd_writer.WriteOptions(width_variation=1.5).check()
    with pytest.raises(ConfigError, match="width_variation"):
        check_write_options({"width_variation": -0.1})
    # The command line (and a batch manifest's options) set it as a write option.
    import argparse

    from tressel.commands.job_options import add_item_options, write_options

    parser = argparse.ArgumentParser()
    add_item_options(parser)
    assert "width_variation" not in write_options(parser.parse_args([]))
    assert write_options(parser.parse_args(["--width-variation", "0.1"]))[
        "width_variation"] == pytest.approx(0.1)
    with pytest.raises(SystemExit):
        parser.parse_args(["--width-variation", "2"])

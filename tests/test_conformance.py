"""Each conformance kind against the DiffLocks vectors (vectors/README.md), through the runner."""

from __future__ import annotations

from helpers import torch_threads
from tressel.conformance import load_cases, run_case


def _run_kind(vectors_dir, kind: str) -> list:
    cases = [c for c in load_cases(vectors_dir) if c.kind == kind]
    assert cases, f"no {kind} cases in {vectors_dir}"
    return [run_case(c, debug=True) for c in cases]


def test_dinov2_kind(vectors_dir):
    results = _run_kind(vectors_dir, "dinov2")
    assert {r.case for r in results} == {"dinov2_tiny_770", "dinov2_tiny_224"}
    for result in results:
        assert result.ok, (result.case, result.error, result.comparisons)
        # the debug array (interpolated positions) must match too, not only the outputs
        assert all(c.ok for c in result.comparisons), result.comparisons
        assert {c.output for c in result.comparisons} >= {"cls", "registers", "patch"}


def test_diffusion_kinds(vectors_dir):
    with torch_threads(1):  # small models: a second thread only waits on a shared CPU
        results = _run_kind(vectors_dir, "denoiser") + _run_kind(vectors_dir, "sampler")
    assert {r.case for r in results} >= {"denoiser_small_cond", "denoiser_small_uncond",
                                         "sampler_small_cfg1", "sampler_small_cfg2p5"}
    for result in results:
        assert result.ok, (result.case, result.error, result.comparisons)
        # every intermediate (hooks on each level, cross layer, merge and split) agrees too
        assert all(c.ok for c in result.comparisons), result.comparisons
    names = {c.output for r in results for c in r.comparisons}
    assert {"denoised", "x0", "debug:cross_up0_out", "debug:step_denoised"} <= names


def test_strand_kinds(vectors_dir):
    kinds = ("strand_decoder", "strand_encoder", "placement", "postprocess", "rgb2material")
    results = [r for kind in kinds for r in _run_kind(vectors_dir, kind)]
    assert {r.case for r in results} >= {"strand_decoder_256", "strand_encoder_256",
                                         "placement_synthetic", "postprocess_synthetic",
                                         "rgb2material"}
    for result in results:
        assert result.ok, (result.case, result.error, result.comparisons)
        # every debug array agrees too, including the UV maps' face ids on shared edges
        assert all(c.ok for c in result.comparisons), result.comparisons
    names = {c.output for r in results for c in r.comparisons}
    assert {"positions", "latents", "strands_world", "material", "debug:h_layer2",
            "debug:index_map", "debug:extra_accepted", "debug:conf_map"} <= names

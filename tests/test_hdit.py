"""The HDiT and its layers: strict checkpoint loading, neighborhood attention against masked
full attention, bf16, the released architecture's keys and size, conditioning paths."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from helpers import one_thread  # noqa: F401 - autouse: small models on one thread
from safetensors.torch import load_file
from tressel.errors import ConfigError
from tressel.nn.attention import (
    na2d_torch,
    natten_available,
    neighborhood_attention_2d,
    reference_na2d_gather,
    reference_na2d_masked,
)
from tressel.nn.denoiser import Denoiser
from tressel.nn.hdit import HDiT, HDiTConfig, count_parameters
from tressel.nn.layers import (
    AxialRoPE,
    apply_rotary_emb,
    cosine_sim_rope,
    cosine_sim_scale,
    downscale_pos,
    make_axial_pos,
    make_context_pos,
    rope_cos_sin,
)

# The released configuration as SPEC §1 states it (resolved: mapping_depth 2 from defaults).
RELEASED_CONFIG = {
    "type": "image_transformer_v2_conditional",
    "input_channels": 65, "input_size": [256, 256], "patch_size": [2, 2],
    "depths": [2, 2, 2], "widths": [1024, 2048, 3072], "d_ffs": [1024, 2048, 3072],
    "self_attns": [{"type": "neighborhood", "d_head": 64, "kernel_size": 7},
                   {"type": "neighborhood", "d_head": 64, "kernel_size": 7},
                   {"type": "global", "d_head": 64}],
    "dropout_rate": [0.0, 0.0, 0.1],
    "mapping_width": 768, "mapping_d_ff": 1024, "mapping_depth": 2,
    "condition_dropout_rate": 0.1, "sigma_data": 0.3, "sigma_min": 0.01, "sigma_max": 160,
    "parametrization": "v",
    "rgb_condition": {"global_condition_shape": [1, 1024],
                      "local_condition_shapes": [{"shape": [1, 1024, 55, 55]}] * 3,
                      "cross_condition_dim": [512, 512, 512],
                      "self_attn": [False, True, True]},
}


@pytest.fixture(scope="module")
def small_case(vectors_dir):
    manifest = json.loads((vectors_dir / "manifest.json").read_text())
    case = next(c for c in manifest["cases"] if c["name"] == "denoiser_small_cond")
    state = load_file(str(vectors_dir / case["weights"]))
    arrays = np.load(vectors_dir / "denoiser_small.npz")
    return case["config"], state, arrays


@pytest.fixture(scope="module")
def small_model(small_case):
    config, state, _ = small_case
    model = HDiT(HDiTConfig.from_dict(config))
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def small_outputs(small_case, small_model):
    """F of the vector model on the vector inputs: conditioned and unconditioned."""
    x, sigma, cls_token, patch_map = _inputs(small_case[2])
    with torch.no_grad():
        return small_model(x, sigma, cls_token, patch_map), small_model(x, sigma)


def test_small_weights_load_strictly(small_case):
    config, state, _ = small_case
    model = HDiT(HDiTConfig.from_dict(config))
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(model.state_dict()) == set(state)
    # the random buffers (Fourier weights, MPFourier) must come from the checkpoint
    assert torch.equal(model.time_emb.weight, state["time_emb.weight"])
    assert torch.equal(model.logvar_fourier.phases, state["logvar_fourier.phases"])


def test_wrong_key_or_shape_fails_clearly(small_case):
    config, state, _ = small_case
    model = HDiT(HDiTConfig.from_dict(config))
    renamed = dict(state)
    renamed["patch_in.weight"] = renamed.pop("patch_in.proj.weight")
    with pytest.raises(RuntimeError, match=r"patch_in\.proj\.weight"):
        model.load_state_dict(renamed, strict=True)
    reshaped = dict(state)
    reshaped["splits.0.fac"] = torch.ones(2)
    with pytest.raises(RuntimeError, match=r"size mismatch for splits\.0\.fac"):
        model.load_state_dict(reshaped, strict=True)
    # a model built from a different config cannot take these weights either
    wider = copy.deepcopy(config)
    wider["widths"] = [128, 128, 192]
    with pytest.raises(RuntimeError, match="size mismatch"):
        HDiT(HDiTConfig.from_dict(wider)).load_state_dict(state, strict=True)


def test_config_errors_say_what_is_wrong(small_case):
    config, _, _ = small_case
    broken = copy.deepcopy(config)
    del broken["mapping_width"]
    with pytest.raises(ConfigError, match="mapping_width"):
        HDiTConfig.from_dict(broken)
    broken = copy.deepcopy(config)
    broken["depths"] = [2, 2]
    with pytest.raises(ConfigError, match="depths has 2 entries"):
        HDiTConfig.from_dict(broken)
    broken = copy.deepcopy(config)
    broken["self_attns"][1]["kernel_size"] = 9  # level 1 of a 32x32 input has 8x8 tokens
    with pytest.raises(ConfigError, match="level 1 has a 8x8 token grid"):
        HDiTConfig.from_dict(broken)
    broken = copy.deepcopy(config)
    broken["type"] = "image_transformer_v1"
    with pytest.raises(ConfigError, match="not supported"):
        HDiTConfig.from_dict(broken)


def test_released_config_has_the_released_keys_shapes_and_size(vectors_dir):
    shapes = json.loads((vectors_dir / "full_model_state_dict_shapes.json").read_text())
    released = shapes["diffusion_inner_model (ckpt['model_ema'])"]
    with torch.device("meta"):
        model = HDiT(HDiTConfig.from_dict(RELEASED_CONFIG))
    state = model.state_dict()
    assert set(state) == set(released)
    assert {k: list(v.shape) for k, v in state.items()} == released
    assert count_parameters(model) == 608_527_810
    assert sum(b.numel() for b in model.buffers()) == 5248


NA_CASES = [  # (H, W, kernel, block): borders, non-square grids, partial and single tiles
    (7, 7, 7, (8, 8)),
    (9, 13, 7, (8, 8)),
    (16, 16, 7, (8, 8)),
    (12, 20, 5, (4, 6)),
    (23, 11, 7, (5, 3)),
    (10, 8, 3, (16, 16)),
    (16, 24, 5, (8, 8)),  # tiles divide the grid: the padded-unfold path
    (24, 16, 7, (4, 8)),
]


@pytest.mark.parametrize(("h", "w", "kernel", "block"), NA_CASES)
def test_neighborhood_attention_equals_masked_full_attention(h, w, kernel, block):
    gen = torch.Generator().manual_seed(h * 100 + w)
    q, k, v = (torch.randn(2, h, w, 3, 16, generator=gen, dtype=torch.float64) * 2
               for _ in range(3))
    expected = reference_na2d_masked(q, k, v, kernel)
    tiled = na2d_torch(q, k, v, kernel, block=block)
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-12)
    # a tiny logits budget forces one tile row per chunk: same result, bounded memory
    chunked = na2d_torch(q, k, v, kernel, block=block, max_logits=1)
    torch.testing.assert_close(chunked, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(reference_na2d_gather(q, k, v, kernel), expected,
                               rtol=0, atol=1e-12)


def test_neighborhood_attention_trains_after_sampling_in_the_same_process():
    # the cached window mask is first built under inference mode (sampling); training in the
    # same process (tressel train, tests) must still be able to save it for backward
    q, k, v = (torch.randn(1, 24, 16, 2, 8) for _ in range(3))
    with torch.inference_mode():
        na2d_torch(q, k, v, 7, block=(8, 8))
    q.requires_grad_(True)
    na2d_torch(q, k, v, 7, block=(8, 8)).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_neighborhood_attention_border_windows_are_shifted_not_padded():
    # every query attends to exactly k×k keys, so with constant keys and v = key index
    # the output is the mean index of its (shifted) window
    h = w = 9
    kernel = 7
    q = torch.zeros(1, h, w, 1, 4)
    k = torch.zeros(1, h, w, 1, 4)
    v = torch.arange(h * w, dtype=torch.float32).view(1, h, w, 1, 1)
    out = na2d_torch(q, k, v, kernel)[0, :, :, 0, 0]
    starts = [min(max(i - 3, 0), h - kernel) for i in range(h)]
    for i in (0, 4, 8):
        for j in (0, 2, 8):
            rows = torch.arange(starts[i], starts[i] + kernel)
            cols = torch.arange(starts[j], starts[j] + kernel)
            assert out[i, j].item() == pytest.approx((rows[:, None] * w + cols).float().mean()
                                                     .item(), abs=1e-4)


def test_neighborhood_attention_argument_errors():
    q = torch.randn(1, 6, 9, 2, 8)
    with pytest.raises(ValueError, match="at least 7x7"):
        neighborhood_attention_2d(q, q, q, 7)
    with pytest.raises(ValueError, match="odd kernel"):
        neighborhood_attention_2d(q, q, q, 4)
    with pytest.raises(ValueError, match="unknown neighborhood-attention backend"):
        neighborhood_attention_2d(q, q, q, 3, backend="cuda-magic")
    if not natten_available():
        with pytest.raises(RuntimeError, match="NATTEN is not installed"):
            neighborhood_attention_2d(q, q, q, 3, backend="natten")


def test_axial_positions_and_rope():
    pos = make_axial_pos(4, 8)
    assert pos.shape == (4, 8, 2)
    # wide grid: x spans [-1, 1], y is shrunk by the aspect ratio; cell centres
    assert pos[0, 0].tolist() == pytest.approx([-0.375, -0.875])
    assert pos[-1, -1].tolist() == pytest.approx([0.375, 0.875])
    torch.testing.assert_close(downscale_pos(pos), make_axial_pos(2, 4))
    # DINO map of 2 rows x 4 columns: token (0, 1) takes entry 1 of the grid built with the
    # two sizes swapped (4 rows x 2 columns), SPEC §2.2
    assert make_context_pos(2, 4)[1].tolist() == pytest.approx([-0.75, 0.25])
    rope = AxialRoPE(32, n_heads=3)
    all_freqs = torch.linspace(math.log(math.pi), math.log(10 * math.pi), 3 * 8 + 1)[:-1].exp()
    torch.testing.assert_close(rope.freqs[1], all_freqs[1::3])  # interleaved across heads
    x = torch.randn(5, 3, 64)
    theta = rope(torch.randn(5, 2))
    y = apply_rotary_emb(x, theta)
    torch.testing.assert_close(y[..., 32:], x[..., 32:])  # only the first half rotates
    # half-split pairs (i, i+16) rotate as 2-D vectors: their lengths are preserved
    torch.testing.assert_close(y[..., :16] ** 2 + y[..., 16:32] ** 2,
                               x[..., :16] ** 2 + x[..., 16:32] ** 2)
    # the fused form the model uses equals normalise-then-rotate
    scale = torch.rand(3, 1) * 20
    expected = apply_rotary_emb(cosine_sim_scale(x, scale), theta)
    cos, sin = rope_cos_sin(theta)
    torch.testing.assert_close(cosine_sim_rope(x, scale, cos, sin), expected)
    # after normalisation the logits are bounded by the per-head temperature
    assert torch.allclose(expected.norm(dim=-1) ** 2, scale[:, 0].expand(5, 3), rtol=1e-5)


def _inputs(arrays):
    return (torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["sigma"]),
            torch.from_numpy(arrays["cls_token"]), torch.from_numpy(arrays["patch_map"]))


def test_unconditional_path_is_zero_image_features(small_case, small_model, small_outputs):
    config, _, arrays = small_case
    x, sigma, _, _ = _inputs(arrays)
    feat, fh, fw = HDiTConfig.from_dict(config).local_cond_shape
    with torch.no_grad():
        zeros = small_model(x, sigma, torch.zeros(3, feat), torch.zeros(3, feat, fh, fw))
    torch.testing.assert_close(small_outputs[1], zeros, rtol=0, atol=0)


def test_non_square_feature_map_is_accepted(small_case, small_model, small_outputs):
    _, _, arrays = small_case
    x, sigma, cls_token, patch_map = _inputs(arrays)
    wide = torch.nn.functional.interpolate(patch_map, size=(7, 13), mode="bilinear")
    with torch.no_grad():
        out = small_model(x, sigma, cls_token, wide)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, small_outputs[0])


def test_condition_dropout_is_training_only_and_seeded(small_case, small_outputs):
    config, state, arrays = small_case
    # level dropout off: only the condition dropout may differ between the two modes
    model = HDiT(HDiTConfig.from_dict(config, condition_dropout_rate=0.5,
                                      dropout_rates=(0.0, 0.0, 0.0)))
    model.load_state_dict(state)
    x, sigma, cls_token, patch_map = _inputs(arrays)
    kept, dropped = small_outputs
    with torch.no_grad():
        model.eval()  # inference never drops, so no generator is needed
        torch.testing.assert_close(model(x, sigma, cls_token, patch_map), kept)
        model.train()
        with pytest.raises(ValueError, match="explicit torch.Generator"):
            model(x, sigma, cls_token, patch_map)
        seen = set()
        for seed in range(3):
            a = model(x, sigma, cls_token, patch_map,
                      generator=torch.Generator().manual_seed(seed))
            b = model(x, sigma, cls_token, patch_map,
                      generator=torch.Generator().manual_seed(seed))
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            for i in range(3):  # each sample is either fully conditioned or unconditioned
                if torch.allclose(a[i], kept[i], atol=1e-5):
                    seen.add("kept")
                else:
                    torch.testing.assert_close(a[i], dropped[i], atol=1e-5, rtol=1e-5)
                    seen.add("dropped")
    assert seen == {"kept", "dropped"}


def test_bf16_forward_is_close_to_fp32(small_case, small_model):
    _, _, arrays = small_case
    x, sigma, cls_token, patch_map = _inputs(arrays)
    denoiser = Denoiser(small_model).eval()
    with torch.no_grad():
        fp32 = denoiser(x, sigma, cls_token, patch_map)
        bf16_model = Denoiser(copy.deepcopy(small_model).to(torch.bfloat16)).eval()
        bf16 = bf16_model(x, sigma, cls_token, patch_map)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    # every weight of the vector model is random (no zero-init branch), which amplifies bf16
    # rounding to a few percent; a wrong layer or layout would be of order 1
    rel = (bf16 - fp32).norm() / fp32.norm()
    assert rel < 6e-2, rel
    assert rel > 0  # it really ran in bf16
    # the released pipeline's way: fp32 weights under bf16 autocast
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = denoiser(x, sigma, cls_token, patch_map)
    rel = (autocast - fp32).norm() / fp32.norm()
    assert autocast.dtype == torch.float32 and 0 < rel < 6e-2, rel


def test_denoiser_loss_is_per_sample_and_device_neutral(small_case, small_model):
    config, _, arrays = small_case
    cfg = HDiTConfig.from_dict(config)
    x, sigma, cls_token, patch_map = _inputs(arrays)
    denoiser = Denoiser(small_model, cfg.sigma_data, cfg.loss_weight_per_channel)
    assert denoiser.loss_weight_per_channel.device.type == "cpu"
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = denoiser.loss(x, noise, sigma, cls_token, patch_map)
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    # SPEC §7.4 with the v target written in closed form: (σ·x/σd − σd·n) / sqrt(σ² + σd²)
    sd = cfg.sigma_data
    s = sigma.view(-1, 1, 1, 1)
    v_target = (s * x / sd - sd * noise) / (s ** 2 + sd ** 2).sqrt()
    with torch.no_grad():
        model_output, logvar = small_model((x + noise * s) / (s ** 2 + sd ** 2).sqrt(), sigma,
                                           cls_token, patch_map, return_logvar=True)
    weight = sd ** 2 / (s ** 2 + sd ** 2) * torch.tensor(cfg.loss_weight_per_channel).view(
        1, -1, 1, 1)
    expected = (weight * (model_output - v_target) ** 2 / logvar.exp() + logvar).mean((1, 2, 3))
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)


def test_training_backward_reaches_every_parameter(small_case):
    # the inference fast paths write in place; with autograd recording they must step aside
    config, state, arrays = small_case
    cfg = HDiTConfig.from_dict(config, condition_dropout_rate=0.1)
    model = HDiT(cfg)
    model.load_state_dict(state)
    denoiser = Denoiser(model, cfg.sigma_data, cfg.loss_weight_per_channel).train()
    x, sigma, cls_token, patch_map = _inputs(arrays)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    loss = denoiser.loss(x * 0.1, noise, sigma, cls_token, patch_map, generator=gen).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing
    # and the out-of-place twins compute what the fast paths compute
    model.eval()
    with torch.no_grad():
        fast = model(x, sigma, cls_token, patch_map)
    recorded = model(x, sigma, cls_token, patch_map)
    torch.testing.assert_close(recorded.detach(), fast, rtol=1e-4, atol=2e-4)


def test_other_sizes_build_and_run():
    # non-square texture, two levels, per-level head size and kernel, other mapping/DINO sizes
    config = {
        "input_channels": 5, "input_size": [32, 48], "patch_size": [2, 2],
        "depths": [1, 1], "widths": [64, 128], "d_ffs": [96, 160],
        "self_attns": [{"type": "neighborhood", "d_head": 32, "kernel_size": 5},
                       {"type": "global", "d_head": 64}],
        "dropout_rate": [0.0, 0.0], "mapping_width": 48, "mapping_d_ff": 64,
        "mapping_depth": 1, "untied_bias_channels": 3,
        "rgb_condition": {"global_condition_shape": [1, 40],
                          "local_condition_shapes": [{"shape": [1, 40, 6, 9]}] * 2,
                          "cross_condition_dim": [24, 24], "self_attn": [True, False]},
    }
    torch.manual_seed(0)
    model = HDiT(HDiTConfig.from_dict(config)).eval()
    with torch.no_grad():  # zero-initialised projections get weights so every path matters
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, module.in_features ** -0.5)
    assert model.untied_bias.shape == (1, 3, 32, 48)
    assert model.down_levels[0][0].self_attn.n_heads == 2
    x = torch.randn(2, 5, 32, 48)
    sigma = torch.tensor([0.5, 20.0])
    with torch.no_grad():
        cond = model(x, sigma, torch.randn(2, 40), torch.randn(2, 40, 7, 4))
        uncond = model(x, sigma)
    assert cond.shape == uncond.shape == x.shape
    assert torch.isfinite(cond).all() and not torch.allclose(cond, uncond)
    with pytest.raises(ValueError, match="built for"):
        model(torch.randn(1, 5, 32, 32), sigma[:1])

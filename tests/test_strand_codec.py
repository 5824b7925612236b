"""Strand codec and rgb2material: strict loading, decoder maths, chunking, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tressel.errors import BundleError, Cancelled, ConfigError
from tressel.nn.rgb2material import RGB2Material, RGB2MaterialConfig
from tressel.nn.strand_codec import (
    StrandCodec,
    StrandCodecConfig,
    decode_strands,
    load_strand_codec,
)

SMALL = {"latent_dim": 8, "modulation_hidden_dim": 16, "siren_hidden_dim": 16, "nr_layers": 2,
         "nr_verts_per_strand": 12, "encoder_input_verts": 16, "encoder_channels": [4, 8],
         "encoder_hidden_dim": 12}


@pytest.fixture(scope="module")
def codec_weights(vectors_dir):
    return load_file(str(vectors_dir / "weights_strand_codec.safetensors"))


@pytest.fixture(scope="module")
def codec(codec_weights):
    return load_strand_codec(codec_weights)


def literal_decode(codec: StrandCodec, z: torch.Tensor) -> torch.Tensor:
    """SPEC §6.2 written out step by step (no hoisting), for comparison."""
    dec, cfg = codec.decoder, codec.config
    n, steps = z.shape[0], cfg.nr_verts_per_strand - 1
    t = torch.linspace(-1, 1, steps).view(1, steps, 1).expand(n, steps, 1)
    zs = z[:, None, :].expand(n, steps, -1) * dec.z_scaling
    m_in, h = torch.cat([zs, t], 2), t
    for i in range(cfg.nr_layers):
        mod = dec.modulation_layers[i]
        w = mod.weight * mod.g / mod.weight.norm(dim=1, keepdim=True)
        hm = F.silu(F.linear(m_in, w, mod.bias))
        s = torch.sin(cfg.scale_init * dec.siren_layers[i].conv(h))
        h = hm * s / (dec.z_scaling * dec.gain_per_layer[i])
        m_in = torch.cat([zs, hm, t], 2)
    dv = dec.decode_val
    dir_n = F.linear(h, dv.weight * dv.g / dv.weight.norm(dim=1, keepdim=True), dv.bias)
    directions = dir_n * dec.dir_std + dec.dir_mean
    return torch.cat([torch.zeros(n, 1, 3), directions.cumsum(1)], 1)


def randomized_small_codec(seed: int = 0) -> StrandCodec:
    torch.manual_seed(seed)
    codec = StrandCodec(StrandCodecConfig.from_dict(SMALL)).eval()
    with torch.no_grad():
        for name, p in codec.named_parameters():
            if p.dim() == 0:
                p.fill_(0.5 + torch.rand(()).item())
            elif name.endswith(".g"):
                p.mul_(0.5 + torch.rand(p.shape))
    return codec


def test_released_weights_load_strictly(codec_weights, codec):
    assert set(codec.state_dict()) == set(codec_weights)
    assert len(codec_weights) == 60
    assert sum(v.numel() for v in codec_weights.values()) == 1_769_483  # SPEC §6
    assert codec.decoder.modulation_layers[0].g.shape == (128, 1)
    assert codec.encoder.cnn_encoder[0].g.shape == (64, 1, 1)
    # normalisation constants are buffers but not state: strict loading stays exact
    assert "decoder.dir_std" not in codec.state_dict()


def test_wrong_keys_and_shapes_name_the_problem(codec_weights):
    missing = dict(codec_weights)
    del missing["decoder.gain_val"]
    with pytest.raises(BundleError, match="missing keys.*decoder.gain_val"):
        load_strand_codec(missing)
    extra = dict(codec_weights, **{"decoder.bogus": torch.zeros(1)})
    with pytest.raises(BundleError, match="unexpected keys.*decoder.bogus"):
        load_strand_codec(extra)
    reshaped = dict(codec_weights)
    reshaped["decoder.modulation_layers.0.g"] = reshaped["decoder.modulation_layers.0.g"][:, 0]
    with pytest.raises(BundleError, match=r"modulation_layers.0.g: \[128\] \(expected \[128, 1\]"):
        load_strand_codec(reshaped)
    # a smaller configuration does not accept the released weights
    with pytest.raises(BundleError, match="wrong shapes"):
        load_strand_codec(codec_weights, StrandCodecConfig(latent_dim=32))


def test_config_from_case_dict_and_errors(vectors_dir):
    import json

    manifest = json.loads((vectors_dir / "manifest.json").read_text())
    case_config = next(c for c in manifest["cases"] if c["kind"] == "strand_decoder")["config"]
    config = StrandCodecConfig.from_dict(case_config)
    assert config == StrandCodecConfig()
    assert StrandCodecConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown strand codec config keys"):
        StrandCodecConfig.from_dict({**case_config, "latent_dims": 64})
    with pytest.raises(ConfigError, match="nr_values_to_decode"):
        StrandCodecConfig.from_dict({**case_config, "nr_values_to_decode": 100})
    with pytest.raises(ConfigError, match="decode_type"):
        StrandCodecConfig(decode_type="xyz")


def test_decoder_matches_literal_spec_on_vector_weights(vectors_dir, codec):
    latents = torch.from_numpy(np.load(vectors_dir / "strand_codec.npz")["latents"])
    with torch.no_grad():
        out = codec.decoder(latents)
        reference = literal_decode(codec, latents)
    positions = out["strand_positions"]
    assert positions.shape == (64, 256, 3)
    assert torch.equal(positions[:, 0], torch.zeros(64, 3))
    torch.testing.assert_close(positions[:, 1:] - positions[:, :-1], out["strand_directions"],
                               atol=1e-7, rtol=0)
    torch.testing.assert_close(positions, reference, atol=1e-6, rtol=1e-5)


def test_small_config_decoder_and_autograd_path_agree():
    codec = randomized_small_codec()
    z = torch.tanh(torch.randn(5, 8))
    with torch.no_grad():
        fast = decode_strands(codec, z, chunk_size=2)
        reference = literal_decode(codec, z)
    assert fast.shape == (5, 12, 3)
    torch.testing.assert_close(fast, reference, atol=1e-6, rtol=1e-5)
    z.requires_grad_(True)
    with_grad = codec.decode(z)
    torch.testing.assert_close(with_grad.detach(), reference, atol=1e-6, rtol=1e-5)
    with_grad.square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert codec.decoder.modulation_layers[1].g.grad.abs().sum() > 0


def test_chunked_decode_equals_unchunked_and_reports(codec):
    z = torch.tanh(torch.randn(21, 64, generator=torch.Generator().manual_seed(3)))
    whole = decode_strands(codec, z, chunk_size=21)
    calls = []
    for chunk in (4, 16):
        calls.clear()
        parts = decode_strands(codec, z, chunk_size=chunk,
                               progress=lambda phase, step, total: calls.append((phase, step,
                                                                                 total)))
        torch.testing.assert_close(parts, whole, atol=1e-7, rtol=0)
        total = -(-21 // chunk)
        assert calls == [("decode", i + 1, total) for i in range(total)]
    assert decode_strands(codec, z[:0]).shape == (0, 256, 3)
    with pytest.raises(ConfigError):
        decode_strands(codec, z, chunk_size=0)


def test_worker_threads_agree_and_restore_torch_threads(codec):
    z = torch.tanh(torch.randn(40, 64, generator=torch.Generator().manual_seed(4)))
    threads = torch.get_num_threads()
    one = decode_strands(codec, z, chunk_size=8, workers=1)
    three = decode_strands(codec, z, chunk_size=8, workers=3)
    assert torch.equal(one, three)
    assert torch.get_num_threads() == threads
    with torch.inference_mode():  # callers may decode under inference mode
        assert torch.equal(decode_strands(codec, z, chunk_size=8, workers=2), one)
    with pytest.raises(RuntimeError):  # a failing chunk surfaces in the caller
        decode_strands(codec, torch.zeros(40, 63), chunk_size=8, workers=2)
    assert torch.get_num_threads() == threads


def test_decode_can_be_cancelled(codec):
    cancel = threading.Event()
    seen = []

    def progress(phase, step, total):
        seen.append(step)
        if step == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        decode_strands(codec, torch.zeros(100, 64), chunk_size=10, progress=progress,
                       cancel=cancel)
    assert seen == [1, 2]


def test_encoder_matches_vector_and_checks_length(vectors_dir, codec):
    arrays = np.load(vectors_dir / "strand_codec.npz")
    positions = torch.from_numpy(arrays["enc_positions"])
    with torch.no_grad():
        latents = codec.encode(positions)
    assert latents.shape == (32, 64) and latents.abs().max() < 1
    np.testing.assert_allclose(latents.numpy(), arrays["enc_latents"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="256 points per strand"):
        codec.encode(positions[:, :128])


def test_small_encoder_shapes():
    codec = randomized_small_codec()
    strands = torch.randn(3, 16, 3).cumsum(1) * 1e-3
    assert codec.encode(strands).shape == (3, 8)


def test_rgb2material_strict_and_bounded(vectors_dir):
    weights = load_file(str(vectors_dir / "weights_rgb2material.safetensors"))
    model = RGB2Material()
    model.load_state_dict(weights, strict=True)
    assert sum(v.numel() for v in weights.values()) == 131_980  # SPEC §11
    patch_map = torch.randn(2, 1024, 5, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = model.predict(patch_map)
    assert pred.material.shape == (2, 11)
    assert ((pred.material > 0) & (pred.material < 1)).all()
    weighted = (pred.mat_map * pred.conf_map).sum((2, 3)) / (pred.conf_map.sum((2, 3)) + 1e-6)
    torch.testing.assert_close(pred.material, weighted)
    with pytest.raises(ConfigError, match=r"\[B,1024,h,w\]"):
        model(torch.zeros(1, 512, 5, 5))
    with pytest.raises(ConfigError):
        RGB2MaterialConfig.from_dict({"input_dims": 3})

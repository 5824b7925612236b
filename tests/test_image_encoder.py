"""DINOv2 image encoder: strict loading (Meta and timm layouts), token layout, pos interpolation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tressel.errors import BundleError, ConfigError
from tressel.nn.image_encoder import DinoV2Config, ImageEncoder, load_image_encoder


@pytest.fixture(scope="module")
def tiny(vectors_dir):
    """(config, weights path, npz arrays) of the tiny DINOv2 conformance model."""
    manifest = json.loads((vectors_dir / "manifest.json").read_text())
    entry = next(c for c in manifest["cases"] if c["name"] == "dinov2_tiny_224")
    config = DinoV2Config.from_dict(entry["config"])
    return config, vectors_dir / entry["weights"], np.load(vectors_dir / "dinov2_tiny.npz")


def test_config_from_case(tiny):
    config, _, _ = tiny
    assert (config.embed_dim, config.depth, config.num_heads) == (192, 2, 3)
    assert config.grid_size == 37 and config.num_register_tokens == 4
    assert config.extra["ffn_layer"] == "mlp"
    assert DinoV2Config.from_dict(config.to_dict()) == config


def test_meta_weights_strict_and_tokens(tiny):
    config, weights, arrays = tiny
    encoder = load_image_encoder(weights, config)
    tokens = encoder.tokens(torch.from_numpy(arrays["image_224"]))
    for name in ("cls", "registers", "patch"):
        np.testing.assert_allclose(tokens[name].numpy(), arrays[f"{name}_224"], atol=5e-5,
                                   rtol=1e-5)


def test_encode_patch_map_layout(tiny):
    config, weights, arrays = tiny
    encoder = load_image_encoder(weights, config)
    image_hwc = arrays["image_224"][0].transpose(1, 2, 0)  # the crop API takes [H, W, 3]
    cls, patch_map = encoder.encode(image_hwc)
    assert cls.shape == (1, 192) and patch_map.shape == (1, 192, 16, 16)
    expected = arrays["patch_224"].reshape(1, 16, 16, 192).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(patch_map.numpy(), expected, atol=5e-5, rtol=1e-5)
    np.testing.assert_allclose(cls.numpy(), arrays["cls_224"], atol=5e-5, rtol=1e-5)


def test_timm_layout_round_trip(tiny, tmp_path):
    config, weights, arrays = tiny
    meta = load_file(str(weights))
    encoder = load_image_encoder(meta, config)
    timm_state = {k: v.clone() for k, v in encoder.vit.state_dict().items()}
    assert "reg_token" in timm_state and "register_tokens" not in timm_state
    assert timm_state["pos_embed"].shape == (1, 37 * 37, 192)  # cls position folded away
    torch.testing.assert_close(timm_state["cls_token"],
                               meta["cls_token"] + meta["pos_embed"][:, :1])
    save_file(timm_state, str(tmp_path / "timm.safetensors"))
    torch.save(timm_state, tmp_path / "timm.pth")
    image = torch.from_numpy(arrays["image_224"])
    reference = encoder.tokens(image)
    for path in (tmp_path / "timm.safetensors", tmp_path / "timm.pth"):
        tokens = load_image_encoder(path, config).tokens(image)
        for name in reference:
            torch.testing.assert_close(tokens[name], reference[name], atol=0, rtol=0)


def test_hub_checkpoint_pth_meta(tiny, tmp_path):
    config, weights, arrays = tiny
    torch.save(load_file(str(weights)), tmp_path / "dinov2_meta.pth")
    tokens = load_image_encoder(tmp_path / "dinov2_meta.pth", config).tokens(
        torch.from_numpy(arrays["image_224"]))
    np.testing.assert_allclose(tokens["cls"].numpy(), arrays["cls_224"], atol=5e-5, rtol=1e-5)


def test_wrong_shapes_and_keys_raise(tiny):
    config, weights, _ = tiny
    meta = load_file(str(weights))
    bad_pos = dict(meta, pos_embed=torch.zeros(1, 1 + 16 * 16, 192))
    with pytest.raises(BundleError, match=r"wrong shape: pos_embed \[1, 257, 192\]"):
        load_image_encoder(bad_pos, config)
    missing = {k: v for k, v in meta.items() if k != "blocks.1.ls2.gamma"}
    with pytest.raises(BundleError, match=r"missing: blocks\.1\.ls2\.gamma"):
        load_image_encoder(missing, config)
    with pytest.raises(BundleError, match=r"unexpected: extra\.weight"):
        load_image_encoder(dict(meta, **{"extra.weight": torch.zeros(1)}), config)
    bigger = DinoV2Config.from_dict({**config.to_dict(), "depth": 3})
    with pytest.raises(BundleError, match=r"missing: blocks\.2\."):
        load_image_encoder(meta, bigger)
    timm_state = load_image_encoder(meta, config).vit.state_dict()
    timm_state["reg_token"] = torch.zeros(1, 2, 192)
    with pytest.raises(BundleError, match="reg_token"):
        load_image_encoder(dict(timm_state), config)


def test_unreadable_weights(tmp_path, tiny):
    config, _, _ = tiny
    with pytest.raises(BundleError, match="not found"):
        load_image_encoder(tmp_path / "none.pth", config)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(BundleError, match="cannot read"):
        load_image_encoder(tmp_path / "junk.pth", config)


def test_config_rejects_unsupported():
    with pytest.raises(ConfigError, match="ffn_layer"):
        DinoV2Config.from_dict({"ffn_layer": "swiglufused"})
    with pytest.raises(ConfigError, match="interpolate"):
        DinoV2Config.from_dict({"interpolate_antialias": False})
    with pytest.raises(ConfigError, match="multiple"):
        DinoV2Config.from_dict({"img_size": 520})


def test_pos_interpolation_is_antialiased_bicubic(tiny, vectors_dir):
    """At 770 px the 37x37 grid becomes 55x55 with antialiased bicubic (SPEC §5), not plain."""
    config, weights, arrays = tiny
    encoder = load_image_encoder(weights, config)
    ours = encoder.interpolated_pos_embed(770, 770)
    expected = arrays["pos_embed_interp_770"][:, 1:]
    np.testing.assert_allclose(ours.detach().numpy(), expected, atol=5e-5, rtol=1e-5)
    grid = encoder.vit.pos_embed.reshape(1, 37, 37, 192).permute(0, 3, 1, 2)
    plain = F.interpolate(grid, size=(55, 55), mode="bicubic", antialias=False)
    plain = plain.permute(0, 2, 3, 1).reshape(1, -1, 192)
    assert np.abs(plain.detach().numpy() - expected).max() > 1e-2  # the flag matters
    assert torch.equal(encoder.interpolated_pos_embed(518, 518), encoder.vit.pos_embed)


def test_input_checks(tiny):
    config, _, _ = tiny
    encoder = ImageEncoder(config)
    with pytest.raises(ValueError, match="uint8"):
        encoder.tokens(torch.zeros(1, 3, 28, 28))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        encoder.tokens(torch.zeros(1, 3, 30, 28, dtype=torch.uint8))


def test_vitl_default_shapes():
    """The default config is DiffLocks' ViT-L/14-reg4: 304,372,736 parameters (SPEC §5)."""
    from tressel.nn.image_encoder import meta_key_shapes

    shapes = meta_key_shapes(DinoV2Config())
    assert sum(int(np.prod(s)) for s in shapes.values()) == 304_372_736
    assert shapes["pos_embed"] == (1, 1 + 37 * 37, 1024)


def test_vitl_meta_layout_converts_to_timm_model():
    """Meta ViT-L keys convert exactly onto the timm model built from the default config."""
    from tressel.nn.image_encoder import build_vit, convert_meta_to_timm, meta_key_shapes

    config = DinoV2Config()
    with torch.device("meta"):  # shapes only: no 1.2 GB allocation
        vit = build_vit(config)
        meta = {k: torch.empty(s) for k, s in meta_key_shapes(config).items()}
    converted = convert_meta_to_timm(meta, vit)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in vit.state_dict().items()}
    assert "mask_token" in meta  # the caller's dict is left intact

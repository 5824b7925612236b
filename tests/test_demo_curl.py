"""Curl that survives the demo's small strand codec: the image encoder's style head in the
bundle, and jobs that curl decoded centrelines as the image reads (issue 16 diagnosis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tressel.train.attributes import measure_groom
from tressel.train.data import CATEGORIES, CONTINUOUS

SPEC = {"continuous": list(CONTINUOUS), "categories": {k: list(v) for k, v in CATEGORIES.items()}}


def _encoder_with_head():
    from tressel.nn.cnn_encoder import CNNEncoderConfig, CNNImageEncoder

    config = CNNEncoderConfig.from_dict({"architecture": "tf_efficientnet_lite0", "img_size": 64,
                                         "embed_dim": 16, "hidden_dim": 16,
                                         "style_head": SPEC})
    torch.manual_seed(0)
    return config, CNNImageEncoder(config).eval()


def test_style_head_loads_strictly_and_reads_the_attributes():
    from tressel.components import load_component
    from tressel.errors import BundleError

    config, encoder = _encoder_with_head()
    head = encoder.style_head
    with torch.no_grad():
        head.regress.weight.zero_()
        head.regress.bias.zero_()
        head.cont_mean.copy_(torch.arange(len(CONTINUOUS), dtype=torch.float32))
        head.cont_std.fill_(2.0)
        for layer in head.classify:
            layer.weight.zero_()
            layer.bias.zero_()
        head.classify[0].bias[CATEGORIES["curl_type"].index("coily")] = 1.0
    state = encoder.state_dict()
    assert "style_head.regress.weight" in state and "style_head.cont_std" in state
    loaded = load_component("image_encoder", config.to_dict(), state)
    assert config.to_dict()["style_head"] == SPEC  # the manifest carries the head's names
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    style = loaded.style_head.read(*loaded.encode(image))
    assert style["curl_type"] == "coily"
    assert style["curl_radius_cm"] == pytest.approx(CONTINUOUS.index("curl_radius_cm"))
    broken = {k: v for k, v in state.items() if not k.startswith("style_head.classify")}
    with pytest.raises(BundleError, match="missing"):
        load_component("image_encoder", config.to_dict(), broken)


def _straight_strands(n: int = 30, length: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    strands = np.zeros((n, 256, 3), np.float32)
    strands[:, :, 1] = -np.linspace(0, length, 256)[None, :]
    strands[:, :, 0] = np.linspace(-0.05, 0.05, n)[:, None]
    return strands, np.tile(np.array([0.0, 0.0, 1.0], np.float32), (n, 1))


@pytest.mark.parametrize("curl,radius_cm,period", [("wavy", 0.8, 0.055), ("curly", 0.9, 0.026),
                                                    ("coily", 0.35, 0.008)])
def test_jobs_curl_decoded_strands_as_the_image_reads(curl, radius_cm, period):
    from tressel.pipeline import curl_from_image

    strands, normals = _straight_strands()
    style = {"curl_type": curl, "curl_radius_cm": radius_cm, "log_curl_period": math.log(period)}
    a = curl_from_image(style, strands, normals, torch.Generator().manual_seed(3))
    b = curl_from_image(style, strands, normals, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a, b)  # seeded from the job's generator
    assert a.dtype == np.float32 and measure_groom(a)["curl_class"] == curl
    np.testing.assert_allclose(a[:, 0], strands[:, 0], atol=1e-6)  # roots stay put
    straight = dict(style, curl_type="straight")
    assert curl_from_image(straight, strands, normals, torch.Generator()) is strands


def test_style_head_comes_from_the_image_encoder_checkpoint(tmp_path):
    from tressel.errors import ConfigError
    from tressel.train.image_encoder import style_head_state

    dim = 8
    ema = {"proj.0.weight": torch.zeros(4, 4), "regress.weight": torch.ones(len(CONTINUOUS), dim),
           "regress.bias": torch.zeros(len(CONTINUOUS)), "cont_mean": torch.zeros(len(CONTINUOUS)),
           "cont_std": torch.ones(len(CONTINUOUS))}
    for i, labels in enumerate(CATEGORIES.values()):
        ema[f"classify.{i}.weight"] = torch.zeros(len(labels), dim)
        ema[f"classify.{i}.bias"] = torch.zeros(len(labels))
    torch.save({"ema": ema, "model": {}}, tmp_path / "checkpoint.pt")
    spec, state = style_head_state(tmp_path / "checkpoint.pt")
    assert spec == SPEC
    assert set(state) == {f"style_head.{k}" for k in ema if not k.startswith("proj.")}
    with pytest.raises(ConfigError, match="run `tressel train image-encoder`"):
        style_head_state(tmp_path / "missing.pt")


@pytest.mark.parametrize(("flag", "param"), [("--no-curl", "curl"),
                                           ("--no-hair-reading", "hair_reading")])
def test_photo_reading_switches_on_the_command_line_and_in_batch_manifests(flag, param):
    """The demo's two readings of the photo (curl; length and colour) are on unless turned off,
    on the command line or in a batch manifest's per-photo options."""
    import argparse

    from tressel.commands.job_options import (
        add_item_options,
        add_run_options,
        apply_option_string,
        generate_values,
    )

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    add_item_options(parser)
    args = parser.parse_args([])
    assert generate_values(args)[param] is True
    assert generate_values(parser.parse_args([flag]))[param] is False
    apply_option_string(args, f"{flag} --steps 2")  # a batch manifest's per-photo options
    assert generate_values(args)[param] is False


def test_curl_read_off_a_photo_stays_within_what_the_heads_were_taught():
    """A regression far outside the renders' range is clamped to it, not turned into a helix."""
    from tressel.pipeline import curl_from_image
    from tressel.synth.groom import CURL_RANGES

    strands, normals = _straight_strands()
    wild = {"curl_type": "curly", "curl_radius_cm": 40.0, "log_curl_period": 9.0}
    tame = {"curl_type": "curly", "curl_radius_cm": 100 * CURL_RANGES["curly"][0][1],
            "log_curl_period": math.log(CURL_RANGES["curly"][1][1])}
    a = curl_from_image(wild, strands, normals, torch.Generator().manual_seed(1))
    b = curl_from_image(tame, strands, normals, torch.Generator().manual_seed(1))
    assert np.array_equal(a, b)

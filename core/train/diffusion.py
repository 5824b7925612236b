"""Train the scalp-texture diffusion model (HDiT + v-denoiser, SPEC §2, §3, §7) and rgb2material.

The model, denoiser and loss are the released architecture's (`tressel.nn.hdit`,
`tressel.nn.denoiser.Denoiser.loss`), only smaller. Training noise levels are log-normal
(`log σ ~ N(sigma_mean, sigma_std)`), a cheap stand-in for DiffLocks' cosine-interpolated
density that still covers the sampler's range; condition dropout (the rate in the model config)
teaches the same network the image-free denoiser that classifier-free guidance and the
image-ignoring baseline of `tressel eval` use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tressel.nn.denoiser import Denoiser
from tressel.nn.hdit import HDiT, HDiTConfig
from tressel.nn.rgb2material import RGB2Material, RGB2MaterialConfig
from tressel.result import MATERIAL_CHANNELS
from tressel.train.common import OptimConfig, TrainState, sample_indices, train_loop

log = logging.getLogger(__name__)


@dataclass
class NoiseConfig:
    sigma_mean: float = -1.0
    sigma_std: float = 1.8
    sigma_min: float = 1e-3
    sigma_max: float = 1e3


def train_diffusion(textures: torch.Tensor, cls_tokens: torch.Tensor, patch_maps: torch.Tensor,
                    config: dict, optim: OptimConfig, noise: NoiseConfig, out_dir: Path,
                    seed: int, resume: bool = False, progress=None, cancel=None
                    ) -> tuple[HDiT, dict]:
    """Train on textures [M,C,S,S] with image features; returns the EMA inner model.

    Features are [M,...], or [K,M,...] for K feature versions of each sample (the render and
    augmented copies): each training sample then takes one version at random.
    """
    torch.manual_seed(seed)
    model_config = HDiTConfig.from_dict(config)
    inner = HDiT(model_config)
    denoiser = Denoiser(inner, sigma_data=model_config.sigma_data)

    def loss_fn(model: Denoiser, step: int, generator: torch.Generator):
        idx = sample_indices(len(textures), optim.batch_size, generator)
        x = textures[idx]
        log_sigma = noise.sigma_mean + noise.sigma_std * torch.randn(len(idx),
                                                                     generator=generator)
        sigma = log_sigma.exp().clamp(noise.sigma_min, noise.sigma_max)
        eps = torch.randn(x.shape, generator=generator)
        if cls_tokens.ndim == 3:  # a feature bank: one version per sample
            which = torch.randint(0, len(cls_tokens), (len(idx),), generator=generator)
            cls, patch = cls_tokens[which, idx].float(), patch_maps[which, idx].float()
        else:
            cls, patch = cls_tokens[idx].float(), patch_maps[idx].float()
        losses = model.loss(x, eps, sigma, cls, patch, generator=generator)
        return {"loss": losses.mean()}

    # Mapping-network parameters learn at a third of the rate, as in DiffLocks (SPEC §7.3).
    mapping = [p for n, p in denoiser.named_parameters() if ".mapping" in n or
               n.startswith("inner_model.mapping")]
    ids = {id(p) for p in mapping}
    rest = [p for p in denoiser.parameters() if id(p) not in ids]
    groups = [{"params": rest, "lr_scale": 1.0}, {"params": mapping, "lr_scale": 1 / 3}]
    # tressel.nn.layers takes its out-of-place paths whenever autograd records, so the
    # inference fast paths need no swapping here.
    state: TrainState = train_loop("diffusion", denoiser, loss_fn, optim, out_dir, seed,
                                   resume=resume, param_groups=groups, progress=progress,
                                   cancel=cancel)
    ema: Denoiser = state.ema
    tail = state.losses[-100:] if state.losses else [float("nan")]
    return ema.inner_model.eval(), {"final_loss_mean_last_100": round(sum(tail) / len(tail), 4),
                                    "seconds": round(state.seconds, 1)}


def train_rgb2material(patch_maps: torch.Tensor, material_raw: torch.Tensor, config: dict,
                       optim: OptimConfig, out_dir: Path, seed: int, resume: bool = False,
                       progress=None, cancel=None) -> tuple[RGB2Material, dict]:
    """Fit rgb2material to the grooms' melanin, redness and root darkness (SPEC §11).

    `patch_maps` is [M,D,h,w], or a bank [K,M,D,h,w] of K versions (one drawn per sample)."""
    torch.manual_seed(seed)
    bank = patch_maps if patch_maps.ndim == 5 else None
    if bank is not None:
        patch_maps = bank[0]
    model = RGB2Material(RGB2MaterialConfig.from_dict(config))
    weight = torch.zeros(material_raw.shape[1])
    weight[list(MATERIAL_CHANNELS.values())] = 1.0  # the other channels are untrained (§11)
    held = max(1, len(patch_maps) // 10)

    def loss_fn(m: RGB2Material, step: int, generator: torch.Generator):
        idx = held + sample_indices(len(patch_maps) - held, optim.batch_size, generator)
        if bank is not None:
            which = torch.randint(0, len(bank), (len(idx),), generator=generator)
            pred = m(bank[which, idx].float())
        else:
            pred = m(patch_maps[idx].float())
        return {"loss": (((pred - material_raw[idx]) ** 2) * weight).sum(1).mean()}

    state = train_loop("rgb2material", model, loss_fn, optim, out_dir, seed, resume=resume,
                       progress=progress, cancel=cancel)
    ema = state.ema.eval()
    with torch.no_grad():
        err = (ema(patch_maps[:held].float()) - material_raw[:held]).abs()
    names = {name: round(float(err[:, i].mean()), 4) for name, i in MATERIAL_CHANNELS.items()}
    return ema, {"held_out_mae": names, "seconds": round(state.seconds, 1)}

"""The v-parametrised Karras denoiser around the HDiT (SPEC §3) and its training loss (§7.4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _per_sample(values: Tensor, ndim: int) -> Tensor:
    return values.view(-1, *([1] * (ndim - 1)))


class Denoiser(nn.Module):
    """`D(x, σ) = F(c_in·x, σ, cond)·c_out + x·c_skip` with the v-parametrisation scalings.

    The checkpoint's `model_ema` loads into `inner_model`, not into this wrapper; the per-channel
    loss weights are a non-persistent buffer that follows `.to(device)` (never forced to CUDA).
    """

    def __init__(self, inner_model: nn.Module, sigma_data: float = 0.3,
                 loss_weight_per_channel: Sequence[float] | Tensor | None = None) -> None:
        super().__init__()
        self.inner_model = inner_model
        self.sigma_data = float(sigma_data)
        weights = None
        if loss_weight_per_channel is not None:
            weights = torch.as_tensor(loss_weight_per_channel, dtype=torch.float32)
        self.register_buffer("loss_weight_per_channel", weights, persistent=False)

    def get_scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in) for σ `[B]` in float32."""
        sd = self.sigma_data
        sigma = sigma.to(torch.float32)
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2) ** 0.5
        c_in = 1 / (sigma ** 2 + sd ** 2) ** 0.5
        return c_skip, c_out, c_in

    def forward(self, x: Tensor, sigma: Tensor, cls_token: Tensor | None = None,
                patch_map: Tensor | None = None, **kwargs) -> Tensor:
        """Denoised estimate `[B,C,H,W]` (float32) of x at noise level σ `[B]`."""
        c_skip, c_out, c_in = (_per_sample(s, x.ndim) for s in self.get_scalings(sigma))
        model_output = self.inner_model(x * c_in, sigma, cls_token, patch_map, **kwargs)
        return model_output.float() * c_out + x * c_skip

    def loss(self, x: Tensor, noise: Tensor, sigma: Tensor, cls_token: Tensor | None = None,
             patch_map: Tensor | None = None, **kwargs) -> Tensor:
        """Per-sample training loss `[B]` (SPEC §7.4): SNR-weighted, per-channel weighted MSE of
        the v target with the learned log-variance, for clean x, unit noise and σ `[B]`."""
        c_skip, c_out, c_in = (_per_sample(s, x.ndim) for s in self.get_scalings(sigma))
        noised = x + noise * _per_sample(sigma.to(x.dtype), x.ndim)
        model_output, logvar = self.inner_model(noised * c_in, sigma, cls_token, patch_map,
                                                return_logvar=True, **kwargs)
        target = (x - c_skip * noised) / c_out
        sigma_f = _per_sample(sigma.to(torch.float32), x.ndim)
        weight = self.sigma_data ** 2 / (sigma_f ** 2 + self.sigma_data ** 2)
        if self.loss_weight_per_channel is not None:
            weight = weight * self.loss_weight_per_channel.to(x.device).view(1, -1, 1, 1)
        logvar = logvar.float()
        err = (model_output.float() - target) ** 2
        return (weight / logvar.exp() * err + logvar).flatten(1).mean(1)

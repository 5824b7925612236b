"""Noise schedules and samplers for the scalp-texture diffusion (SPEC §4), k-diffusion style:
plain functions of (model, x, sigmas, callback); progress and cancellation live in the callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor


class GuidedModel(Protocol):
    """`model_fn(x, sigma[B], conditional) -> denoised`: the conditional (image) or the
    unconditional denoiser."""

    def __call__(self, x: Tensor, sigma: Tensor, conditional: bool) -> Tensor: ...


StepCallback = Callable[[dict[str, Any]], None]


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                  device: torch.device | str | None = None) -> Tensor:
    """Karras et al. schedule of n levels from sigma_max to sigma_min with a trailing 0.

    The ramp is float32 as in the released sampler, so the result is float32 `[n+1]`.
    """
    if n < 1:
        raise ValueError(f"need at least one sampling step, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, n, device=device)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def guidance_for(sigma: float, cfg_val: float, cfg_interval: Sequence[float]) -> float:
    """Guidance weight at σ: `cfg_val` strictly inside (lo, hi), otherwise 1 (SPEC §4)."""
    lo, hi = cfg_interval
    return float(cfg_val) if lo < sigma < hi else 1.0


def initial_noise(shape: Sequence[int], sigma_max: float, generator: torch.Generator,
                  device: torch.device | str | None = None) -> Tensor:
    """The sampler's starting point `N(0,1)·sigma_max`, drawn from an explicit generator.

    The draw happens on the generator's device and is then moved, so a CPU generator gives the
    same start on any device.
    """
    noise = torch.randn(tuple(shape), generator=generator, device=generator.device)
    return noise.to(device) * sigma_max if device is not None else noise * sigma_max


def guided_denoise(model_fn: GuidedModel, x: Tensor, sigma: Tensor, cfg: float) -> Tensor:
    """D at σ with classifier-free guidance w: one conditional call when w = 1, otherwise
    the unconditional call first, then the conditional one, `D_u + w·(D_c − D_u)`."""
    if cfg == 1.0:
        return model_fn(x, sigma, True)
    uncond = model_fn(x, sigma, False)
    cond = model_fn(x, sigma, True)
    return uncond + cfg * (cond - uncond)


def sample_dpmpp_2m_sde(model_fn: GuidedModel, x: Tensor, sigmas: Tensor, cfg_val: float = 1.0,
                        cfg_interval: Sequence[float] = (0.0, 5.0),
                        callback: StepCallback | None = None, eta: float = 0.0,
                        s_noise: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """DPM-Solver++(2M) SDE with the Heun-type second-order correction (SPEC §4).

    x is the start (noise·σ_max); sigmas the schedule with its trailing 0. `callback` is called
    once per step with `{i, sigma, sigma_next, x, denoised, cfg}` (x as it enters the step,
    denoised the guided estimate); raising in it (e.g. `Cancelled`) stops sampling. With eta 0
    (the released setting) nothing random is drawn; eta > 0 adds noise from `generator`.
    """
    if eta > 0 and generator is None:
        raise ValueError("eta > 0 draws noise: pass an explicit torch.Generator")
    s_in = x.new_ones([x.shape[0]])
    old_denoised: Tensor | None = None
    h_last: Tensor | None = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        cfg = guidance_for(float(sigma), cfg_val, cfg_interval)
        denoised = guided_denoise(model_fn, x, sigma * s_in, cfg)
        if callback is not None:
            callback({"i": i, "sigma": float(sigma), "sigma_next": float(sigma_next), "x": x,
                      "denoised": denoised, "cfg": cfg})
        if float(sigma_next) == 0:
            x = denoised
        else:
            t, s = -sigma.log(), -sigma_next.log()
            h = s - t
            eta_h = eta * h
            if eta == 0:
                # the released setting, written out so it matches the reference bit for bit
                x = sigma_next / sigma * x + (-h).expm1().neg() * denoised
            else:
                x = (sigma_next / sigma * (-eta_h).exp() * x
                     + (-h - eta_h).expm1().neg() * denoised)
            if old_denoised is not None:
                r = h_last / h
                x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (
                    denoised - old_denoised)
            if eta > 0:
                noise = torch.randn(x.shape, generator=generator, device=generator.device)
                x = x + noise.to(x.device, x.dtype) * sigma_next * (
                    (-2 * eta_h).expm1().neg().sqrt() * s_noise)
            h_last = h
        old_denoised = denoised
    return x


def expected_model_calls(sigmas: Tensor, cfg_val: float, cfg_interval: Sequence[float]) -> int:
    """How many denoiser calls a run makes (two per guided step): sizes progress bars."""
    return sum(2 if guidance_for(float(s), cfg_val, cfg_interval) != 1.0 else 1
               for s in sigmas[:-1])


"""Conformance handlers for the diffusion kinds `denoiser` and `sampler` (vectors/README.md
§4.3, §4.4): build the HDiT from the case config, load the weights strictly, run in float32."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tressel.conformance import Case, handler
from tressel.nn.denoiser import Denoiser
from tressel.nn.hdit import HDiT, HDiTConfig
from tressel.sampling import karras_sigmas, sample_dpmpp_2m_sde


def build_denoiser(case: Case) -> Denoiser:
    """The case's model with its weights loaded strictly, in eval mode, condition dropout 0."""
    state = case.state_dict()
    if state is None:
        raise ValueError(f"case {case.name} names no weights file")
    overrides: dict[str, Any] = {"condition_dropout_rate":
                                 float(case.params.get("condition_dropout_rate", 0.0))}
    if "untied_bias" in state:  # the one size the config JSON does not carry
        overrides["untied_bias_channels"] = int(state["untied_bias"].shape[1])
    config = HDiTConfig.from_dict(case.config, **overrides)
    inner = HDiT(config)
    inner.load_state_dict(state, strict=True)
    inner.eval()
    return Denoiser(inner, config.sigma_data, config.loss_weight_per_channel).eval()


def _channels_first(t: Tensor) -> Tensor:
    return t.movedim(-1, 1)


def _debug_taps(inner: HDiT) -> list[tuple[str, nn.Module, Callable[[Tensor], Tensor]]]:
    """(debug name, module, output transform) of each README §4.3 debug array."""
    same = (lambda t: t)
    taps: list[tuple[str, nn.Module, Callable[[Tensor], Tensor]]] = [
        ("noise_cond", inner.mapping_only_t, same),
        ("global_latent_encoder_out", inner.global_latent_encoder, same),
        ("cond", inner.mapping, same),
        ("local_cond_proj_out", inner.local_proj, _channels_first),
        ("patch_in_out", inner.patch_in, same),
        ("mid_level_out", inner.mid_level, same),
        ("cross_mid_out", inner.cross_mid_layer[0], _channels_first),
        ("out_norm_out", inner.out_norm, same),
    ]
    if len(inner.down_levels) and len(inner.down_levels[0]):
        first = inner.down_levels[0][0]
        taps += [("down0_layer0_selfattn_out", first.self_attn, same),
                 ("down0_layer0_ff_out", first.ff, same)]
    if len(inner.mid_level):
        taps.append(("mid_layer0_selfattn_out", inner.mid_level[0].self_attn, same))
    for i in range(len(inner.down_levels)):
        taps += [(f"down_level{i}_out", inner.down_levels[i], same),
                 (f"cross_down{i}_out", inner.cross_down_layer[i], _channels_first),
                 (f"merge{i}_out", inner.merges[i], same),
                 (f"split{i}_out", inner.splits[i], same),
                 (f"up_level{i}_out", inner.up_levels[i], same),
                 (f"cross_up{i}_out", inner.cross_up_layer[i], _channels_first)]
    return taps


@contextmanager
def capture_debug(inner: HDiT) -> Iterator[dict[str, np.ndarray]]:
    """Record the debug intermediates of the next forward through forward hooks."""
    captured: dict[str, np.ndarray] = {}
    handles = []
    for name, module, transform in _debug_taps(inner):
        def hook(_module, _args, output, name=name, transform=transform):
            captured[name] = transform(output).detach().float().cpu().numpy()
        handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@handler("denoiser")
def run_denoiser(case: Case) -> dict[str, np.ndarray]:
    denoiser = build_denoiser(case)
    inner = denoiser.inner_model
    x = _tensor(case.input("x"))
    sigma = _tensor(case.input("sigma"))
    cond: tuple[Tensor | None, Tensor | None] = (None, None)
    if case.params.get("conditional", True):
        cond = (_tensor(case.input("cls_token")), _tensor(case.input("patch_map")))
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        with capture_debug(inner) as captured:
            c_skip, c_out, c_in = (s.view(-1, 1, 1, 1) for s in denoiser.get_scalings(sigma))
            model_output, logvar = inner(x * c_in, sigma, *cond, return_logvar=True)
        denoised = model_output.float() * c_out + x * c_skip
        # the wrapper itself must agree with the inline preconditioning above
        wrapped = denoiser(x, sigma, *cond)
        if not torch.equal(wrapped, denoised):
            raise AssertionError("Denoiser.forward disagrees with its own scalings")
    out.update(captured)
    out["denoised"] = denoised.numpy()
    out["model_output"] = model_output.float().numpy()
    out["logvar"] = logvar.float().numpy()
    return out


@handler("sampler")
def run_sampler(case: Case) -> dict[str, np.ndarray]:
    params = case.params
    if params.get("solver", "dpmpp_2m_sde_heun") != "dpmpp_2m_sde_heun":
        raise ValueError(f"unsupported solver {params['solver']!r}")
    if float(params.get("eta", 0.0)) != 0.0:
        raise ValueError("only eta = 0 is pinned by the vectors")
    denoiser = build_denoiser(case)
    sigmas = karras_sigmas(int(params["steps"]), float(params["sigma_min"]),
                           float(params["sigma_max"]), float(params.get("rho", 7.0)))
    x_init = case.input("x_init")
    x = _tensor(x_init) if x_init is not None else _tensor(case.input("noise")) * sigmas[0]
    cls_token = _tensor(case.input("cls_token"))
    patch_map = _tensor(case.input("patch_map"))

    def model_fn(x: Tensor, sigma: Tensor, conditional: bool) -> Tensor:
        if conditional:
            return denoiser(x, sigma, cls_token, patch_map)
        return denoiser(x, sigma)

    debug_steps = {int(i) for i in params.get("debug_steps", [])}
    step_x: list[np.ndarray] = []
    step_denoised: list[np.ndarray] = []
    cfg_per_step: list[float] = []

    def callback(info: dict[str, Any]) -> None:
        cfg_per_step.append(float(info["cfg"]))
        if info["i"] in debug_steps:
            step_x.append(info["x"].numpy().copy())
            step_denoised.append(info["denoised"].numpy().copy())

    with torch.no_grad():
        x0 = sample_dpmpp_2m_sde(model_fn, x, sigmas, cfg_val=float(params["cfg_val"]),
                                 cfg_interval=tuple(params["cfg_interval"]), callback=callback)
    out = {"x0": x0.numpy(), "sigmas": sigmas.numpy(),
           "cfg_per_step": np.asarray(cfg_per_step, dtype=np.float32)}
    if debug_steps:
        out["step_index"] = np.asarray(sorted(debug_steps), dtype=np.int64)
        out["step_x"] = np.stack(step_x)
        out["step_denoised"] = np.stack(step_denoised)
    return out

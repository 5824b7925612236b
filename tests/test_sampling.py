"""The Karras schedule and the DPM++(2M) SDE sampler: schedule values, guidance interval edges,
call order, accuracy on a known ODE, seeded determinism and cancellation via the callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import one_thread  # noqa: F401 - autouse: small models on one thread
from tressel.errors import Cancelled
from tressel.progress import check_cancel
from tressel.sampling import (
    expected_model_calls,
    guidance_for,
    initial_noise,
    karras_sigmas,
    sample_dpmpp_2m_sde,
)

SIGMA_DATA = 0.3

def gaussian_denoiser(x, sigma, conditional=True):
    """The exact denoiser of N(0, σd²) data: E[x0 | x] = x·σd²/(σ²+σd²)."""
    s = sigma.view(-1, *([1] * (x.ndim - 1)))
    return x * SIGMA_DATA ** 2 / (s ** 2 + SIGMA_DATA ** 2)


def test_karras_schedule(vectors_dir):
    sigmas = karras_sigmas(10, 0.01, 160.0, 7.0)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (11,)
    assert sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(160.0, rel=1e-6)
    assert sigmas[-2].item() == pytest.approx(0.01, rel=1e-5)
    assert torch.all(sigmas[1:] < sigmas[:-1])
    # the released schedule, as the reference computes it
    expected = np.load(vectors_dir / "sampler_small.npz")["sigmas"]
    np.testing.assert_array_equal(sigmas.numpy(), expected)
    with pytest.raises(ValueError):
        karras_sigmas(0, 0.01, 160.0)


def test_guidance_interval_is_strict_on_both_ends():
    assert guidance_for(0.0, 2.5, (0.0, 5.0)) == 1.0
    assert guidance_for(5.0, 2.5, (0.0, 5.0)) == 1.0
    assert guidance_for(4.999, 2.5, (0.0, 5.0)) == 2.5
    assert guidance_for(1e-4, 2.5, (0.0, 5.0)) == 2.5
    assert guidance_for(160.0, 2.5, (0.0, 5.0)) == 1.0


def test_guided_steps_call_uncond_first_then_cond_and_combine():
    calls = []

    def model_fn(x, sigma, conditional):
        calls.append((float(sigma[0]), conditional))
        return torch.full_like(x, 2.0 if conditional else 1.0)

    sigmas = karras_sigmas(8, 0.01, 160.0)
    seen = []
    sample_dpmpp_2m_sde(model_fn, torch.zeros(1, 2, 4, 4), sigmas, cfg_val=3.0,
                        cfg_interval=(0.0, 5.0), callback=seen.append)
    assert len(calls) == expected_model_calls(sigmas, 3.0, (0.0, 5.0))
    for info in seen:
        step_calls = [c for c in calls if c[0] == info["sigma"]]
        if 0.0 < info["sigma"] < 5.0:
            assert info["cfg"] == 3.0
            assert step_calls == [(info["sigma"], False), (info["sigma"], True)]
            # D_u + w (D_c - D_u) = 1 + 3 (2 - 1)
            assert torch.all(info["denoised"] == 4.0)
        else:
            assert info["cfg"] == 1.0
            assert step_calls == [(info["sigma"], True)]
            assert torch.all(info["denoised"] == 2.0)


def test_sampler_solves_the_gaussian_probability_flow_at_second_order():
    # for Gaussian data the ODE solution is x0 = x_T · σd / sqrt(σ_max² + σd²)
    gen = torch.Generator().manual_seed(0)
    x = initial_noise((2, 3, 8, 8), 80.0, gen).double()
    exact = x * SIGMA_DATA / (80.0 ** 2 + SIGMA_DATA ** 2) ** 0.5
    errors = []
    for steps in (40, 80, 160):
        sigmas = karras_sigmas(steps, 0.002, 80.0).double()
        x0 = sample_dpmpp_2m_sde(gaussian_denoiser, x, sigmas)
        errors.append(((x0 - exact).norm() / exact.norm()).item())
    assert errors[-1] < 2e-3
    # halving the step size divides the error by about 4 (a first-order solver: by 2)
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5, errors


def test_seeded_runs_are_deterministic():
    def run(seed, eta=0.0):
        gen = torch.Generator().manual_seed(seed)
        x = initial_noise((1, 2, 4, 4), 160.0, gen)
        return sample_dpmpp_2m_sde(gaussian_denoiser, x, karras_sigmas(6, 0.01, 160.0),
                                   eta=eta, generator=gen)

    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.equal(run(3), run(4))
    # eta > 0 draws its noise from the same explicit generator: still reproducible
    torch.testing.assert_close(run(3, eta=1.0), run(3, eta=1.0), rtol=0, atol=0)
    assert not torch.equal(run(3, eta=1.0), run(3))
    with pytest.raises(ValueError, match="Generator"):
        sample_dpmpp_2m_sde(gaussian_denoiser, torch.zeros(1, 1, 2, 2),
                            karras_sigmas(3, 0.01, 1.0), eta=1.0)


def test_callback_reports_each_step_and_can_cancel():
    sigmas = karras_sigmas(5, 0.01, 160.0)
    x = initial_noise((1, 1, 4, 4), 160.0, torch.Generator().manual_seed(0))
    infos = []
    out = sample_dpmpp_2m_sde(gaussian_denoiser, x, sigmas, callback=infos.append)
    assert [i["i"] for i in infos] == list(range(5))
    assert infos[0]["x"] is x  # x as it enters the step
    assert infos[-1]["sigma_next"] == 0.0
    torch.testing.assert_close(out, infos[-1]["denoised"])  # the last step returns D itself

    class Flag:
        def __init__(self):
            self.set_after = 2
            self.calls = 0

        def is_set(self):
            return self.calls >= self.set_after

    flag = Flag()
    model_calls = []

    def model_fn(x, sigma, conditional):
        model_calls.append(sigma)
        return gaussian_denoiser(x, sigma)

    def callback(info):
        flag.calls += 1
        check_cancel(flag)

    with pytest.raises(Cancelled):
        sample_dpmpp_2m_sde(model_fn, x, sigmas, callback=callback)
    assert len(model_calls) == 2

"""Samplers on a toy problem with a known optimal denoiser.

Data x0 ~ N(mu, sd^2 I). Then x_t ~ N(sqrt(ab) mu, ab sd^2 + 1 - ab) and the optimal eps-predictor is
    eps*(x_t, t) = sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab sd^2 + 1 - ab).
The probability-flow ODE of a Gaussian is affine and keeps the standardised value, so the exact
deterministic map from x at the first timestep t0 to clean data is
    x0 = mu + sd (x_t0 - sqrt(ab_t0) mu) / sqrt(ab_t0 sd^2 + 1 - ab_t0),
which measures a deterministic sampler's discretisation error directly.

Starting from x_T ~ N(0, I) instead of the true x_T marginal biases the mean by about
-sd sqrt(ab_T) mu / 1 = -0.006 here (the schedule's sqrt(ab_999) = 0.0397), which the tolerances allow.
"""

from __future__ import annotations

import pytest
import torch

from diffusets_core.diffusion import DDIMSampler, DDPMSampler, DPMSolverMultistepSampler, NoiseSchedule

MU, SD = 0.3, 0.5
SHAPE = (512, 4, 16)  # 32,768 values: standard error of the mean ~0.003, of the std ~0.002
SCHED = NoiseSchedule.paper()
AC = SCHED.alphas_cumprod.double()


def make_eps_star(mu: float, sd: float):
    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = AC[t].reshape((-1,) + (1,) * (x.ndim - 1)).to(x.dtype)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * sd**2 + 1 - a)

    return eps


eps_star = make_eps_star(MU, SD)


def exact_ode_map(x_t0: torch.Tensor, t0: int) -> torch.Tensor:
    a = AC[t0]
    return MU + SD * (x_t0.double() - a.sqrt() * MU) / (a * SD**2 + 1 - a).sqrt()


@pytest.fixture(scope="module")
def x_T() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(1234))


@pytest.mark.parametrize(
    "name, sampler, steps, tol_mean, tol_std",
    [
        # measured (this seed): mean +0.0023 / std -0.0050
        ("DDPM-1000", DDPMSampler(), 1000, 0.012, 0.012),
        # DDIM is first order: std -0.029 at 50 steps (the last steps t=20 -> 0 -> clean dominate)
        ("DDIM-50", DDIMSampler(), 50, 0.015, 0.04),
        # DPM-Solver++(2M) with logSNR spacing: std +0.003
        ("DPM-Solver++-20", DPMSolverMultistepSampler(), 20, 0.015, 0.012),
        # DDIM with eta = 1 (stochastic, DDPM-like variance) at 50 steps: std -0.056 (known to need more steps)
        ("DDIM-eta1-200", DDIMSampler(eta=1.0), 200, 0.012, 0.03),
    ],
)
def test_sample_moments_match_data(x_T, name, sampler, steps, tol_mean, tol_std):
    x = sampler.sample(eps_star, SHAPE, x_T=x_T, seed=0, num_inference_steps=steps)
    assert x.shape == SHAPE and x.dtype == torch.float32
    mean, std = float(x.mean()), float(x.std())
    assert abs(mean - MU) < tol_mean, (name, mean)
    assert abs(std - SD) < tol_std, (name, std)


def test_paper_clip_fits_paper_scale_latents_but_distorts_wider_data():
    """The reference's [-1, 1] x0 clip is harmless for latents with std ~0.17 (paper scale)
    but cuts real signal for wider data, which is why clipping is off by default."""
    shape = (256, 4, 16)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    paper = DDPMSampler.paper()
    narrow = paper.sample(make_eps_star(0.0, 0.17), shape, x_T=x_T, seed=0)
    assert abs(float(narrow.mean())) < 0.01 and abs(float(narrow.std()) - 0.17) < 0.01
    wide = paper.sample(eps_star, shape, x_T=x_T, seed=0)
    free = DDPMSampler().sample(eps_star, shape, x_T=x_T, seed=0)
    assert float(wide.max()) <= 1.0 < float(free.max())
    # ~8% of N(0.3, 0.5^2) lies above 1: clipping pulls the mean down by ~0.02
    assert float(free.mean() - wide.mean()) > 0.01


def _ode_error(sampler, steps, x_T) -> float:
    x = sampler.sample(eps_star, x_T.shape, x_T=x_T, num_inference_steps=steps, dtype=torch.float64)
    t0 = int(sampler.timesteps(steps)[0])
    return float((x - exact_ode_map(x_T.double(), t0)).abs().max())


def test_deterministic_samplers_converge_to_the_exact_ode_map():
    x_T = torch.linspace(-4, 4, 801, dtype=torch.float64).reshape(1, 1, -1)
    ddim = [_ode_error(DDIMSampler(), n, x_T) for n in (10, 50, 200)]
    dpm = [_ode_error(DPMSolverMultistepSampler(), n, x_T) for n in (10, 20, 40)]
    # measured: DDIM 0.48 / 0.12 / 0.034 (first order); DPM-Solver++ 0.044 / 0.011 / 0.0017 (second order)
    assert ddim[0] > ddim[1] > ddim[2] and ddim[2] < 0.05
    assert dpm[0] > dpm[1] > dpm[2] and dpm[1] < 0.02 and dpm[2] < 0.004
    assert dpm[1] / dpm[2] > 3.0  # doubling the steps cuts the error ~4x
    assert dpm[1] < ddim[1] / 5  # DPM-Solver++-20 beats DDIM-50
    # DDIM-1000 (every training level) is close to the continuous ODE as well
    assert _ode_error(DDIMSampler(), 1000, x_T) < 0.015


def test_dpm_solver_converges_to_ddim_on_the_same_start():
    """With diffusers-compatible linspace spacing, DPM-Solver++ at many steps ~ DDIM at many steps."""
    x_T = torch.linspace(-3, 3, 101).reshape(1, 1, -1)
    ref = DDIMSampler(timestep_spacing="trailing").sample(eps_star, x_T.shape, x_T=x_T, num_inference_steps=1000)
    d20 = DPMSolverMultistepSampler().sample(eps_star, x_T.shape, x_T=x_T, num_inference_steps=20)
    d50 = DPMSolverMultistepSampler().sample(eps_star, x_T.shape, x_T=x_T, num_inference_steps=50)
    e20, e50 = float((d20 - ref).abs().max()), float((d50 - ref).abs().max())
    assert e50 < e20 < 0.03

"""Optional parity with diffusers' schedulers (skipped unless diffusers is importable).

diffusers is NOT a dependency of this project; these tests were run with diffusers 0.35.1 installed in a
throwaway location (``PYTHONPATH=/tmp/diffusers_pkg``). With the same generator, full sampling loops give:
DDPM (paper settings, 1000 and 200 steps) and DDIM (eta 0 and 1, leading and trailing, 50 steps) bitwise
equal; DPM-Solver++(2M) with diffusers' spacings within ~1.5e-6.
"""

from __future__ import annotations

import pytest
import torch

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers

diffusers = pytest.importorskip("diffusers")

from diffusets_core.diffusion import DDIMSampler, DDPMSampler, DPMSolverMultistepSampler, NoiseSchedule  # noqa: E402

KW = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012)
SHAPE = (4, 4, 16)
AC = NoiseSchedule.paper().alphas_cumprod.double()


def eps_fn(x, t):
    a = AC[t].reshape(-1, 1, 1).to(x.dtype)
    return (1 - a).sqrt() * (x - a.sqrt() * 0.3) / (a * 0.25 + 1 - a)


def _diffusers_loop(scheduler, n, generator, **step_kw):
    from diffusers.utils.torch_utils import randn_tensor

    scheduler.set_timesteps(n)
    x = randn_tensor(SHAPE, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(x, torch.full((SHAPE[0],), int(t))), t, x, generator=generator, **step_kw).prev_sample
    return x


def test_schedule_constants_equal():
    d = diffusers.DDPMScheduler(**KW)
    s = NoiseSchedule.paper()
    assert torch.equal(d.betas, s.betas) and torch.equal(d.alphas_cumprod, s.alphas_cumprod)
    x0, noise, t = torch.randn(3, 4, 8), torch.randn(3, 4, 8), torch.tensor([0, 499, 999])
    assert torch.equal(d.add_noise(x0, noise, t), s.add_noise(x0, noise, t))


@pytest.mark.parametrize("n", [200, 1000])
def test_ddpm_paper_loop_bitwise(n):
    ref = _diffusers_loop(diffusers.DDPMScheduler(**KW), n, torch.Generator().manual_seed(0))
    ours = DDPMSampler.paper().sample(eps_fn, SHAPE, seed=0, num_inference_steps=n)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_loop_bitwise(eta, spacing):
    sch = diffusers.DDIMScheduler(**KW, clip_sample=False, timestep_spacing=spacing)
    ref = _diffusers_loop(sch, 50, torch.Generator().manual_seed(1), eta=eta)
    ours = DDIMSampler(eta=eta, timestep_spacing=spacing).sample(eps_fn, SHAPE, seed=1, num_inference_steps=50)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("n", [10, 20])
def test_dpm_solver_loop_close(spacing, n):
    sch = diffusers.DPMSolverMultistepScheduler(**KW, timestep_spacing=spacing)
    ref = _diffusers_loop(sch, n, torch.Generator().manual_seed(2))
    smp = DPMSolverMultistepSampler(timestep_spacing=spacing)
    assert smp.timesteps(n).tolist() == sch.timesteps.tolist()
    ours = smp.sample(eps_fn, SHAPE, seed=2, num_inference_steps=n)
    assert float((ours - ref).abs().max()) < 1e-5

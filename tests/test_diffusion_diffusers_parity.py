"""Parity with diffusers' schedulers: against stored diffusers outputs (always) and diffusers itself (when importable).

diffusers is NOT a dependency of this project. ``tests/fixtures/diffusers_parity.json`` holds what diffusers
(0.35.1; 0.27.2 gives identical numbers) computes for fixed inputs; ``tests/fixtures/make_diffusers_parity.py``
wrote it and says how to rerun it. Each comparison below runs twice: against the stored numbers (``stored``,
always) and against the same cases computed by the installed diffusers (``live``, skipped unless diffusers is
importable, e.g. with ``PYTHONPATH=/tmp/diffusers_pkg``). Compared: the noise schedules (linear = paper,
scaled-linear, cosine) and ``add_noise``; single DDPM (paper settings), DDIM (eta 0 and 1) and DPM-Solver++(2M)
steps on stored inputs; whole sampling loops of a toy model from seeded noise (timesteps, the sample after the
first step, the final sample).

The tolerances allow the last bits that another CPU's kernels change (``benchmarks/cross_cpu.py``); natively,
with diffusers installed, the live tests at the end show the DDPM (1000 and 200 steps) and DDIM (eta 0 and 1,
leading and trailing, 50 steps) loops bitwise equal, and DPM-Solver++(2M) with diffusers' spacings within ~1.5e-6.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffusets_core.diffusion import DDIMSampler, DDPMSampler, DPMSolverMultistepSampler, NoiseSchedule
from tests.fixtures.make_diffusers_parity import DPM_STEPS, KW, LOOPS, SCHEDULES, SHAPE, STEPS, build, toy_eps, unpack

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers

FIXTURE = Path(__file__).parent / "fixtures" / "diffusers_parity.json"
#: float32 constants (linspace, running product): within 2 ulps, as tests/test_diffusion_schedules.py; the
#: scaled-linear betas square a linspace, doubling its relative error (SSE4.2 kernels: 2.6 ulps)
ULPS2 = 2 * float(np.finfo(np.float32).eps)
CONSTANT_RTOL = {"linear": ULPS2, "scaled_linear": 2 * ULPS2, "squaredcos_cap_v2": ULPS2}
#: one step: a few float32 ulps of values of order 1
STEP_TOL = {"rtol": 1e-6, "atol": 1e-6}
#: whole loops (up to 1000 steps of rounding)
LOOP_TOL = {"rtol": 0.0, "atol": 1e-5}
#: DPM-Solver++: we compute its coefficients in float64, diffusers in float32 (about 1e-6 apart per step)
DPM_TOL = {"rtol": 0.0, "atol": 1e-5}
#: diffusers' default x0 clipping (clip_sample=True, sample_max_value=1.0) and spacing per scheduler
DEFAULT_SPACING = {"DDPMScheduler": "leading", "DDIMScheduler": "leading", "DPMSolverMultistepScheduler": "linspace"}


def _import_diffusers() -> Any:
    return pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    return json.loads(json.dumps(build(_import_diffusers())))  # the fixture file's form, computed now


@pytest.fixture(scope="module", params=["stored", "live"])
def reference(request) -> dict[str, Any]:
    """diffusers' numbers: from the fixture file, or (skipped without diffusers) from the installed diffusers."""
    return request.getfixturevalue(request.param)


def _by_name(cases: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (case,) = [c for c in cases if c["name"] == name]
    return case


def ours(case: dict[str, Any], eta: float = 0.0):
    """Our sampler configured as the case's diffusers scheduler, on our paper schedule."""
    cfg = case["config"]
    schedule = NoiseSchedule.paper()
    spacing = cfg.get("timestep_spacing", DEFAULT_SPACING[case["scheduler"]])
    clip = 1.0 if cfg.get("clip_sample", True) else None
    if case["scheduler"] == "DDPMScheduler":
        return DDPMSampler(schedule, timestep_spacing=spacing, clip_sample=clip)
    if case["scheduler"] == "DDIMScheduler":
        return DDIMSampler(schedule, eta=eta, timestep_spacing=spacing, clip_sample=clip)
    assert case["scheduler"] == "DPMSolverMultistepScheduler"
    return DPMSolverMultistepSampler(schedule, timestep_spacing=spacing)


# --------------------------------------------------------------------------------- the fixture file itself
def test_the_fixture_covers_every_case(stored):
    assert stored["scheduler_kwargs"] == KW
    assert [s["config"] for s in stored["schedules"]] == SCHEDULES
    assert [c["name"] for c in stored["steps"]] == [c["name"] for c in STEPS]
    assert [c["name"] for c in stored["loops"]] == [c["name"] for c in LOOPS]
    assert stored["dpm_steps"]["name"] == DPM_STEPS["name"]
    assert stored["versions"]["diffusers"]
    first = stored["loops"][0]
    assert first["final"]["shape"] == list(SHAPE) and len(first["final"]["values"]) == int(np.prod(SHAPE))


# --------------------------------------------------------------------------------- schedules and forward process
@pytest.mark.parametrize("i", range(len(SCHEDULES)), ids=[s["beta_schedule"] for s in SCHEDULES])
def test_schedule_constants(reference, i):
    entry = reference["schedules"][i]
    s = NoiseSchedule(**KW, **entry["config"])
    rtol = CONSTANT_RTOL[entry["config"]["beta_schedule"]]
    np.testing.assert_allclose(s.betas.numpy(), unpack(entry["betas"]).numpy(), rtol=rtol, atol=0)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), unpack(entry["alphas_cumprod"]).numpy(), rtol=rtol, atol=0)


def test_add_noise(reference):
    a = reference["add_noise"]
    out = NoiseSchedule.paper().add_noise(unpack(a["x0"]), unpack(a["noise"]), torch.tensor(a["t"]))
    torch.testing.assert_close(out, unpack(a["out"]), **STEP_TOL)


# --------------------------------------------------------------------------------- single steps on stored inputs
@pytest.mark.parametrize("name", [c["name"] for c in STEPS])
def test_single_step(reference, name):
    case = _by_name(reference["steps"], name)
    smp = ours(case, eta=case.get("eta", 0.0))
    prev_t = max(case["prev_t"], -1)  # diffusers: any negative previous timestep means alpha_bar = 1 (clean)
    ts = smp.timesteps(case["n"])
    assert int(smp.prev_timesteps(ts)[ts.tolist().index(case["t"])]) == prev_t  # our loop goes where diffusers goes
    out = smp.step(unpack(case["eps"]), case["t"], unpack(case["x_t"]), prev_t, noise=unpack(case["noise"]))
    torch.testing.assert_close(out.pred_x0, unpack(case["pred_x0"]), **STEP_TOL)
    torch.testing.assert_close(out.prev_sample, unpack(case["prev_sample"]), **STEP_TOL)


def test_dpm_solver_first_and_second_order_steps(reference):
    case = reference["dpm_steps"]
    smp = ours(case)
    t0, t1, t2 = case["t"]
    assert smp.timesteps(case["n"])[:3].tolist() == [t0, t1, t2]
    eps0, eps1 = (unpack(e) for e in case["eps"])
    x1_ref, x2_ref = (unpack(s) for s in case["samples"])
    out1 = smp.step(eps0, t0, unpack(case["x_t"]), t1)  # no state: first order
    torch.testing.assert_close(out1.prev_sample, x1_ref, **DPM_TOL)
    out2 = smp.step(eps1, t1, x1_ref, t2, state=out1.state)  # second order, on diffusers' own x1
    torch.testing.assert_close(out2.prev_sample, x2_ref, **DPM_TOL)


# --------------------------------------------------------------------------------- whole loops from seeded noise
@pytest.mark.parametrize("name", [c["name"] for c in LOOPS])
def test_sampling_loop(reference, name):
    case = _by_name(reference["loops"], name)
    linear = _by_name_config(reference["schedules"], "linear")
    eps_fn = toy_eps(unpack(linear["alphas_cumprod"]))  # diffusers' table: the model does not depend on ours
    smp = ours(case, eta=case["step_kwargs"].get("eta", 0.0))
    assert smp.timesteps(case["n"]).tolist() == case["timesteps"]
    seen: list[torch.Tensor] = []
    final = smp.sample(
        eps_fn, SHAPE, seed=case["seed"], num_inference_steps=case["n"], callback=lambda i, t, x, x0: seen.append(x)
    )
    dpm = case["scheduler"] == "DPMSolverMultistepScheduler"
    torch.testing.assert_close(seen[0], unpack(case["first_step"]), **(DPM_TOL if dpm else STEP_TOL))
    torch.testing.assert_close(final, unpack(case["final"]), **LOOP_TOL)


def _by_name_config(schedules: list[dict[str, Any]], beta_schedule: str) -> dict[str, Any]:
    (entry,) = [s for s in schedules if s["config"]["beta_schedule"] == beta_schedule]
    return entry


# --------------------------------------------------------------------------------- the checks can fail
def test_a_changed_schedule_or_sampler_fails_the_stored_comparison(stored):
    """What the comparisons catch: beta_end off by 1e-7 (8 parts per million) in the constants, off by 1e-5 in a
    DDIM loop, and the paper's DDPM without its x0 clipping."""
    entry = _by_name_config(stored["schedules"], "linear")
    eps_fn = toy_eps(unpack(entry["alphas_cumprod"]))
    tiny = NoiseSchedule(KW["num_train_timesteps"], KW["beta_start"], KW["beta_end"] + 1e-7)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(tiny.alphas_cumprod.numpy(), unpack(entry["alphas_cumprod"]).numpy(), rtol=ULPS2)
    ddim = _by_name(stored["loops"], "ddim_eta0_leading_50")
    moved = NoiseSchedule(KW["num_train_timesteps"], KW["beta_start"], KW["beta_end"] + 1e-5)
    final = DDIMSampler(moved).sample(eps_fn, SHAPE, seed=ddim["seed"], num_inference_steps=50)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(final, unpack(ddim["final"]), **LOOP_TOL)
    ddpm = _by_name(stored["loops"], "ddpm_paper_200")
    final = DDPMSampler(NoiseSchedule.paper()).sample(eps_fn, SHAPE, seed=ddpm["seed"], num_inference_steps=200)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(final, unpack(ddpm["final"]), **LOOP_TOL)


# --------------------------------------------------------------------------------- live: bitwise with diffusers
AC = NoiseSchedule.paper().alphas_cumprod
eps_fn = toy_eps(AC)


def _diffusers_loop(scheduler, n, generator, **step_kw):
    from diffusers.utils.torch_utils import randn_tensor

    scheduler.set_timesteps(n)
    x = randn_tensor(SHAPE, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(x, torch.full((SHAPE[0],), int(t))), t, x, generator=generator, **step_kw).prev_sample
    return x


def test_live_schedule_constants_equal():
    diffusers = _import_diffusers()
    d = diffusers.DDPMScheduler(**KW)
    s = NoiseSchedule.paper()
    assert torch.equal(d.betas, s.betas) and torch.equal(d.alphas_cumprod, s.alphas_cumprod)
    x0, noise, t = torch.randn(3, 4, 8), torch.randn(3, 4, 8), torch.tensor([0, 499, 999])
    assert torch.equal(d.add_noise(x0, noise, t), s.add_noise(x0, noise, t))


@pytest.mark.parametrize("n", [200, 1000])
def test_live_ddpm_paper_loop_bitwise(n):
    diffusers = _import_diffusers()
    ref = _diffusers_loop(diffusers.DDPMScheduler(**KW), n, torch.Generator().manual_seed(0))
    out = DDPMSampler.paper().sample(eps_fn, SHAPE, seed=0, num_inference_steps=n)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_live_ddim_loop_bitwise(eta, spacing):
    diffusers = _import_diffusers()
    sch = diffusers.DDIMScheduler(**KW, clip_sample=False, timestep_spacing=spacing)
    ref = _diffusers_loop(sch, 50, torch.Generator().manual_seed(1), eta=eta)
    out = DDIMSampler(eta=eta, timestep_spacing=spacing).sample(eps_fn, SHAPE, seed=1, num_inference_steps=50)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("n", [10, 20])
def test_live_dpm_solver_loop_close(spacing, n):
    diffusers = _import_diffusers()
    sch = diffusers.DPMSolverMultistepScheduler(**KW, timestep_spacing=spacing)
    ref = _diffusers_loop(sch, n, torch.Generator().manual_seed(2))
    smp = DPMSolverMultistepSampler(timestep_spacing=spacing)
    assert smp.timesteps(n).tolist() == sch.timesteps.tolist()
    out = smp.sample(eps_fn, SHAPE, seed=2, num_inference_steps=n)
    assert float((out - ref).abs().max()) < 1e-5

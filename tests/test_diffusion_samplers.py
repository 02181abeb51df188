"""Samplers: the reference DDPM step, timesteps, seeding/batching, clipping, argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusets_core.diffusion import (
    DDIMSampler,
    DDPMSampler,
    DPMSolverMultistepSampler,
    NoiseSchedule,
    get_sampler,
    make_generators,
    randn,
)

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "golden.npz"
ALL = [DDPMSampler, DDIMSampler, DPMSolverMultistepSampler]


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURE) as g:
        return {k: torch.from_numpy(g[k]) for k in g.files}


def _toy_eps(mu=0.3, sd=0.5, schedule=None):
    """Optimal eps-predictor for data N(mu, sd^2 I): eps* = sqrt(1-ab) (x - sqrt(ab) mu) / (ab sd^2 + 1 - ab)."""
    ac = (schedule or NoiseSchedule()).alphas_cumprod.double()

    def model_fn(x, t):
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        a = ac[t.cpu()].reshape((-1,) + (1,) * (x.ndim - 1)).to(x.device)
        return ((1 - a).sqrt() * (x.double() - a.sqrt() * mu) / (a * sd**2 + 1 - a)).to(x.dtype)

    return model_fn


# ------------------------------------------------------------------------------------------ reference step
def test_ddpm_step_matches_reference_fixture(golden):
    """Main case of the fixture: x_t = unet_x[0:1], eps = unet_eps[0:1], t = 999, z = ddpm_noise.

    README tolerance: atol 1e-5 (our float32 arithmetic follows diffusers' order and is bitwise equal on
    the 2-core CPU box used to write this test).
    """
    s = DDPMSampler.paper()
    out = s.step(golden["unet_eps"][0:1], 999, golden["unet_x"][0:1], noise=golden["ddpm_noise"])
    err_x = float((out.prev_sample - golden["ddpm_x_prev"]).abs().max())
    err_x0 = float((out.pred_x0 - golden["ddpm_pred_x0_clipped"]).abs().max())
    assert err_x <= 1e-5 and err_x0 <= 1e-5, (err_x, err_x0)
    assert out.prev_sample.dtype == torch.float32 and out.prev_sample.shape == (1, 4, 128)


def test_ddpm_extra_steps_per_sample_timesteps(golden):
    """Extra pairs: sample i at its own timestep (0 / 499 / 999); row 0 takes the t = 0 branch (no noise)."""
    s = DDPMSampler.paper()
    x, eps, t, z = golden["unet_x"], golden["unet_eps"], golden["unet_t"], golden["ddpm_extra_noise"]
    out = s.step(eps, t, x, noise=z)  # one call, (B,) timesteps
    assert float((out.prev_sample - golden["ddpm_extra_x_prev"]).abs().max()) <= 1e-5
    assert float((out.pred_x0 - golden["ddpm_extra_pred_x0_clipped"]).abs().max()) <= 1e-5
    for i in range(3):  # one call per sample with an int timestep
        o = s.step(eps[i : i + 1], int(t[i]), x[i : i + 1], noise=z[i : i + 1])
        assert float((o.prev_sample - golden["ddpm_extra_x_prev"][i : i + 1]).abs().max()) <= 1e-5
    # t = 0 adds no noise: the result does not depend on z
    o0 = s.step(eps[0:1], 0, x[0:1], noise=torch.full_like(z[0:1], 100.0))
    assert torch.equal(o0.prev_sample, golden["ddpm_extra_x_prev"][0:1])


def test_ddpm_step_coefficients_from_readme():
    """README: at t = 999 the x0 coefficient is 4.8048e-4, x_t coefficient 0.99396, variance 0.0120."""
    s = DDPMSampler.paper()
    x = torch.zeros(1, 1, 1)
    one = torch.ones(1, 1, 1)
    # x0 coefficient: clip off, eps chosen so that pred_x0 = 1 with x_t = 0 is impossible; use linearity instead
    ab = s.schedule.alphas_cumprod
    eps_for_x0_one = (x - ab[999] ** 0.5 * one) / (1 - ab[999]) ** 0.5
    o = s.step(eps_for_x0_one, 999, x, noise=torch.zeros_like(x), clip_sample=None)
    assert float(o.pred_x0) == pytest.approx(1.0, rel=1e-5)
    assert float(o.prev_sample) == pytest.approx(0.0004804830241482705, rel=1e-4)
    z = torch.ones_like(x)
    o1 = s.step(torch.zeros_like(x), 999, x, noise=z)
    assert float(o1.prev_sample) == pytest.approx(0.011999853886663914**0.5, rel=1e-5)


# ------------------------------------------------------------------------------------------ timesteps
def test_paper_timesteps():
    s = DDPMSampler.paper()
    assert s.clip_sample == 1.0 and s.timestep_spacing == "leading" and s.default_num_inference_steps == 1000
    assert torch.equal(s.timesteps(), torch.arange(999, -1, -1))
    # the authors sample their no-VAE ablation with 200 steps, diffusers' "leading" spacing: 995, 990, ..., 0
    # (book/reference_implementation.md#noise-schedule-training-and-samplers)
    assert torch.equal(s.timesteps(200), torch.arange(995, -1, -5))
    assert s.prev_timesteps(s.timesteps(200))[-2:].tolist() == [0, -1]


@pytest.mark.parametrize(
    "cls, spacing, n, expected",
    [  # values printed by diffusers 0.35.1's set_timesteps
        (DDIMSampler, "leading", 7, [852, 710, 568, 426, 284, 142, 0]),
        (DDIMSampler, "trailing", 7, [999, 856, 713, 570, 428, 285, 142]),
        (DDIMSampler, "linspace", 7, [999, 832, 666, 500, 333, 166, 0]),
        (DDPMSampler, "leading", 30, list(range(957, -1, -33))),
        (
            DPMSolverMultistepSampler,
            "linspace",
            20,
            [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50],
        ),
        (DPMSolverMultistepSampler, "leading", 7, [875, 750, 625, 500, 375, 250, 125]),
        (DPMSolverMultistepSampler, "trailing", 7, [999, 856, 713, 570, 428, 285, 142]),
    ],
)
def test_timesteps_match_diffusers(cls, spacing, n, expected):
    assert cls(timestep_spacing=spacing).timesteps(n).tolist() == expected


@pytest.mark.parametrize("n", [1, 2, 10, 20, 50, 999, 1000])
def test_logsnr_spacing(n):
    ts = DPMSolverMultistepSampler().timesteps(n)
    assert len(ts) == n and len(set(ts.tolist())) == n
    assert int(ts[0]) == 999 and (n == 1 or int(ts[-1]) == 0)
    assert torch.all(ts[1:] < ts[:-1])


# ------------------------------------------------------------------------------------------ argument checks
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    "n, err, msg",
    [
        (0, ValueError, ">= 1"),
        (-3, ValueError, ">= 1"),
        (1001, ValueError, "cannot exceed"),
        (2.5, TypeError, "int"),
        (True, TypeError, "int"),
    ],
)
def test_invalid_num_inference_steps(cls, n, err, msg):
    s = cls()
    with pytest.raises(err, match=msg):
        s.timesteps(n)
    with pytest.raises(err, match=msg):
        s.sample(_toy_eps(), (2, 3), seed=0, num_inference_steps=n)
    with pytest.raises(err, match=msg):
        cls(num_inference_steps=n)


def test_spacing_that_cannot_give_distinct_steps():
    with pytest.raises(ValueError, match="distinct timesteps"):
        DPMSolverMultistepSampler(timestep_spacing="linspace").timesteps(1000)
    with pytest.raises(ValueError, match="distinct timesteps"):
        DDPMSampler(steps_offset=1).timesteps(1000)


def test_invalid_sampler_arguments():
    f = _toy_eps()
    s = DDIMSampler()
    with pytest.raises(ValueError, match="timestep_spacing"):
        DDIMSampler(timestep_spacing="karras")
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(eta=-0.1)
    with pytest.raises(TypeError, match="NoiseSchedule"):
        DDIMSampler(schedule="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x_T has shape"):
        s.sample(f, (2, 3), x_T=torch.zeros(2, 4), num_inference_steps=2)
    with pytest.raises(ValueError, match="either seed or generator"):
        s.sample(f, (2, 3), seed=0, generator=torch.Generator(), num_inference_steps=2)
    with pytest.raises(ValueError, match="per-sample"):
        s.sample(f, (2, 3), seed=[0, 1, 2], num_inference_steps=2)
    with pytest.raises(TypeError, match="seed"):
        s.sample(f, (2, 3), seed="0", num_inference_steps=2)
    with pytest.raises(ValueError, match="model_fn returned"):
        s.sample(lambda x, t: x[:, :1], (2, 3), seed=0, num_inference_steps=2)
    with pytest.raises(TypeError, match="callable"):
        s.sample(None, (2, 3), seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        s.sample(f, (0, 3), seed=0)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="prev_t must be smaller"):
        s.step(x, 10, x, 10)
    with pytest.raises(TypeError, match="integer timestep"):
        s.step(x, torch.tensor([1.0, 2.0]), x)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        s.step(x, 1000, x, 990)
    with pytest.raises(ValueError, match="differ"):
        s.step(torch.zeros(2, 4), 10, x)
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("euler")
    with pytest.raises(ValueError, match="DDPM"):
        get_sampler("ddim", paper=True)


# ------------------------------------------------------------------------------------------ seeding
@pytest.mark.parametrize("cls", ALL)
def test_same_seed_same_samples(cls):
    s = cls()
    f = _toy_eps()
    a = s.sample(f, (3, 2, 8), seed=7, num_inference_steps=10)
    b = s.sample(f, (3, 2, 8), seed=7, num_inference_steps=10)
    c = s.sample(f, (3, 2, 8), generator=torch.Generator().manual_seed(7), num_inference_steps=10)
    d = s.sample(f, (3, 2, 8), seed=8, num_inference_steps=10)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.allclose(a, d)


@pytest.mark.parametrize(
    "cls, kw", [(DDPMSampler, {}), (DDIMSampler, {"eta": 1.0}), (DDIMSampler, {}), (DPMSolverMultistepSampler, {})]
)
def test_per_sample_seeds_make_samples_batch_independent(cls, kw):
    s = cls(**kw)
    f = _toy_eps()
    big = s.sample(f, (4, 2, 8), seed=[10, 11, 12, 13], num_inference_steps=12)
    small = s.sample(f, (2, 2, 8), seed=[12, 13], num_inference_steps=12)
    single = s.sample(f, (1, 2, 8), seed=[11], num_inference_steps=12)
    assert torch.equal(big[2:], small)
    assert torch.equal(big[1:2], single)
    # a list of generators is the same as a list of seeds
    gens = [torch.Generator().manual_seed(k) for k in (10, 11, 12, 13)]
    assert torch.equal(s.sample(f, (4, 2, 8), generator=gens, num_inference_steps=12), big)


def test_x_T_is_the_first_draw_and_can_be_given():
    s = DDIMSampler()
    f = _toy_eps()
    xT = randn((2, 3, 5), torch.Generator().manual_seed(4))
    a = s.sample(f, (2, 3, 5), seed=4, num_inference_steps=5)
    b = s.sample(f, (2, 3, 5), x_T=xT, num_inference_steps=5)
    assert torch.equal(a, b)  # deterministic DDIM: only x_T matters


def test_randn_and_make_generators():
    g = make_generators(seed=[1, 2], batch_size=2)
    assert isinstance(g, list) and len(g) == 2
    x = randn((2, 3), g)
    assert torch.equal(x[1:], torch.randn((1, 3), generator=torch.Generator().manual_seed(2)))
    assert make_generators() is None
    with pytest.raises(TypeError):
        make_generators(generator="gen")  # type: ignore[arg-type]


def test_step_counts_model_calls_and_callback():
    calls, seen = [], []

    def f(x, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    s = DDPMSampler()
    s.sample(f, (2, 3), seed=0, num_inference_steps=20, callback=lambda i, t, x, x0: seen.append((i, t)))
    assert calls == s.timesteps(20).tolist()
    assert seen == list(enumerate(calls))


def test_ddpm_consumes_no_noise_at_t0():
    """A diffusers DDPM loop draws x_T, then one noise per step with t > 0 (none at t = 0)."""
    s = DDPMSampler()
    f = _toy_eps()
    g1 = torch.Generator().manual_seed(0)
    s.sample(f, (2, 3), generator=g1, num_inference_steps=4)
    g2 = torch.Generator().manual_seed(0)
    for _ in range(1 + 3):
        torch.randn((2, 3), generator=g2)
    assert torch.equal(torch.randn(5, generator=g1), torch.randn(5, generator=g2))


# ------------------------------------------------------------------------------------------ clipping
def test_clipping_is_off_by_default_and_on_in_paper_mode():
    x = torch.full((1, 2, 4), 0.5)
    eps = torch.full((1, 2, 4), -1.0)  # pred_x0 = (0.5 + 0.9992) / 0.0397 >> 1 at t = 999
    off = DDPMSampler().step(eps, 999, x, noise=torch.zeros_like(x))
    assert float(off.pred_x0.max()) > 30
    paper = DDPMSampler.paper().step(eps, 999, x, noise=torch.zeros_like(x))
    assert float(paper.pred_x0.max()) == 1.0
    rng = DDPMSampler(clip_sample=(-0.5, 2.0)).step(-eps, 999, x, noise=torch.zeros_like(x))
    assert float(rng.pred_x0.min()) == -0.5
    sym = DDIMSampler(clip_sample=3.0).step(eps, 999, x)
    assert float(sym.pred_x0.max()) == 3.0
    # per-call override in step() and sample()
    assert float(DDPMSampler.paper().step(eps, 999, x, noise=torch.zeros_like(x), clip_sample=None).pred_x0.max()) > 30
    f = lambda xx, t: torch.full_like(xx, -1.0)  # noqa: E731
    for cls in ALL:
        x0_paper = cls().sample(f, (1, 3), seed=0, num_inference_steps=3, clip_sample=1.0)
        x0_free = cls().sample(f, (1, 3), seed=0, num_inference_steps=3)
        assert float(x0_paper.abs().max()) <= 1.0 + 1e-6 < float(x0_free.abs().max())


@pytest.mark.parametrize(
    "bad, err",
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        (float("inf"), ValueError),
        ((1.0, -1.0), ValueError),
        (True, TypeError),
        ("1", TypeError),
    ],
)
def test_invalid_clip_values(bad, err):
    with pytest.raises(err):
        DDPMSampler(clip_sample=bad)


def test_config_round_trip():
    for s in [
        DDPMSampler.paper(),
        DDIMSampler(eta=0.5, timestep_spacing="trailing", clip_sample=(-2.0, 3.0)),
        DPMSolverMultistepSampler(NoiseSchedule(500, 0.0001, 0.02), num_inference_steps=15),
    ]:
        cfg = s.to_config()
        s2 = get_sampler(cfg)
        assert type(s2) is type(s) and s2.to_config() == cfg
    assert isinstance(get_sampler("dpm++2m"), DPMSolverMultistepSampler)
    assert get_sampler("ddpm", paper=True).clip_sample == 1.0


# ------------------------------------------------------------------------------------------ dtype / device
@pytest.mark.parametrize("cls", ALL)
def test_dtype_is_kept(cls):
    f = _toy_eps()
    out = cls().sample(f, (2, 3), seed=0, num_inference_steps=5, dtype=torch.float64)
    assert out.dtype == torch.float64
    out = cls().sample(f, (2, 3), seed=0, num_inference_steps=5, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", ALL)
def test_cuda_matches_cpu(cls):
    f = _toy_eps()
    cpu = cls().sample(f, (4, 8), seed=[0, 1, 2, 3], num_inference_steps=10)
    gpu = cls().sample(f, (4, 8), seed=[0, 1, 2, 3], num_inference_steps=10, device="cuda")
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)

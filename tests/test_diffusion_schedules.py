"""Noise schedule: constants vs the reference fixture, forward process, training timesteps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusets_core.diffusion import NoiseSchedule

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "golden.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURE) as g:
        return {k: g[k] for k in g.files}


def test_paper_defaults():
    s = NoiseSchedule()
    assert s == NoiseSchedule.paper()
    assert (s.num_train_timesteps, s.beta_start, s.beta_end, s.beta_schedule) == (1000, 0.00085, 0.012, "linear")
    assert s.betas.dtype == s.alphas.dtype == s.alphas_cumprod.dtype == torch.float32
    assert s.alphas_cumprod_f64.dtype == torch.float64
    assert s.betas.shape == s.alphas.shape == s.alphas_cumprod.shape == (1000,)


def test_constants_match_reference_bitwise(golden):
    """diffusers holds betas / alphas_cumprod in float32 (linspace + cumprod); we reproduce them to the last bits."""
    s = NoiseSchedule.paper()
    # float32 linspace, square and running product: their last bit depends on the CPU's kernels (a CPU without AVX2,
    # emulated by benchmarks/cross_cpu.py, gave 1 ulp = 1.2e-7 relative), so "exactly" means within 2 float32 ulps
    ulps2 = 2 * float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(s.betas.numpy(), golden["ddpm_betas_ref_f32"], rtol=ulps2, atol=0)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), golden["ddpm_alphas_cumprod_ref_f32"], rtol=ulps2, atol=0)
    tp = golden["ddpm_t_points"]
    np.testing.assert_allclose(
        s.alphas_cumprod.double().numpy()[tp], golden["ddpm_alphas_cumprod_at_t_ref_f32"], rtol=ulps2, atol=0
    )
    # README tolerance for alphas_cumprod: relative 1e-6
    ref = golden["ddpm_alphas_cumprod_ref_f32"].astype(np.float64)
    assert np.max(np.abs(s.alphas_cumprod.double().numpy() / ref - 1)) <= 1e-6


def test_float64_constants(golden):
    s = NoiseSchedule.paper()
    tp = golden["ddpm_t_points"]
    np.testing.assert_allclose(
        s.alphas_cumprod_f64.numpy()[tp], golden["ddpm_alphas_cumprod_at_t_f64"], rtol=1e-12, atol=0
    )
    # float32 vs float64 differ by at most ~1.5e-7 (README)
    assert float((s.alphas_cumprod.double() - s.alphas_cumprod_f64).abs().max()) < 2e-7


def test_terminal_signal_is_small():
    """x_T is close to pure noise: sqrt(alpha_bar_999) ~ 0.0397, alpha_bar_500 ~ 0.161 (linear 0.00085..0.012)."""
    s = NoiseSchedule.paper()
    assert s.sqrt_alpha_bar_T == pytest.approx(0.0397, abs=1e-4)
    assert float(s.sqrt_alpha_bar(999)) == pytest.approx(s.sqrt_alpha_bar_T, rel=1e-6)
    assert float(s.alpha_bar(999)) == pytest.approx(0.00158, abs=1e-5)
    assert float(s.alpha_bar(500)) == pytest.approx(0.161, abs=1e-3)
    assert float(s.alpha_bar(-1)) == 1.0
    assert s.sqrt_alpha_bar(torch.tensor([0, 999])).shape == (2,)


@pytest.mark.parametrize("kind", ["linear", "scaled_linear", "cosine", "squaredcos_cap_v2"])
def test_schedule_kinds_are_valid(kind):
    s = NoiseSchedule(1000, 0.00085, 0.012, kind)
    b, ab = s.betas.double(), s.alphas_cumprod.double()
    assert torch.all((b > 0) & (b < 1))
    assert torch.all(ab[1:] < ab[:-1])
    assert 0 < float(ab[-1]) < float(ab[0]) < 1
    if kind in ("cosine", "squaredcos_cap_v2"):
        assert s.beta_schedule == "cosine"
        assert float(b.max()) <= 0.999 + 1e-6
        assert s.sqrt_alpha_bar_T < 0.01  # cosine ends much closer to pure noise
    if kind == "scaled_linear":
        assert float(b[0]) == pytest.approx(0.00085, rel=1e-5) and float(b[-1]) == pytest.approx(0.012, rel=1e-5)
        # SD's schedule is not the paper's: betas in between are smaller than linear ones
        assert float(b[500]) < float(NoiseSchedule().betas[500])


def test_config_round_trip():
    s = NoiseSchedule(500, 0.0001, 0.02, "scaled_linear")
    s2 = NoiseSchedule.from_config(s.to_config())
    assert s2 == s and hash(s2) == hash(s)
    assert torch.equal(s2.alphas_cumprod, s.alphas_cumprod)
    assert "scaled_linear" in repr(s)
    with pytest.raises(ValueError, match="unknown NoiseSchedule config"):
        NoiseSchedule.from_config({"num_train_timesteps": 10, "bogus": 1})


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"beta_schedule": "quadratic"}, ValueError),
        ({"num_train_timesteps": 1}, ValueError),
        ({"num_train_timesteps": 10.0}, TypeError),
        ({"beta_start": 0.02, "beta_end": 0.01}, ValueError),
        ({"beta_start": 0.0}, ValueError),
        ({"beta_end": 1.0}, ValueError),
    ],
)
def test_invalid_schedule_arguments(kwargs, err):
    with pytest.raises(err):
        NoiseSchedule(**kwargs)


def test_add_noise_formula_and_per_sample_t():
    s = NoiseSchedule.paper()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 16, generator=g)
    noise = torch.randn(3, 4, 16, generator=g)
    t = torch.tensor([0, 499, 999])
    xt = s.add_noise(x0, noise, t)
    for i in range(3):
        ab = s.alphas_cumprod[t[i]]
        np.testing.assert_array_equal(xt[i].numpy(), (ab**0.5 * x0[i] + (1 - ab) ** 0.5 * noise[i]).numpy())
    # scalar t = same level for the whole batch
    np.testing.assert_array_equal(s.add_noise(x0, noise, 499)[1].numpy(), xt[1].numpy())
    # float64 input keeps float64
    assert s.add_noise(x0.double(), noise.double(), t).dtype == torch.float64
    # variance preserving for unit-variance data
    big0 = torch.randn(20000, generator=g)
    bign = torch.randn(20000, generator=g)
    assert float(s.add_noise(big0, bign, 700).std()) == pytest.approx(1.0, abs=0.03)


def test_add_noise_invalid():
    s = NoiseSchedule.paper()
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        s.add_noise(x, x, torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        s.add_noise(x, x, -1)
    with pytest.raises(TypeError, match="integers"):
        s.add_noise(x, x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        s.add_noise(x, torch.zeros(2, 4), 3)
    with pytest.raises(ValueError, match="shape"):
        s.add_noise(x, x, torch.tensor([1, 2, 3]))


def test_training_timesteps_uniform_and_paper():
    s = NoiseSchedule.paper()
    g = torch.Generator().manual_seed(0)
    t = s.sample_timesteps(200_000, generator=g)
    assert t.dtype == torch.long and t.shape == (200_000,)
    assert int(t.min()) == 0 and int(t.max()) == 999  # default covers every level the sampler visits
    tp = s.sample_timesteps(200_000, generator=g, mode="paper")
    assert int(tp.min()) == 1 and int(tp.max()) == 998  # randint(1, T-1): never 0 nor 999 (bug 14)
    counts = torch.bincount(t, minlength=1000).double()
    assert float(counts.std() / counts.mean()) < 0.1  # roughly uniform
    # seeded
    a = s.sample_timesteps(16, generator=torch.Generator().manual_seed(3))
    b = s.sample_timesteps(16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="mode"):
        s.sample_timesteps(4, mode="bogus")
    with pytest.raises(ValueError, match="batch_size"):
        s.sample_timesteps(-1)


def test_snr():
    s = NoiseSchedule.paper()
    snr = s.snr(torch.arange(1000))
    assert torch.all(snr[1:] < snr[:-1])
    assert float(snr[0]) == pytest.approx(0.99915 / 0.00085, rel=1e-4)  # float32 alpha_bar

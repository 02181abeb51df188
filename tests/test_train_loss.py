"""The diffusion training loss: the paper's plain MSE and the Min-SNR-gamma weighting."""

import pytest
import torch
from torch import nn

from diffusets_core.diffusion.schedules import NoiseSchedule
from diffusets_core.train.unet import DiffusionLoss


class _EchoNoise(nn.Module):
    """Predicts ``x_t`` itself, so the per-sample error is a known function of the timestep."""

    class _Cfg:
        cond_dropout = 0.0

    cfg = _Cfg()

    def forward(self, x_t, t, text, patient, drop=None):
        return x_t


def _batch(b=256):
    g = torch.Generator().manual_seed(0)
    return {"z": torch.randn(b, 4, 16, generator=g), "text": torch.zeros(b, 8), "patient": torch.zeros(b, 3)}


def _replay(schedule, batch, seed):
    """Draw the same t and noise the loss draws with a generator seeded like the loss's."""
    g = torch.Generator().manual_seed(seed)
    t = schedule.sample_timesteps(batch["z"].shape[0], generator=g, device=torch.device("cpu"), mode="uniform")
    noise = torch.randn(batch["z"].shape, generator=g)
    return t, noise


def test_min_snr_weights_each_sample_by_clipped_snr():
    sched = NoiseSchedule.paper()
    batch = _batch()
    model = _EchoNoise()
    t, noise = _replay(sched, batch, 7)
    x_t = sched.add_noise(batch["z"], noise, t)
    per = (x_t - noise).pow(2).mean(dim=(1, 2))
    abar = sched.alpha_bar(t)
    snr = abar / (1 - abar)
    expected_min_snr = (torch.clamp(snr, max=2.0) / snr * per).mean()
    got_uniform = DiffusionLoss(sched)(model, batch, torch.Generator().manual_seed(7))
    got_min_snr = DiffusionLoss(sched, weighting="min_snr", snr_gamma=2.0)(
        model, batch, torch.Generator().manual_seed(7)
    )
    assert torch.allclose(got_uniform, per.mean(), rtol=1e-5)
    assert torch.allclose(got_min_snr, expected_min_snr, rtol=1e-5)
    # Nearly clean timesteps (SNR >> gamma) are down-weighted, so the weighted loss is smaller here.
    assert got_min_snr < got_uniform


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"weighting": "snr"}, "loss weighting must be one of"),
        ({"weighting": "min_snr", "snr_gamma": 0.0}, "snr_gamma must be > 0"),
    ],
)
def test_bad_loss_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DiffusionLoss(NoiseSchedule.paper(), **kw)


def test_the_trainer_loss_is_the_diffusion_objective():
    """DiffusionLoss is GaussianDiffusion.loss on a batch: same draws (t, noise, drop mask), same number."""
    from diffusets_core.diffusion.gaussian import GaussianDiffusion

    sched = NoiseSchedule.paper()
    batch = _batch(32)
    model = _EchoNoise()
    for kw in ({}, {"loss_weighting": "min_snr", "snr_gamma": 2.0}):
        diffusion = GaussianDiffusion(sched, **kw)
        via_trainer = DiffusionLoss(
            sched, weighting=kw.get("loss_weighting", "uniform"), snr_gamma=kw.get("snr_gamma", 5.0)
        )(model, batch, torch.Generator().manual_seed(3))
        direct = diffusion.loss(
            model, batch["z"], batch["text"], batch["patient"], generator=torch.Generator().manual_seed(3)
        )
        assert torch.equal(via_trainer, direct)


def test_guidance_scale_one_is_one_plain_call_and_the_mix_is_linear():
    from diffusets_core.diffusion.gaussian import GaussianDiffusion

    calls = []

    def unet(x, t, text, patient, drop=None):
        calls.append(None if drop is None else drop.clone())
        out = x.clone()
        if drop is not None:  # a fake network: the conditional branch adds 1, the unconditional 0
            out = out + (~drop[:, 0]).float().reshape(-1, 1, 1)
        return out

    x, t = torch.zeros(2, 4, 8), torch.tensor([5, 5])
    text, patient = torch.zeros(2, 8), torch.zeros(2, 3)
    plain = GaussianDiffusion.guided_eps(unet, x, t, text, patient, 1.0)
    assert len(calls) == 1 and calls[0] is None and torch.equal(plain, x)
    guided = GaussianDiffusion.guided_eps(unet, x, t, text, patient, 3.0, "text")
    assert torch.allclose(guided, x + 3.0)  # eps_u + 3 (eps_c - eps_u) with eps_c - eps_u = 1
    assert not calls[1][:2].any() and calls[1][2:, 0].all()  # conditional half keeps all, the other drops text
    assert not calls[1][2:, 1].any()  # guidance_on="text": the unconditional branch keeps the patient values
    with pytest.raises(ValueError, match="guidance_on"):
        GaussianDiffusion.guided_eps(unet, x, t, text, patient, 3.0, "txt")


def test_gaussian_diffusion_refuses_an_unknown_timestep_mode():
    from diffusets_core.diffusion.gaussian import GaussianDiffusion

    with pytest.raises(ValueError, match="timestep mode"):
        GaussianDiffusion(timestep_mode="unifrom")

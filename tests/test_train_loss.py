"""The diffusion training loss: the paper's plain MSE and the Min-SNR-gamma weighting."""

import pytest
import torch
from torch import nn

from diffusets_core.diffusion.schedules import NoiseSchedule
from diffusets_core.train.stages import DiffusionLoss


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
    got_min_snr = DiffusionLoss(sched, weighting="min_snr", snr_gamma=2.0)(model, batch, torch.Generator().manual_seed(7))
    assert torch.allclose(got_uniform, per.mean(), rtol=1e-5)
    assert torch.allclose(got_min_snr, expected_min_snr, rtol=1e-5)
    # Nearly clean timesteps (SNR >> gamma) are down-weighted, so the weighted loss is smaller here.
    assert got_min_snr < got_uniform


@pytest.mark.parametrize("kw, msg", [({"weighting": "snr"}, "loss weighting must be one of"),
                                     ({"weighting": "min_snr", "snr_gamma": 0.0}, "snr_gamma must be > 0")])
def test_bad_loss_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DiffusionLoss(NoiseSchedule.paper(), **kw)

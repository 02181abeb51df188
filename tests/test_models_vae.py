"""VAE: shapes at small widths, switches, loss reductions, latent scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusets_core.models import VAE, VAEConfig, estimate_scale_factor


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return VAE(VAEConfig.tiny())


def test_tiny_shapes(tiny):
    x = torch.randn(2, 12, 1024)
    z, mean, logvar = tiny.encode(x)
    assert z.shape == mean.shape == logvar.shape == (2, 4, 128)
    assert tiny.decode(z).shape == (2, 12, 1024)
    assert tiny(x).shape == x.shape
    # other lengths divisible by 8 work too
    assert tiny.encode(torch.randn(1, 12, 256))[0].shape == (1, 4, 32)


def test_group_norm_groups_adapt_to_width():
    vae = VAE(VAEConfig(channels=(24, 48, 72), norm_groups=32))
    groups = {m.num_groups for m in vae.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups <= {8, 16, 24}
    assert vae.decode(vae.encode(torch.randn(1, 12, 64))[0]).shape == (1, 12, 64)


def test_layouts_agree(tiny):
    x = torch.randn(2, 12, 128)
    noise = torch.randn(2, 4, 16)
    z1, _, _ = tiny.encode(x, noise)
    z2, _, _ = tiny.encode(x.transpose(1, 2), noise, layout="BLC")
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(tiny.decode(z1, layout="BLC"), tiny.decode(z1).transpose(1, 2))
    with pytest.raises(ValueError, match="layout"):
        tiny.encode(x, layout="LBC")


def test_encoder_formula_and_clamp(tiny):
    x = torch.randn(2, 12, 64)
    noise = torch.randn(2, 4, 8)
    vae = VAE(VAEConfig.tiny(scale_factor=0.5))
    vae.load_state_dict(tiny.state_dict())
    z, mean, logvar = vae.encode(x, noise)
    torch.testing.assert_close(z, (mean + torch.exp(0.5 * logvar) * noise) * 0.5)
    zm, _, _ = vae.encode(x, sample=False)
    torch.testing.assert_close(zm, mean * 0.5)
    vae.encoder[-1].bias.data[4:] = 1e3  # push logvar to the clamp
    _, _, lv = vae.encode(x)
    assert float(lv.detach().max()) == 20.0


def test_decoder_does_not_mutate_input():
    vae = VAE(VAEConfig.tiny(scale_factor=0.25))
    z = torch.randn(2, 4, 16)
    z0 = z.clone()
    vae.decode(z)
    assert torch.equal(z, z0)


def test_scale_factor_round_trip():
    vae = VAE(VAEConfig.tiny())
    assert vae.scale_factor == 1.0  # None = "to be measured", acts as 1
    lat = torch.randn(64, 4, 16) * 0.17
    s = estimate_scale_factor(lat)
    assert s == pytest.approx(1 / 0.17, rel=0.05)
    vae.set_scale_factor(s)
    assert vae.cfg.scale_factor == s and vae.encoder.scale_factor == s
    x = torch.randn(1, 12, 128)
    noise = torch.randn(1, 4, 16)
    z, mean, logvar = vae.encode(x, noise)
    torch.testing.assert_close(vae.decode(z), vae.decoder.decode_unscaled(z / s))
    with pytest.raises(ValueError):
        vae.set_scale_factor(0.0)
    with pytest.raises(ValueError):
        estimate_scale_factor(torch.zeros(3, 4))


@pytest.mark.parametrize("reduction", ["mean", "paper"])
def test_loss_reductions(tiny, reduction):
    torch.manual_seed(1)
    x = torch.randn(3, 12, 128)
    noise = torch.randn(3, 4, 16)
    out = tiny.loss(x, kl_weight=0.5, noise=noise, reduction=reduction)
    mean, logvar = tiny.encoder.moments(x)
    x_hat = tiny.decoder.decode_unscaled(mean + torch.exp(0.5 * logvar) * noise)
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar)
    if reduction == "mean":
        torch.testing.assert_close(out["recon"], ((x_hat - x) ** 2).mean())
        torch.testing.assert_close(out["kl"], kl.sum() / (3 * 12 * 128))
    else:
        torch.testing.assert_close(out["recon"], ((x_hat - x) ** 2).sum() / 3)
        torch.testing.assert_close(out["kl"], kl.sum(1).mean())
    torch.testing.assert_close(out["loss"], out["recon"] + 0.5 * out["kl"])
    out["loss"].backward()
    grads = [p.grad for p in tiny.parameters() if p.requires_grad]
    tiny.zero_grad()
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


def test_attention_norm_switch_and_dead_norm():
    x = torch.randn(1, 12, 64)
    vae = VAE(VAEConfig.tiny())
    vae_n = VAE(VAEConfig.tiny(attn_norm=True))
    vae_n.load_state_dict(vae.state_dict())
    noise = torch.randn(1, 4, 8)
    # paper: the attention GroupNorm is dead, so changing it changes nothing
    z0 = vae.encode(x, noise)[0]
    vae.encoder[13].groupnorm.weight.data.mul_(3.0)
    torch.testing.assert_close(vae.encode(x, noise)[0], z0)
    assert not torch.allclose(vae_n.encode(x, noise)[0], z0)


def test_config_round_trip_and_validation():
    cfg = VAEConfig.paper()
    assert cfg.scale_factor == 0.18215 and cfg.loss_reduction == "paper"
    assert VAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        VAEConfig(loss_reduction="sum")
    with pytest.raises(ValueError):
        VAEConfig.from_dict({"bogus": 1})


def test_channel_latent_norm_round_trip_and_training_stats(tmp_path):
    """latent_norm="channel": encode standardises each channel with the stored statistics, decode inverts it,
    and train_vae measures them so the training latents come out zero-mean, unit-variance per channel."""
    torch.manual_seed(0)
    vae = VAE(VAEConfig.tiny(norm_groups=8, latent_norm="channel"))
    x = torch.randn(3, 12, 64)
    raw, _, _ = vae.encode(x, sample=False)
    vae.set_latent_stats([0.5, -1.0, 0.0, 2.0], [2.0, 0.5, 1.0, 4.0])
    z, _, _ = vae.encode(x, sample=False)
    mean = torch.tensor([0.5, -1.0, 0.0, 2.0])[None, :, None]
    std = torch.tensor([2.0, 0.5, 1.0, 4.0])[None, :, None]
    torch.testing.assert_close(z, (raw - mean) / std)
    torch.testing.assert_close(vae.decode(z), vae.decoder(raw))
    again = VAE(VAEConfig.from_dict(vae.cfg.to_dict()))
    again.load_state_dict(vae.state_dict())
    torch.testing.assert_close(again.encode(x, sample=False)[0], z)
    with pytest.raises(ValueError, match="latent_std"):
        vae.set_latent_stats([0.0] * 4, [1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="latent_norm"):
        VAEConfig(latent_norm="batch")

    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.vae import train_vae
    from tests.data_trees import make_tiny_run

    recs = [
        {
            "subject_id": 10000032 + i % 12,
            "study_id": 40000000 + i,
            "hr": 60.0 + i,
            "seed": i,
            "reports": ["Sinus rhythm", "Normal ECG"],
        }
        for i in range(24)
    ]
    run = make_tiny_run(tmp_path, recs)
    train_vae(
        run,
        {"channels": [32, 32, 32], "norm_groups": 8, "latent_norm": "channel"},
        {"max_steps": 3, "batch_size": 8, "val_every": 3, "checkpoint_every": 3, "progress": False, "device": "cpu"},
        seed=0,
    )
    encode_latents(run, device="cpu")
    z = np.load(run / "latents" / "train.npy")
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 2), ddof=1), 1.0, atol=2e-3)


def test_unused_parameters_are_exactly_those_without_gradient():
    # DDP (torchrun train-vae) refuses parameters that receive no gradient: the list must be exact
    from diffusets_core.models.vae import VAE, VAEConfig

    for kw in (
        dict(channels=[8, 8, 16], norm_groups=4),
        dict(channels=[8, 8, 16], norm_groups=4, derived_leads=True, latent_channels=8),
    ):
        torch.manual_seed(0)
        v = VAE(VAEConfig(**kw))
        v.loss(torch.randn(2, 12, 1024), kl_weight=1e-3)["loss"].backward()
        no_grad = sorted(n for n, p in v.named_parameters() if p.grad is None)
        assert no_grad and v.unused_parameter_names() and sorted(v.unused_parameter_names()) == no_grad
        assert v.freeze_unused_parameters() == no_grad
        assert all(not p.requires_grad for n, p in v.named_parameters() if n in no_grad)

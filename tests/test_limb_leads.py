"""Einthoven / Goldberger identities: derivation, measurement, and the VAE that keeps them by construction."""

import numpy as np
import pytest
import torch

from diffusets_core.data.leads import CANONICAL_LEADS
from diffusets_core.data.limb_leads import INDEPENDENT_LEADS, derive_limb_leads, independent_leads, limb_identity_error
from diffusets_core.eval.reconstruction import physical_consistency
from diffusets_core.models.vae import VAE, VAEConfig

IDX = {n: i for i, n in enumerate(CANONICAL_LEADS)}


def electrodes(n=3, length=64, seed=0):
    """12-lead signals built the way an ECG machine does, from three limb electrode potentials."""
    rng = np.random.default_rng(seed)
    ra, la, ll = rng.normal(size=(3, n, length))
    chest = rng.normal(size=(n, 6, length))
    x = np.zeros((n, 12, length))
    x[:, IDX["I"]], x[:, IDX["II"]], x[:, IDX["III"]] = la - ra, ll - ra, ll - la
    x[:, IDX["aVR"]] = ra - (la + ll) / 2
    x[:, IDX["aVL"]] = la - (ra + ll) / 2
    x[:, IDX["aVF"]] = ll - (ra + la) / 2
    x[:, 6:] = chest
    return x


def test_derivation_matches_electrode_definitions():
    x = electrodes()
    np.testing.assert_allclose(derive_limb_leads(independent_leads(x)), x, atol=1e-12)
    assert limb_identity_error(x).max() < 1e-9
    xt = torch.from_numpy(x).float()
    torch.testing.assert_close(derive_limb_leads(independent_leads(xt)), xt, atol=1e-5, rtol=0)
    assert INDEPENDENT_LEADS == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def test_identity_error_in_microvolts():
    x = electrodes(n=2, length=1000)
    x[0, IDX["III"]] += 0.010  # a 10 µV offset on one of the four dependent leads: RMS over 4 leads = 5 µV
    err = limb_identity_error(x)
    np.testing.assert_allclose(err, [5.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 12, L\)"):
        limb_identity_error(x[:, :8])
    pc = physical_consistency(np.concatenate([x, 11.0 * np.ones((1, 12, 1000))]))
    assert pc["beyond_10mv"] == pytest.approx(1 / 3)


def test_vae_with_derived_leads_keeps_identities_and_api():
    torch.manual_seed(0)
    vae = VAE(VAEConfig.tiny(derived_leads=True, norm_groups=8))
    assert vae.encoder[0].in_channels == 8 and vae.decoder[-1].out_channels == 8
    x = torch.from_numpy(electrodes(n=2, length=64)).float()
    z, mean, _ = vae.encode(x, sample=False)
    y = vae.decode(z)
    assert y.shape == x.shape
    assert limb_identity_error(y).max() < 1e-3
    # the dependent leads of the input are not read: changing them changes nothing
    x2 = x.clone()
    x2[:, IDX["aVR"]] += 1.0
    torch.testing.assert_close(vae.encode(x2, sample=False)[1], mean)
    out = vae.loss(x, kl_weight=0.1, noise=torch.zeros_like(mean))
    assert out["x_hat"].shape == x.shape
    with pytest.raises(ValueError, match="derived_leads"):
        VAEConfig(in_channels=8, derived_leads=True)


def test_derivative_weight_adds_the_slope_error():
    torch.manual_seed(0)
    base = VAE(VAEConfig.tiny(norm_groups=8))
    x = torch.randn(2, 12, 64)
    noise = torch.zeros(2, 4, 8)
    a = base.loss(x, noise=noise)
    withd = VAE(VAEConfig.tiny(norm_groups=8, derivative_weight=2.0))
    withd.load_state_dict(base.state_dict())
    b = withd.loss(x, noise=noise)
    slope = (a["x_hat"].diff(dim=-1) - x.diff(dim=-1)).pow(2).mean()
    torch.testing.assert_close(b["recon"], a["recon"] + 2.0 * slope)
    with pytest.raises(ValueError, match="derivative_weight"):
        VAEConfig(derivative_weight=-1)

"""Text standardisation (text/standardize.py) and the FiLM U-Net's subspace whitening (text_subspace > 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusets_core.models.factory import build_unet
from diffusets_core.models.film_unet import FiLMUNetConfig
from diffusets_core.text.standardize import text_standardizer


def _vectors(n=200, d=12, rank=3, seed=0):
    """n vectors with a common component and variation in ``rank`` directions only (like report embeddings)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0].T  # (rank, d) orthonormal
    common = rng.standard_normal(d)
    return common + (rng.standard_normal((n, rank)) * [0.06, 0.02, 0.006][:rank]) @ basis, basis, common


def test_per_dimension_form_is_diagonal_and_guards_constant_dimensions():
    x, _, _ = _vectors()
    x[:, 5] = 0.25  # a constant dimension
    mean, tf, info = text_standardizer(x, 0.0)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-5)
    assert np.allclose(tf, np.diag(np.diag(tf))) and tf[5, 5] == 1.0 and info["components"] == 12
    z = (x - mean) @ tf
    keep = np.arange(12) != 5
    np.testing.assert_allclose(z[:, keep].std(0), 1.0, rtol=1e-4)


def test_subspace_whitening_removes_unseen_directions_and_whitens_the_seen_ones():
    x, basis, common = _vectors()
    mean, tf, info = text_standardizer(x, 0.999)
    assert info["components"] == 3 and info["kept_variance"] >= 0.999
    z = (x - mean) @ tf
    # within the subspace: whitened (covariance = the projector onto it, unit variance along each direction)
    cov = np.cov(z.T, bias=True)
    np.testing.assert_allclose(cov, basis.T @ basis, atol=1e-4)
    # a move orthogonal to every training direction is removed, whereas per-dimension standardisation
    # amplifies it (the failure mode of paraphrased reports)
    ortho = np.linalg.qr(np.c_[basis.T, np.random.default_rng(1).standard_normal(12)])[0][:, 3]
    v = x[0] + 0.05 * ortho
    np.testing.assert_allclose((v - mean) @ tf, z[0], atol=1e-4)
    m0, tf0, _ = text_standardizer(x, 0.0)
    assert np.linalg.norm((v - m0) @ tf0 - (x[0] - m0) @ tf0) > 10 * 0.05
    # keeping less variance keeps fewer directions
    assert text_standardizer(x, 0.5)[2]["components"] == 1


@pytest.mark.parametrize(
    "x, v, match",
    [(np.ones((1, 4)), 0.0, "N >= 2"), (np.ones((3, 4)), 1.0, r"\[0, 1\)"), (np.full((3, 4), np.nan), 0.0, "finite")],
)
def test_bad_input_is_refused(x, v, match):
    with pytest.raises(ValueError, match=match):
        text_standardizer(x, v)


def test_film_unet_applies_the_whitening_from_its_buffers():
    cfg = FiLMUNetConfig(
        text_dim=12,
        base_channels=8,
        channel_mults=(1, 2),
        attn_levels=(1,),
        emb_dim=16,
        attn_heads=2,
        norm_groups=4,
        cond_dropout=0.1,
        cond_dropout_mode="separate",
        text_subspace=0.99,
    )
    torch.manual_seed(0)
    m = build_unet(cfg)
    x, basis, _ = _vectors(d=12)
    mean, tf, _ = text_standardizer(x, 0.99)
    m.set_text_stats(torch.from_numpy(mean), torch.ones(12), whiten=torch.from_numpy(tf))
    z, t, pat = torch.randn(2, 4, 16), torch.tensor([5, 500]), torch.rand(2, 3)
    text = torch.from_numpy(x[:2]).float()
    with torch.no_grad():  # the zero-initialised layers would hide every input
        g = torch.Generator().manual_seed(1)
        for n, p in m.named_parameters():
            if p.dim() > 0 and "null" not in n and bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        out = m(z, t, text, pat)
        # a direction outside the subspace does not change the output
        ortho = torch.from_numpy(np.linalg.qr(np.c_[basis.T[:, :2], np.eye(12)[:, :1]])[0][:, 2]).float()
        resid = ortho - torch.from_numpy(basis.T @ (basis @ ortho.numpy())).float()
        torch.testing.assert_close(m(z, t, text + 0.05 * resid, pat), out, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(m(z, t, text + 0.05 * torch.from_numpy(basis[0]).float(), pat), out, atol=1e-4)
    m2 = build_unet(cfg)
    m2.load_state_dict(m.state_dict())  # the transform is a buffer: saved and applied at generation
    torch.testing.assert_close(m2.text_whiten, m.text_whiten)
    with pytest.raises(ValueError, match="no place"):
        build_unet(
            FiLMUNetConfig(
                text_dim=12,
                base_channels=8,
                channel_mults=(1, 2),
                attn_levels=(1,),
                emb_dim=16,
                attn_heads=2,
                norm_groups=4,
            )
        ).set_text_stats(torch.zeros(12), torch.ones(12), whiten=torch.eye(12))
    with pytest.raises(ValueError, match="text_subspace"):
        FiLMUNetConfig(text_subspace=1.0)

"""ECG-text CLIP feature extractor: loss, tiny training run on separable toy data, retrieval metric."""

import math

import numpy as np
import pytest
import torch

from diffusets_core.eval import clip as C
from diffusets_core.train.loop import TrainConfig

TINY = dict(filters=[8, 16], blocks=[1, 1], kernel=5, group_width=8, stem=8, dropout=0.0)


def _toy(n: int, seed: int, n_cls: int = 4, L: int = 256):
    """Class k: a sinusoid of frequency (k + 1) cycles per record on all leads; its "report" is a fixed
    random 12-d vector per class (so reports are duplicated many times, like real reports)."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(123).normal(size=(n_cls, 12)).astype(np.float32)
    y = rng.integers(0, n_cls, n)
    t = np.linspace(0, 1, L, endpoint=False)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    x = np.sin(2 * np.pi * (y[:, None, None] + 1) * 2 * t[None, None, :] + phase)
    x = (x * rng.uniform(0.5, 1.5, (n, 12, 1)) + 0.1 * rng.normal(size=(n, 12, L))).astype(np.float32)
    return x, protos[y], y


def test_paper_size_matches_reference():
    m = C.ECGTextCLIP(C.ClipConfig.paper())
    n_enc = sum(p.numel() for p in m.encoder.parameters())
    n_all = sum(p.numel() for p in m.parameters())
    assert abs(n_enc / 1e6 - 18.66) < 0.05 and abs(n_all / 1e6 - 22.0) < 0.1
    assert m.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert m.encoder(torch.zeros(1, 12, 1024)).shape == (1, 1024)


def test_loss_dedup_targets():
    torch.manual_seed(0)
    t = torch.randn(3, 5)
    scale = torch.tensor(math.log(100.0))
    # no duplicates: soft targets reduce to the usual identity targets
    assert C.clip_loss(t, t, scale, text_raw=t) == pytest.approx(float(C.clip_loss(t, t, scale)), abs=1e-6)
    # row 3 duplicates row 0: targets put 1/2 on each copy, so a perfect embedding reaches the entropy bound
    # (2 rows x log 2 / 4 rows) and its gradient vanishes; plain InfoNCE would keep pushing the copies apart
    text = torch.cat([t, t[:1]])
    e = (text + 0.05 * torch.randn_like(text)).requires_grad_(True)
    dedup = C.clip_loss(e, text, scale, text_raw=text)
    assert float(dedup.detach()) == pytest.approx(2 * math.log(2) / 4, abs=0.02)
    (g_dedup,) = torch.autograd.grad(dedup, e)
    (g_plain,) = torch.autograd.grad(C.clip_loss(e, text, scale), e)
    assert g_dedup.norm() < g_plain.norm()


def test_tiny_clip_trains_and_retrieves(tmp_path):
    xtr, ttr, _ = _toy(256, 0)
    xva, tva, _ = _toy(64, 1)
    xte, tte, yte = _toy(80, 2)
    cfg = C.ClipConfig(text_dim=12, embed_dim=16, text_hidden=32, encoder=dict(TINY))
    tcfg = TrainConfig(
        max_steps=40,
        batch_size=32,
        lr=3e-3,
        weight_decay=1e-3,
        ema_decay=0.9,
        val_every=20,
        checkpoint_every=1000,
        progress=False,
        seed=0,
    )
    res = C.train_clip(xtr, ttr, tmp_path, cfg, tcfg, val=(xva, tva))
    assert (tmp_path / "best.pt").is_file() and res.steps == 40
    f = C.ClipFeaturizer.from_checkpoint(tmp_path)
    e, t = f.ecg_features(xte), f.text_features(tte)
    assert e.shape == (80, 16) and t.shape == (80, 16)
    r = C.retrieval_accuracy(e, t)
    assert r["n_unique_texts"] == 4
    assert r["ecg_to_text_top1"] > r["chance_ecg_to_text_top1"] + 0.2
    assert r["text_to_ecg_top1"] > r["chance_text_to_ecg_top1"] + 0.2
    # last.pt (full training state) loads too, with its EMA weights; features are deterministic in eval mode
    g = C.ClipFeaturizer.from_checkpoint(tmp_path / "last.pt")
    assert g.ecg_features(xte[:4]).shape == (4, 16)
    assert np.array_equal(f.ecg_features(xte[:4]), f.ecg_features(xte[:4]))


def test_retrieval_accounts_for_duplicates():
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(3, 8))
    keys = np.array([0, 0, 0, 1, 1, 2])
    t = protos[keys]
    e = t + 0.01 * rng.normal(size=t.shape)
    r = C.retrieval_accuracy(e, t)
    assert r["text_to_ecg_top1"] == 1.0 and r["ecg_to_text_top1"] == 1.0
    assert r["chance_ecg_to_text_top1"] == pytest.approx(1 / 3)
    assert r["chance_text_to_ecg_top1"] == pytest.approx((3 * 3 / 6 + 2 * 2 / 6 + 1 / 6) / 6)
    # explicit string keys give the same answer
    assert C.retrieval_accuracy(e, t, text_keys=[f"r{k}" for k in keys]) == r
    # random features: near chance
    r0 = C.retrieval_accuracy(rng.normal(size=(6, 8)), t)
    assert 0.0 <= r0["text_to_ecg_top5"] <= 1.0


def test_clip_weights_do_not_depend_on_the_global_rng(tmp_path):
    """Same data and seed -> same CLIP, whatever ran before (the benchmark and the guidance sweep call it at
    different points of a session)."""
    xtr, ttr, _ = _toy(64, 0)
    cfg = C.ClipConfig(text_dim=12, embed_dim=16, text_hidden=32, encoder=dict(TINY))
    tcfg = TrainConfig(max_steps=2, batch_size=32, lr=3e-3, val_every=2, checkpoint_every=1000, progress=False, seed=4)
    torch.manual_seed(1)
    C.train_clip(xtr, ttr, tmp_path / "a", cfg, tcfg)
    torch.manual_seed(2)
    torch.rand(17)
    C.train_clip(xtr, ttr, tmp_path / "b", cfg, tcfg)
    a = C.ClipFeaturizer.from_checkpoint(tmp_path / "a" / "last.pt").ecg_features(xtr[:4])
    b = C.ClipFeaturizer.from_checkpoint(tmp_path / "b" / "last.pt").ecg_features(xtr[:4])
    np.testing.assert_array_equal(a, b)

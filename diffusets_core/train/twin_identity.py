"""Teach the reference encoder who the patient is before the twin learns to draw them: contrastive pre-training.

Fine-tuned through the diffusion loss alone, a new reference encoder learns next to nothing in a few hundred steps:
knowing the patient's heart lowers the noise-prediction error only a little at any one timestep, and the encoder
starts from zero (measured on the cpu profile: after 300 steps, at one or ten times the U-Net's learning rate, its
vector was a fifteenth of the report's and the twin's ECGs were no closer to their subject than without it). So the
encoder is first trained to *recognise* a subject: two records of one subject (other findings, heart rate, noise
and report) must map to nearby vectors and records of other subjects to distant ones -- the NT-Xent / InfoNCE loss
of SimCLR (Chen et al. 2020, §2.1) with records of one subject as the positive pairs, as ECGTwin's individual base
extractor is trained contrastively (arXiv 2508.02720). Because the positives differ in their findings, the vector
is pushed to carry what stays the same within a patient and to ignore the findings -- what a twin should copy and
what it should not.

The representation is the encoder's pooled hidden vector (the input of its zero-initialised last layer, which
stays zero: the twin still starts as the base U-Net); a projection head (Chen et al. 2020, §4.2) is used for the
loss and then discarded.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.twin import ReferenceEncoder

log = logging.getLogger(__name__)

__all__ = ["identity_vectors", "pretrain_reference_encoder", "identification_accuracy"]


def identity_vectors(encoder: ReferenceEncoder, z: torch.Tensor) -> torch.Tensor:
    """(B, emb_dim) the encoder's hidden vector of latents ``z`` (B, C, L): its MLP up to the last layer."""
    h = encoder.features(z)
    pooled = torch.cat([h.mean(dim=-1), h.std(dim=-1, unbiased=False)], dim=-1)
    return encoder.mlp[:-1](pooled)


def _pairs(subjects: np.ndarray, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` positive pairs (row indices), each of a different subject with two records or more."""
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(subjects):
        rows.setdefault(str(s), []).append(i)
    many = [r for r in rows.values() if len(r) >= 2]
    pick = rng.choice(len(many), size=min(batch, len(many)), replace=False)
    a, b = zip(*(tuple(rng.choice(many[k], size=2, replace=False)) for k in pick))
    return np.array(a), np.array(b)


def nt_xent(u: torch.Tensor, v: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The NT-Xent loss of positive pairs ``(u[i], v[i])`` (B, D) against the other 2B - 2 vectors of the batch
    (Chen et al. 2020, eq. 1), averaged over both directions."""
    x = F.normalize(torch.cat([u, v]), dim=1)
    sim = x @ x.T / temperature
    n = u.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    return F.cross_entropy(sim, target)


def pretrain_reference_encoder(
    encoder: ReferenceEncoder,
    z: np.ndarray,
    subjects: np.ndarray,
    *,
    steps: int = 300,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``encoder`` (in place, its last layer left as it is) to tell subjects apart (module docstring) on latents
    ``z`` (N, C, L) of records whose subject ids are ``subjects`` (N,). Returns the loss of every step.

    Raises:
        ValueError: ``steps`` < 1, or fewer than two subjects with two records each (no contrast to learn).
    """
    if int(steps) < 1:
        raise ValueError(f"contrastive pre-training needs steps >= 1, got {steps}")
    rng = np.random.default_rng(seed)
    counts = {}
    for s in subjects:
        counts[str(s)] = counts.get(str(s), 0) + 1
    if sum(c >= 2 for c in counts.values()) < 2:
        raise ValueError("contrastive pre-training needs at least two subjects with two records each")
    device = next(encoder.parameters()).device
    torch.manual_seed(seed)
    head = nn.Sequential(
        nn.Linear(encoder.cfg.emb_dim, encoder.cfg.emb_dim), nn.SiLU(), nn.Linear(encoder.cfg.emb_dim, 64)
    )
    head.to(device)
    trained = [p for n, p in encoder.named_parameters() if not n.startswith("mlp.2")] + list(head.parameters())
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(device)
    losses = []
    encoder.train()
    for _ in range(int(steps)):
        a, b = _pairs(subjects, batch, rng)
        loss = nt_xent(head(identity_vectors(encoder, zt[a])), head(identity_vectors(encoder, zt[b])))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def identification_accuracy(encoder: ReferenceEncoder, z: np.ndarray, subjects: np.ndarray) -> float:
    """Leave-one-out nearest-neighbour identification: the share of records (of subjects with two records or more)
    whose nearest other record (cosine of :func:`identity_vectors`) belongs to the same subject. Chance is about
    (records per subject - 1) / (N - 1)."""
    device = next(encoder.parameters()).device
    was = encoder.training
    encoder.eval()
    v = F.normalize(identity_vectors(encoder, torch.from_numpy(np.asarray(z, np.float32)).to(device)), dim=1)
    encoder.train(was)
    sim = v @ v.T
    sim.fill_diagonal_(float("-inf"))
    nearest = sim.argmax(dim=1).cpu().numpy()
    subj = np.asarray(subjects).astype(str)
    has_pair = np.array([(subj == s).sum() >= 2 for s in subj])
    return float((subj[nearest] == subj)[has_pair].mean()) if has_pair.any() else math.nan

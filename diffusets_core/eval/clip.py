"""The paper's "CLIP" feature extractor: an ECG–text contrastive model (the authors' ``clip/clip_model.py``,
adapted from METS; book/reference_implementation.md#the-clip-model).

* :class:`Net1D` — 1-D ResNeXt with squeeze-excitation (Hong et al.), the paper's ECG encoder. Paper size
  (:data:`PAPER_NET1D`): filters [64,128,128,256,256,512,1024], blocks [2,2,2,3,3,4,4], kernel 16, group
  width 16, dropout 0.5 -> 18.7 M parameters. The CPU profile (:data:`CPU_NET1D`) is a compact
  [16,32,48,64] x [1,1,1,1], kernel 7 version (~0.2 M parameters, ~0.5 s per batch of 64
  on 2 busy cores) that trains in a few minutes on 2 cores on ~3,000 ECGs.
* :class:`ECGTextCLIP` — Net1D + ``Linear(width -> embed_dim)`` ECG projector, text projector MLP
  ``D -> hidden -> ReLU -> embed_dim`` (paper: 1536 -> 2048 -> 64), learnable logit scale initialised
  ``log(1 / 0.07)`` (clamped at log 100 as in CLIP), symmetric InfoNCE.
* Duplicate reports: many records share a report, so in a batch two "different" pairs can have identical
  text. Plain InfoNCE would push such an ECG away from its own (identical) text. :func:`clip_loss` uses soft
  targets spreading each row's probability mass over all columns with the same text vector (reduces to the
  usual identity targets when there are no duplicates).
* :func:`train_clip` uses the shared :class:`~diffusets_core.train.loop.Trainer` on the TRAINING split only;
  ``best.pt`` is chosen on the validation loss. :class:`ClipFeaturizer` reloads it.

Features for FID / precision-recall are the ECG projector outputs (64-d, not normalised) as in the paper;
the CLIP score uses L2-normalised ECG and text projections.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_trained
from ..fileio import l2_normalize
from ..train.loop import TensorSource, Trainer, build_seeded
from .judge_training import judge_train_config

__all__ = [
    "PAPER_NET1D",
    "CPU_NET1D",
    "Net1D",
    "ClipConfig",
    "ECGTextCLIP",
    "clip_loss",
    "train_clip",
    "ClipFeaturizer",
    "retrieval_accuracy",
]

PAPER_NET1D: dict[str, Any] = dict(
    filters=[64, 128, 128, 256, 256, 512, 1024],
    blocks=[2, 2, 2, 3, 3, 4, 4],
    kernel=16,
    group_width=16,
    stem=64,
    dropout=0.5,
)
CPU_NET1D: dict[str, Any] = dict(
    filters=[16, 32, 48, 64], blocks=[1, 1, 1, 1], kernel=7, group_width=16, stem=16, dropout=0.1
)


class _SamePadConv(nn.Module):
    """Conv1d with TensorFlow-style SAME padding (output length = ceil(L / stride))."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.k, self.stride = k, stride
        self.conv = nn.Conv1d(cin, cout, k, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[-1]
        out = (L + self.stride - 1) // self.stride
        pad = max(0, (out - 1) * self.stride + self.k - L)
        return self.conv(F.pad(x, (pad // 2, pad - pad // 2)))


class _Block(nn.Module):
    """BN-Swish-Drop-Conv1x1 -> BN-Swish-Drop-grouped Conv k (stride) -> BN-Swish-Drop-Conv1x1 -> SE, + shortcut."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, group_width: int, dropout: float):
        super().__init__()
        groups = max(1, cout // group_width)
        self.cin, self.cout, self.stride = cin, cout, stride
        act = nn.SiLU
        self.body = nn.Sequential(
            nn.BatchNorm1d(cin),
            act(),
            nn.Dropout(dropout),
            nn.Conv1d(cin, cout, 1),
            nn.BatchNorm1d(cout),
            act(),
            nn.Dropout(dropout),
            _SamePadConv(cout, cout, k, stride, groups),
            nn.BatchNorm1d(cout),
            act(),
            nn.Dropout(dropout),
            nn.Conv1d(cout, cout, 1),
        )
        self.se = nn.Sequential(nn.Linear(cout, cout // 2), act(), nn.Linear(cout // 2, cout), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        h = h * self.se(h.mean(dim=-1))[:, :, None]
        s = x
        if self.stride > 1:
            L = h.shape[-1]
            s = F.max_pool1d(F.pad(s, (0, L * self.stride - s.shape[-1])), self.stride, self.stride, ceil_mode=True)
        if self.cout != self.cin:  # symmetric zero channel padding
            d = self.cout - self.cin
            s = F.pad(s, (0, 0, d // 2, d - d // 2))
        return h + s


class Net1D(nn.Module):
    """1-D ResNeXt + SE encoder; ``forward(x (B, 12, L)) -> (B, filters[-1])`` (global average over time)."""

    def __init__(
        self,
        in_channels: int = 12,
        filters: Sequence[int] = CPU_NET1D["filters"],
        blocks: Sequence[int] = CPU_NET1D["blocks"],
        kernel: int = 7,
        group_width: int = 16,
        stem: int = 16,
        dropout: float = 0.1,
    ):
        super().__init__()
        if len(filters) != len(blocks):
            raise ValueError("filters and blocks must have the same length")
        self.stem = nn.Sequential(_SamePadConv(in_channels, stem, kernel, 2), nn.BatchNorm1d(stem), nn.SiLU())
        layers, cin = [], stem
        for f, nb in zip(filters, blocks):
            for b in range(nb):
                layers.append(_Block(cin, f, kernel, 2 if b == 0 else 1, min(group_width, f), dropout))
                cin = f
        self.stages = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=-1)


@dataclass
class ClipConfig:
    text_dim: int = 384
    embed_dim: int = 64
    text_hidden: int = 256  # paper 2048
    encoder: dict = field(default_factory=lambda: dict(CPU_NET1D))
    dedup_targets: bool = True  # soft InfoNCE targets over identical text vectors

    @classmethod
    def paper(cls, text_dim: int = 1536) -> ClipConfig:
        return cls(text_dim=text_dim, embed_dim=64, text_hidden=2048, encoder=dict(PAPER_NET1D))


class ECGTextCLIP(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Net1D(**cfg.encoder)
        self.ecg_projector = nn.Linear(self.encoder.out_dim, cfg.embed_dim)
        self.text_projector = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.text_hidden), nn.ReLU(), nn.Linear(cfg.text_hidden, cfg.embed_dim)
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_ecg(self, x: torch.Tensor) -> torch.Tensor:
        return self.ecg_projector(self.encoder(x))

    def encode_text(self, t: torch.Tensor) -> torch.Tensor:
        return self.text_projector(t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_ecg(x), self.encode_text(t)


def clip_loss(
    ecg_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, text_raw: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE. With ``text_raw`` given, pairs sharing an identical text vector count as positives."""
    e, t = F.normalize(ecg_emb.float(), dim=-1), F.normalize(text_emb.float(), dim=-1)
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * e @ t.T
    if text_raw is None:
        target = torch.eye(len(e), device=e.device)
    else:
        same = (text_raw[:, None, :] == text_raw[None, :, :]).all(dim=-1).float()
        target = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T))


def _clip_loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
    m = model.module if hasattr(model, "module") else model
    e, t = model(batch["x"], batch["text"])
    return clip_loss(e, t, m.logit_scale, batch["text"] if m.cfg.dedup_targets else None)


def as_float_tensor(x: Any) -> torch.Tensor:
    """``x`` (a tensor or anything numpy reads) as a float32 tensor; numpy input is not copied when already
    C-contiguous float32."""
    if isinstance(x, torch.Tensor):
        return x.float()
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def train_clip(
    signals_train: Any,
    text_train: Any,
    out_dir: str | os.PathLike,
    cfg: ClipConfig | None = None,
    train_cfg: Any = None,
    *,
    val: tuple[Any, Any] | None = None,
    meta: dict | None = None,
):
    """Train :class:`ECGTextCLIP` on the TRAINING split with the shared Trainer.

    ``signals_train`` ``(N, 12, L)`` mV, ``text_train`` ``(N, D)`` text vectors; ``val = (signals, text)`` from
    the validation split selects ``best.pt`` (lowest validation InfoNCE). ``train_cfg`` is a
    :class:`~diffusets_core.train.loop.TrainConfig` (default: :func:`.judge_training.judge_train_config` with
    weight decay 1e-3, the paper's optimiser).
    Returns the Trainer's ``TrainResult``; load with :meth:`ClipFeaturizer.from_checkpoint`.
    """
    text_train = as_float_tensor(text_train)
    cfg = cfg or ClipConfig(text_dim=int(text_train.shape[1]))
    if cfg.text_dim != text_train.shape[1]:
        raise ValueError(f"ClipConfig.text_dim={cfg.text_dim} but text vectors are {text_train.shape[1]}-d")
    train_cfg = train_cfg or judge_train_config(weight_decay=1e-3)
    model = build_seeded(lambda: ECGTextCLIP(cfg), train_cfg.seed)
    src = TensorSource({"x": as_float_tensor(signals_train), "text": text_train})
    vsrc = TensorSource({"x": as_float_tensor(val[0]), "text": as_float_tensor(val[1])}) if val is not None else None
    m = {
        "kind": "ecg_text_clip",
        "clip_config": asdict(cfg),
        "n_train": len(src),
        "n_val": len(vsrc) if vsrc else 0,
        **(meta or {}),
    }
    return Trainer(model, _clip_loss_fn, src, out_dir, train_cfg, val=vsrc, meta=m).fit()


class ClipFeaturizer:
    """A trained :class:`ECGTextCLIP` in eval mode; numpy in, numpy out."""

    def __init__(self, model: ECGTextCLIP, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu") -> ClipFeaturizer:
        """Load ``best.pt`` / ``last.pt`` (or a run folder, which means its ``best.pt``)."""
        cfg, state = load_trained(path, "clip_config", "an ECG-text CLIP")
        model = ECGTextCLIP(ClipConfig(**cfg))
        model.load_state_dict(state)
        return cls(model, device)

    @torch.no_grad()
    def _run(self, fn, x: Any, batch_size: int, normalize: bool) -> np.ndarray:
        x = as_float_tensor(x)
        outs = []
        for i in range(0, len(x), batch_size):
            o = fn(x[i : i + batch_size].to(self.device)).float()
            outs.append((F.normalize(o, dim=-1) if normalize else o).cpu())
        if not outs:
            return np.zeros((0, self.model.cfg.embed_dim), np.float32)
        return torch.cat(outs).numpy()

    def ecg_features(self, x: Any, batch_size: int = 256, normalize: bool = False) -> np.ndarray:
        """``(N, 12, L)`` -> ``(N, embed_dim)`` ECG projector output (unnormalised by default, as in the paper)."""
        return self._run(self.model.encode_ecg, x, batch_size, normalize)

    def text_features(self, t: Any, batch_size: int = 1024, normalize: bool = False) -> np.ndarray:
        return self._run(self.model.encode_text, t, batch_size, normalize)


def _keys(v: np.ndarray) -> np.ndarray:
    """Integer id per distinct row (identical text vectors -> same id)."""
    _, inv = np.unique(np.ascontiguousarray(v), axis=0, return_inverse=True)
    return inv.ravel()


def retrieval_accuracy(
    ecg_feat: Any, text_feat: Any, text_keys: Sequence | None = None, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Top-k retrieval on a held-out split, duplicates-aware.

    ``text_feat`` row i is the text of ECG i. ``text_keys`` identifies identical reports (strings or ids);
    default: identical text feature rows. text->ECG: a hit when any of the k ECGs ranked highest for text i
    has the same key as i. ECG->text: candidates are the DISTINCT texts (duplicates would otherwise fill the
    top k with the same report); a hit when the key of ECG i is among the top k. Chance levels are returned
    beside each accuracy (``chance_*``), plus ``n`` and ``n_unique_texts``.
    """
    e = np.asarray(ecg_feat, dtype=np.float64)
    t = np.asarray(text_feat, dtype=np.float64)
    if len(e) != len(t):
        raise ValueError("ECG and text features must be paired")
    keys = _keys(t) if text_keys is None else _keys(np.asarray([str(k) for k in text_keys])[:, None])
    e, t = l2_normalize(e), l2_normalize(t)
    n = len(e)
    uniq, first = np.unique(keys, return_index=True)
    counts = np.bincount(keys, minlength=uniq.max() + 1 if len(uniq) else 0)
    sim = t @ e.T  # (text i, ECG j)
    res: dict[str, float] = {"n": n, "n_unique_texts": int(len(uniq))}
    order_t2e = np.argsort(-sim, axis=1, kind="stable")
    sim_e2u = e @ t[first].T  # (ECG i, unique text u)
    order_e2t = np.argsort(-sim_e2u, axis=1, kind="stable")
    for k in ks:
        kk = min(k, n)
        hit = (keys[order_t2e[:, :kk]] == keys[:, None]).any(axis=1)
        res[f"text_to_ecg_top{k}"] = float(hit.mean())
        # chance: probability that k random ECGs (without replacement) include one with the same key
        p_miss = np.ones(n)
        for j in range(kk):
            p_miss *= np.clip((n - counts[keys] - j) / (n - j), 0, 1)
        res[f"chance_text_to_ecg_top{k}"] = float(np.mean(1 - p_miss))
        ku = min(k, len(uniq))
        hit = (uniq[order_e2t[:, :ku]] == keys[:, None]).any(axis=1)
        res[f"ecg_to_text_top{k}"] = float(hit.mean())
        res[f"chance_ecg_to_text_top{k}"] = ku / len(uniq)
    return res

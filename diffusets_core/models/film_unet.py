"""A 1-D latent-diffusion U-Net whose condition acts on every block by scale and shift (FiLM / adaptive GroupNorm).

The paper's U-Net (:class:`~.unet.ConditionalUNet1D`) receives its condition through a cross-attention over one
repeated token, which reduces to a per-sample additive bias on 6-10 channels at full latent resolution, layer-
normed together with the content (see :mod:`.attention`). That is enough to follow heart rate, but leaves
little room for the report to change morphology. This network is the project's default for newly trained runs
(``UNetConfig(arch="film")``); paper mode keeps the reference architecture.

Design, after the ADM / Imagen / diffusers ``UNet2DModel`` family (Dhariwal & Nichol 2021, "Diffusion models
beat GANs", §3: adaptive group normalisation; Perez et al. 2018, FiLM):

* one embedding ``e = time(t) + text(s) + patient(p)`` (each an MLP to ``emb_dim``), given to every residual
  block as ``GroupNorm(h) * (1 + scale(e)) + shift(e)``;
* the text vector is standardised per dimension with the training split's mean and standard deviation
  (buffers ``text_mean`` / ``text_std``, set by :meth:`FiLMUNet1D.set_text_stats` before training, saved in the
  state dict and so applied at generation too): sentence-embedding vectors share a large common component
  (norm ~0.9 of ~1) and differ from report to report in small directions, which standardisation brings to the
  scale of the patient values;
* text and patient can be dropped separately in training (``cond_dropout_mode="separate"``), each replaced by
  a learned null vector, so classifier-free guidance can amplify the report while the patient values stay;
* widths ``base_channels * channel_mults`` (64-256 by default) instead of 4-16 channels at full latent
  resolution, self-attention at the coarser levels, a zero-initialised output head.

``forward(x (B, C, L), t (B,) long, text (B, D) | (B, 1, D), patient (B, 3), drop_mask) -> eps (B, C, L)``,
the same signature as the paper's network, so samplers, pipeline and trainer do not care which one they run.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .unet import check_condition

__all__ = ["FiLMUNet1D", "FiLMResBlock", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) of integer timesteps (Vaswani et al. 2017; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _gn(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c)


def _zero(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class FiLMResBlock(nn.Module):
    """GN -> SiLU -> Conv(k) -> GN * (1 + scale(e)) + shift(e) -> SiLU -> Dropout -> Conv(k, zero-init), + skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, *, kernel: int = 3, groups: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        self.norm1 = _gn(c_in, groups)
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = _gn(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb)).unsqueeze(-1).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class _SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over time with a zero-initialised output projection."""

    def __init__(self, c: int, heads: int, groups: int):
        super().__init__()
        if c % heads:
            raise ValueError(f"attention width {c} is not divisible by {heads} heads")
        self.heads = heads
        self.norm = _gn(c, groups)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj = _zero(nn.Conv1d(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, n).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, d)
        return x + self.proj(h.transpose(-1, -2).reshape(b, c, n))


class _Level(nn.Module):
    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)


class FiLMUNet1D(nn.Module):
    """Epsilon-prediction U-Net with FiLM conditioning. Built from a :class:`~.unet.UNetConfig` with
    ``arch="film"``; the fields it reads are ``in_channels, text_dim, cond_dim, time_steps, base_channels,
    channel_mults, res_blocks, attn_levels, attn_heads, emb_dim, kernel_size, norm_groups, dropout,
    cond_dropout, cond_dropout_mode``."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        e, g, k = cfg.emb_dim, cfg.norm_groups, cfg.kernel_size
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base_channels, e), nn.SiLU(), nn.Linear(e, e))
        self.text_mlp = nn.Sequential(nn.Linear(cfg.text_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.register_buffer("text_mean", torch.zeros(cfg.text_dim))
        self.register_buffer("text_std", torch.ones(cfg.text_dim))
        if cfg.cond_dim > 0:
            self.patient_mlp = nn.Sequential(nn.Linear(cfg.cond_dim, e), nn.SiLU(), nn.Linear(e, e))
        if cfg.cond_dropout > 0:
            self.null_text = nn.Parameter(torch.zeros(cfg.text_dim))
            self.null_patient = nn.Parameter(torch.zeros(cfg.cond_dim))
        self.conv_in = nn.Conv1d(cfg.in_channels, widths[0], k, padding=k // 2)

        def res(ci: int, co: int) -> FiLMResBlock:
            return FiLMResBlock(ci, co, e, kernel=k, groups=g, dropout=cfg.dropout)

        def attn(level: int, c: int) -> list[nn.Module]:
            return [_SelfAttention(c, cfg.attn_heads, g)] if level in cfg.attn_levels else []

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_c = [widths[0]]
        c = widths[0]
        for i, w in enumerate(widths):
            blocks, attns = [], []
            for _ in range(cfg.res_blocks):
                blocks.append(res(c, w))
                attns += attn(i, w)
                c = w
                skip_c.append(c)
            self.down.append(_Level(blocks, attns))
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
                skip_c.append(c)
        self.mid = nn.ModuleList([res(c, c), _SelfAttention(c, cfg.attn_heads, g), res(c, c)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            blocks, attns = [], []
            for _ in range(cfg.res_blocks + 1):
                blocks.append(res(c + skip_c.pop(), w))
                attns += attn(i, w)
                c = w
            self.up.append(_Level(blocks, attns))
            if i > 0:
                self.upsample.append(nn.Conv1d(c, c, 3, padding=1))
        self.out = nn.Sequential(_gn(c, g), nn.SiLU(), _zero(nn.Conv1d(c, cfg.in_channels, k, padding=k // 2)))

    # -- conditioning ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def set_text_stats(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Standardisation of the text vectors: per-dimension ``mean`` and ``std`` (text_dim,) of the TRAINING
        split's vectors. Dimensions with std < ``eps`` keep std 1 (a constant dimension carries nothing)."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != (self.cfg.text_dim,) or std.shape != (self.cfg.text_dim,):
            raise ValueError(f"text statistics must be ({self.cfg.text_dim},), got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("text statistics must be finite")
        self.text_mean.copy_(mean)
        self.text_std.copy_(torch.where(std < eps, torch.ones_like(std), std))

    def _masks(self, drop_mask: Optional[torch.Tensor], b: int, device) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        if drop_mask is None:
            return None, None
        if self.cfg.cond_dropout <= 0:
            raise ValueError("drop_mask given but the model has no null condition (cfg.cond_dropout == 0)")
        m = drop_mask.to(device=device, dtype=torch.bool)
        if m.shape == (b,):
            return m[:, None], m[:, None]
        if m.shape == (b, 2):
            return m[:, :1], m[:, 1:]
        raise ValueError(f"drop_mask must be (B,) (drop text and patient) or (B, 2) ([text, patient]), got {tuple(m.shape)}")

    def condition_embedding(self, text: torch.Tensor, patient: Optional[torch.Tensor],
                            drop_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, text_dim) text and (B, cond_dim) patient values -> (B, emb_dim) condition embedding; rows whose
        mask is set use the learned null text / null patient vector instead (see :meth:`_masks`)."""
        cfg = self.cfg
        text, patient = check_condition(cfg, text, patient)
        b = text.shape[0]
        m_text, m_pat = self._masks(drop_mask, b, text.device)
        s = (text.float() - self.text_mean) / self.text_std
        if m_text is not None:
            s = torch.where(m_text, self.null_text[None].float(), s)
        emb = self.text_mlp(s)
        if patient is not None:
            p = patient.float()
            if m_pat is not None:
                p = torch.where(m_pat, self.null_patient[None].float(), p)
            emb = emb + self.patient_mlp(p)
        return emb

    def sample_drop_mask(self, batch_size: int, device: torch.device | str | None = None,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Condition dropout for training: (B,) Bernoulli(cond_dropout) with ``cond_dropout_mode="joint"``, or
        (B, 2) independent [text, patient] draws with ``"separate"``."""
        cols = 2 if self.cfg.cond_dropout_mode == "separate" else 1
        u = torch.rand(batch_size, cols, generator=generator, device=device) < self.cfg.cond_dropout
        return u if cols == 2 else u[:, 0]

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor | int, text: torch.Tensor,
                patient: Optional[torch.Tensor] = None, drop_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        cfg = self.cfg
        if x.dim() != 3 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (B, {cfg.in_channels}, L), got {tuple(x.shape)}")
        b, _, length = x.shape
        if length % cfg.length_multiple:
            raise ValueError(f"length {length} is not divisible by {cfg.length_multiple}")
        if not torch.is_tensor(t):
            t = torch.tensor(t, device=x.device)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"timesteps must be an integer tensor, got {t.dtype}")
        t = t.expand(b) if t.dim() == 0 else t
        if t.shape != (b,):
            raise ValueError(f"timesteps must have shape (B,) = ({b},), got {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, cfg.base_channels)) + self.condition_embedding(text, patient, drop_mask)
        emb = emb.to(x.dtype) if not torch.is_autocast_enabled() else emb
        h = self.conv_in(x)
        skips = [h]
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.blocks):
                h = block(h, emb)
                if len(level.attns):
                    h = level.attns[j](h)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for i, level in enumerate(self.up):
            for j, block in enumerate(level.blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
                if len(level.attns):
                    h = level.attns[j](h)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)

    # -- bookkeeping (the paper network's interface) ----------------------------------------------------------
    def unused_parameter_names(self) -> list[str]:
        """Every parameter receives a gradient (nothing to freeze for DDP)."""
        return []

    def freeze_unused_parameters(self) -> list[str]:
        return []

    def num_parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        return {"total": total, "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
                "time_tables": 0}

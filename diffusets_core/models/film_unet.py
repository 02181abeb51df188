"""A 1-D latent-diffusion U-Net whose condition acts on every block by scale and shift (FiLM / adaptive GroupNorm).

The paper's U-Net (:class:`~.unet.ConditionalUNet1D`) receives its condition through a cross-attention over one
repeated token, which reduces to a per-sample additive bias on 6-10 channels at full latent resolution, layer-
normed together with the content (see :mod:`.attention`). That is enough to follow heart rate, but leaves
little room for the report to change morphology. This network is the project's default for newly trained runs
(:class:`FiLMUNetConfig`, ``arch: film``); paper mode keeps the reference architecture.

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
  resolution, self-attention at the coarser levels, a zero-initialised output head;
* optionally (``text_subspace = v > 0``) whitening within the training vectors' principal subspace instead of
  per-dimension standardisation, so that directions no training report spans are removed rather than amplified
  (``text/standardize.py``: an unfamiliar wording otherwise reaches the network far outside the training range);
* optionally (``text_tokens = K > 0``) the report as tokens: the ordered prompt's vector plus each statement
  embedded on its own (up to K, in report order, with a learned position embedding), standardised with their
  own training-split statistics, and the patient values as one more token. Every attention level (and the
  middle) adds a cross-attention from the latent positions to these tokens (Rombach et al. 2022, latent
  diffusion, §3.3), so a statement can act where in the ECG it matters instead of only through one pooled
  vector; padding statements are masked out, and a dropped report leaves only the learned null prompt token.

``forward(x (B, C, L), t (B,) long, text (B, D) | (B, 1, D) | (B, 1 + K, D), patient (B, 3), drop_mask) -> eps (B, C, L)``,
the same signature as the paper's network, so samplers, pipeline and trainer do not care which one they run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .unet_base import UNetConfigBase, check_condition

__all__ = ["FiLMUNetConfig", "FiLMUNet1D", "FiLMResBlock", "timestep_embedding", "describe_film_unet"]


@dataclass
class FiLMUNetConfig(UNetConfigBase):
    """The FiLM network (:class:`FiLMUNet1D`), the default for new runs: the shared settings of
    :class:`~.unet_base.UNetConfigBase` and its own. ``FiLMUNetConfig()`` is the default network (kernel 7 and 8
    heads as the shared defaults; the profiles narrow both).

    Raises:
        ValueError: a value out of range (the message names the field).
    """

    arch: ClassVar[str] = "film"

    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2, 4)
    res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2, 3)
    emb_dim: int = 256
    norm_groups: int = 32
    dropout: float = 0.0
    #: standardise text vectors with the training split's statistics (``train.conditioning``)
    text_standardize: bool = True
    # 0 = one vector per report (the ordered prompt); K > 0 = the prompt plus up to K statement tokens, each
    # statement embedded on its own, read by cross-attention in the attention levels (text is then (B, 1 + K, D))
    # (a field here; the paper network's config answers 0 through the base's property)
    text_tokens: int = 0
    # 0 = standardise text per dimension; 0 < v < 1 = whiten within the training vectors' principal subspace
    # holding fraction v of their variance, removing directions they never span (text/standardize.py)
    text_subspace: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attn_levels = tuple(int(a) for a in self.attn_levels)
        if not self.channel_mults or min(self.channel_mults) < 1 or self.base_channels < 1 or self.res_blocks < 1:
            raise ValueError("arch 'film' needs channel_mults >= 1, base_channels >= 1 and res_blocks >= 1")
        if any(a < 0 or a >= len(self.channel_mults) for a in self.attn_levels):
            raise ValueError(
                f"attn_levels {self.attn_levels} must index channel_mults (0..{len(self.channel_mults) - 1})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.text_subspace < 1.0:
            raise ValueError(f"text_subspace must be in [0, 1), got {self.text_subspace}")
        if self.text_tokens < 0:
            raise ValueError(f"text_tokens must be >= 0, got {self.text_tokens}")

    @property
    def length_multiple(self) -> int:
        """Input lengths must be divisible by this: ``2 ** (len(channel_mults) - 1)``."""
        return 2 ** (len(self.channel_mults) - 1)


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

    def __init__(self, c_in: int, c_out: int, emb_dim: int, *, kernel: int = 3, groups: int = 32, dropout: float = 0.0):
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


class CrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention from the latent positions (queries) to condition tokens (keys and
    values, ``ctx_dim``-d), masked, with a zero-initialised output projection (a new block starts as identity)."""

    def __init__(self, c: int, ctx_dim: int, heads: int, groups: int):
        super().__init__()
        if c % heads:
            raise ValueError(f"attention width {c} is not divisible by {heads} heads")
        self.heads = heads
        self.norm = _gn(c, groups)
        self.q = nn.Conv1d(c, c, 1)
        self.kv = nn.Linear(ctx_dim, 2 * c)
        self.proj = _zero(nn.Conv1d(c, c, 1))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, C, L); ctx (B, T, ctx_dim); mask (B, T) bool, True = attend (at least one True per row)."""
        b, c, n = x.shape
        d = c // self.heads
        q = self.q(self.norm(x)).reshape(b, self.heads, d, n).transpose(-1, -2)  # (B, h, L, d)
        k, v = self.kv(ctx.to(x.dtype)).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return x + self.proj(h.transpose(-1, -2).reshape(b, c, n))


class _Level(nn.Module):
    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module], xattns: list[nn.Module] | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)
        self.xattns = nn.ModuleList(xattns or [])


class FiLMUNet1D(nn.Module):
    """Epsilon-prediction U-Net with FiLM conditioning, built from a :class:`FiLMUNetConfig` (every field but
    ``text_standardize``, which the trainer reads, and ``time_steps``, which only records the schedule's length).

    Raises:
        ValueError: a config of another network (``build_unet`` builds that one).
    """

    def __init__(self, cfg: FiLMUNetConfig):
        super().__init__()
        if not isinstance(cfg, FiLMUNetConfig):
            raise ValueError(
                f"FiLMUNet1D is the FiLM network and takes a FiLMUNetConfig; a {type(cfg).__name__} "
                f"(arch={getattr(cfg, 'arch', None)!r}) is built by build_unet(cfg)"
            )
        self.cfg = cfg
        e, g, k = cfg.emb_dim, cfg.norm_groups, cfg.kernel_size
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base_channels, e), nn.SiLU(), nn.Linear(e, e))
        self.text_mlp = nn.Sequential(nn.Linear(cfg.text_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.register_buffer("text_mean", torch.zeros(cfg.text_dim))
        self.register_buffer("text_std", torch.ones(cfg.text_dim))
        self.subspace = float(cfg.text_subspace) > 0
        if self.subspace:  # (D, D) whitening within the training subspace replaces the per-dimension std
            self.register_buffer("text_whiten", torch.eye(cfg.text_dim))
        if cfg.cond_dim > 0:
            self.patient_mlp = nn.Sequential(nn.Linear(cfg.cond_dim, e), nn.SiLU(), nn.Linear(e, e))
        if cfg.cond_dropout > 0:
            self.null_text = nn.Parameter(torch.zeros(cfg.text_dim))
            self.null_patient = nn.Parameter(torch.zeros(cfg.cond_dim))
        self.n_tokens = int(cfg.text_tokens)
        if self.n_tokens:
            self.register_buffer("stmt_mean", torch.zeros(cfg.text_dim))
            self.register_buffer("stmt_std", torch.ones(cfg.text_dim))
            if self.subspace:
                self.register_buffer("stmt_whiten", torch.eye(cfg.text_dim))
            self.stmt_mlp = nn.Sequential(nn.Linear(cfg.text_dim, e), nn.SiLU(), nn.Linear(e, e))
            self.stmt_pos = nn.Parameter(torch.randn(self.n_tokens, e) * 0.02)
        self.conv_in = nn.Conv1d(cfg.in_channels, widths[0], k, padding=k // 2)

        def res(ci: int, co: int) -> FiLMResBlock:
            return FiLMResBlock(ci, co, e, kernel=k, groups=g, dropout=cfg.dropout)

        def attn(level: int, c: int) -> list[nn.Module]:
            return [_SelfAttention(c, cfg.attn_heads, g)] if level in cfg.attn_levels else []

        def xattn(level: int, c: int) -> list[nn.Module]:
            return [CrossAttention(c, e, cfg.attn_heads, g)] if self.n_tokens and level in cfg.attn_levels else []

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_c = [widths[0]]
        c = widths[0]
        for i, w in enumerate(widths):
            blocks, attns, xattns = [], [], []
            for _ in range(cfg.res_blocks):
                blocks.append(res(c, w))
                attns += attn(i, w)
                xattns += xattn(i, w)
                c = w
                skip_c.append(c)
            self.down.append(_Level(blocks, attns, xattns))
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
                skip_c.append(c)
        self.mid = nn.ModuleList([res(c, c), _SelfAttention(c, cfg.attn_heads, g), res(c, c)])
        self.mid_xattn = CrossAttention(c, e, cfg.attn_heads, g) if self.n_tokens else None
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            blocks, attns, xattns = [], [], []
            for _ in range(cfg.res_blocks + 1):
                blocks.append(res(c + skip_c.pop(), w))
                attns += attn(i, w)
                xattns += xattn(i, w)
                c = w
            self.up.append(_Level(blocks, attns, xattns))
            if i > 0:
                self.upsample.append(nn.Conv1d(c, c, 3, padding=1))
        self.out = nn.Sequential(_gn(c, g), nn.SiLU(), _zero(nn.Conv1d(c, cfg.in_channels, k, padding=k // 2)))

    # -- conditioning ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def set_text_stats(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        eps: float = 1e-6,
        *,
        statement_mean: torch.Tensor | None = None,
        statement_std: torch.Tensor | None = None,
        whiten: torch.Tensor | None = None,
        statement_whiten: torch.Tensor | None = None,
    ) -> None:
        """Standardisation of the text vectors: per-dimension ``mean`` and ``std`` (text_dim,) of the TRAINING
        split's prompt vectors, and (a model with statement tokens) ``statement_mean`` / ``statement_std`` of its
        statement vectors (padding excluded). Dimensions with std < ``eps`` keep std 1 (a constant dimension
        carries nothing). A model with ``text_subspace > 0`` takes ``whiten`` (and ``statement_whiten``), the
        (text_dim, text_dim) transforms of :func:`~diffusets_core.text.standardize.text_standardizer`, instead of
        the std (which is then ignored). Raises ValueError for a wrong shape, non-finite values, or statistics
        the model has no place for."""
        d = self.cfg.text_dim
        pairs = [(mean, std, self.text_mean, self.text_std)]
        if statement_mean is not None or statement_std is not None:
            if not self.n_tokens:
                raise ValueError("statement statistics given but this model has no statement tokens (text_tokens=0)")
            pairs.append((statement_mean, statement_std, self.stmt_mean, self.stmt_std))
        for m, sd, buf_m, buf_s in pairs:
            m = torch.as_tensor(m, dtype=torch.float32).reshape(-1)
            sd = torch.as_tensor(sd, dtype=torch.float32).reshape(-1)
            if m.shape != (d,) or sd.shape != (d,):
                raise ValueError(f"text statistics must be ({d},), got {tuple(m.shape)} and {tuple(sd.shape)}")
            if not (torch.isfinite(m).all() and torch.isfinite(sd).all()):
                raise ValueError("text statistics must be finite")
            buf_m.copy_(m)
            buf_s.copy_(torch.where(sd < eps, torch.ones_like(sd), sd))
        for w, name in ((whiten, "text_whiten"), (statement_whiten, "stmt_whiten")):
            if w is None:
                continue
            if not hasattr(self, name):
                raise ValueError(
                    f"{name.replace('_', ' ')} given but this model has no place for it "
                    "(text_subspace = 0, or no statement tokens)"
                )
            w = torch.as_tensor(w, dtype=torch.float32)
            if w.shape != (d, d) or not torch.isfinite(w).all():
                raise ValueError(f"a whitening transform must be a finite ({d}, {d}) matrix, got {tuple(w.shape)}")
            getattr(self, name).copy_(w)

    def _standardize(self, v: torch.Tensor, statements: bool = False) -> torch.Tensor:
        mean, std = (self.stmt_mean, self.stmt_std) if statements else (self.text_mean, self.text_std)
        if self.subspace:
            return (v.float() - mean) @ (self.stmt_whiten if statements else self.text_whiten)
        return (v.float() - mean) / std

    def _masks(self, drop_mask: torch.Tensor | None, b: int, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if drop_mask is None:
            return None, None
        if self.cfg.cond_dropout <= 0:
            raise ValueError("drop_mask given but the model has no null condition (cfg.cond_dropout == 0)")
        m = drop_mask.to(device=device, dtype=torch.bool)
        if m.shape == (b,):
            return m[:, None], m[:, None]
        if m.shape == (b, 2):
            return m[:, :1], m[:, 1:]
        raise ValueError(
            f"drop_mask must be (B,) (drop text and patient) or (B, 2) ([text, patient]), got {tuple(m.shape)}"
        )

    def condition_embedding(
        self, text: torch.Tensor, patient: torch.Tensor | None, drop_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, text_dim) or (B, 1 + K, text_dim) text and (B, cond_dim) patient values -> (B, emb_dim) condition
        embedding; rows whose mask is set use the learned null text / null patient vector instead (see
        :meth:`_masks`). With statement tokens the pooled embedding also adds the mean of the statements'."""
        return self.condition(text, patient, drop_mask)[0]

    def condition(
        self, text: torch.Tensor, patient: torch.Tensor | None, drop_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The condition as the network reads it: ``(emb (B, emb_dim), tokens (B, T, emb_dim) | None,
        token_mask (B, T) bool | None)``. Tokens (only with ``text_tokens = K > 0``) are the prompt, the K
        statement slots and the patient values (T = 1 + K + [cond_dim > 0]); a statement slot whose input row is
        all zeros is padding and masked out, and so are all statements of a row whose report is dropped."""
        cfg = self.cfg
        text, patient = check_condition(cfg, text, patient)
        b = text.shape[0]
        m_text, m_pat = self._masks(drop_mask, b, text.device)
        prompt = text[:, 0] if self.n_tokens else text
        s = self._standardize(prompt)
        if m_text is not None:
            s = torch.where(m_text, self.null_text[None].float(), s)
        t_emb = self.text_mlp(s)
        emb = t_emb
        tokens, mask = [t_emb[:, None]], [torch.ones(b, 1, dtype=torch.bool, device=text.device)]
        if self.n_tokens:
            stmts = text[:, 1:].float()
            present = stmts.abs().amax(dim=-1) > 0  # (B, K): zero rows are padding
            if m_text is not None:
                present = present & ~m_text
            st = self.stmt_mlp(self._standardize(stmts, statements=True)) + self.stmt_pos[None]
            w = present.float()[..., None]
            emb = emb + (st * w).sum(1) / w.sum(1).clamp(min=1.0)
            tokens.append(st)
            mask.append(present)
        if patient is not None:
            p = patient.float()
            if m_pat is not None:
                p = torch.where(m_pat, self.null_patient[None].float(), p)
            p_emb = self.patient_mlp(p)
            emb = emb + p_emb
            tokens.append(p_emb[:, None])
            mask.append(torch.ones(b, 1, dtype=torch.bool, device=text.device))
        if not self.n_tokens:
            return emb, None, None
        return emb, torch.cat(tokens, dim=1), torch.cat(mask, dim=1)

    def sample_drop_mask(
        self, batch_size: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Condition dropout for training: (B,) Bernoulli(cond_dropout) with ``cond_dropout_mode="joint"``, or
        (B, 2) independent [text, patient] draws with ``"separate"``."""
        cols = 2 if self.cfg.cond_dropout_mode == "separate" else 1
        u = torch.rand(batch_size, cols, generator=generator, device=device) < self.cfg.cond_dropout
        return u if cols == 2 else u[:, 0]

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        text: torch.Tensor,
        patient: torch.Tensor | None = None,
        drop_mask: torch.Tensor | None = None,
        extra_emb: torch.Tensor | None = None,
        extra_attend: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The noise prediction (B, C, L) of latents ``x`` at timesteps ``t`` under the condition (see
        :meth:`condition`). ``extra_emb`` (B, emb_dim), when given, is added to the condition embedding every block
        reads; ``extra_attend(site, h) -> h`` is called after the attention of every attention site (in the order and
        with the widths of :meth:`attention_sites`): how a further condition (a patient's reference ECG,
        :mod:`.twin`) enters without changing the network. None leaves the computation exactly as without them.

        Raises:
            ValueError: a wrong shape of ``x``, ``t`` or ``extra_emb``, or a length not divisible by
                :attr:`FiLMUNetConfig.length_multiple`. TypeError: non-integer timesteps."""
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
        c_emb, ctx, ctx_mask = self.condition(text, patient, drop_mask)
        emb = self.time_mlp(timestep_embedding(t, cfg.base_channels)) + c_emb
        if extra_emb is not None:
            if extra_emb.shape != (b, cfg.emb_dim):
                raise ValueError(f"extra_emb must be (B, emb_dim) = ({b}, {cfg.emb_dim}), got {tuple(extra_emb.shape)}")
            emb = emb + extra_emb.to(emb.dtype)
        emb = emb.to(x.dtype) if not torch.is_autocast_enabled() else emb

        site = [0]

        def extra(h: torch.Tensor) -> torch.Tensor:
            if extra_attend is not None:
                h = extra_attend(site[0], h)
                site[0] += 1
            return h

        def attend(level: _Level, j: int, h: torch.Tensor) -> torch.Tensor:
            if len(level.attns):
                h = level.attns[j](h)
            if len(level.xattns):
                h = level.xattns[j](h, ctx, ctx_mask)
            return extra(h) if len(level.attns) else h

        h = self.conv_in(x)
        skips = [h]
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.blocks):
                h = attend(level, j, block(h, emb))
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid[1](self.mid[0](h, emb))
        if self.mid_xattn is not None:
            h = self.mid_xattn(h, ctx, ctx_mask)
        h = self.mid[2](extra(h), emb)
        for i, level in enumerate(self.up):
            for j, block in enumerate(level.blocks):
                h = attend(level, j, block(torch.cat([h, skips.pop()], dim=1), emb))
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)

    def attention_sites(self) -> list[int]:
        """The channel width of every attention site, in the order :meth:`forward` visits them (each block of an
        attention level on the way down, the middle, each block of an attention level on the way up): where
        ``extra_attend`` is called."""
        widths = [self.cfg.base_channels * m for m in self.cfg.channel_mults]
        down = [widths[i] for i, level in enumerate(self.down) for _ in level.attns]
        up = [widths[len(widths) - 1 - i] for i, level in enumerate(self.up) for _ in level.attns]
        return down + [widths[-1]] + up

    # -- bookkeeping (the paper network's interface) ----------------------------------------------------------
    def unused_parameter_names(self) -> list[str]:
        """Every parameter receives a gradient (nothing to freeze for DDP)."""
        return []

    def freeze_unused_parameters(self) -> list[str]:
        return []

    def num_parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        return {
            "total": total,
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "time_tables": 0,
        }


def describe_film_unet(cfg: FiLMUNetConfig, latent_length: int = 128) -> list[dict[str, Any]]:
    """The FiLM network of ``cfg`` level by level, for documentation: one dict per stage with ``stage``,
    ``channels in → out``, ``length`` (latent positions) and ``detail`` (res-blocks, attention, conditioning); the
    numbers follow the arithmetic of :class:`FiLMUNet1D`'s constructor."""
    rows: list[dict[str, Any]] = []
    length = latent_length
    widths = [cfg.base_channels * m for m in cfg.channel_mults]
    c = widths[0]
    rows.append({"stage": "conv in", "channels in → out": f"{cfg.in_channels} → {c}", "length": length, "detail": ""})
    for i, w in enumerate(widths):
        attn = (", self-attention" + (" + cross-attention" if cfg.text_tokens else "")) if i in cfg.attn_levels else ""
        rows.append(
            {
                "stage": f"down {i}",
                "channels in → out": f"{c} → {w}",
                "length": length,
                "detail": f"{cfg.res_blocks} FiLM res-blocks{attn}",
            }
        )
        c = w
        if i < len(widths) - 1:
            length //= 2
    xattn = (
        f", cross-attention to {1 + cfg.text_tokens + (cfg.cond_dim > 0)} condition tokens" if cfg.text_tokens else ""
    )
    rows.append(
        {
            "stage": "middle",
            "channels in → out": f"{c} → {c}",
            "length": length,
            "detail": f"res-block, self-attention{xattn}, res-block",
        }
    )
    for i, w in reversed(list(enumerate(widths))):
        attn = (", self-attention" + (" + cross-attention" if cfg.text_tokens else "")) if i in cfg.attn_levels else ""
        rows.append(
            {
                "stage": f"up {i}",
                "channels in → out": f"{c} (+ skips) → {w}",
                "length": length,
                "detail": f"{cfg.res_blocks + 1} FiLM res-blocks{attn}",
            }
        )
        c = w
        if i > 0:
            length *= 2
    rows.append(
        {
            "stage": "out",
            "channels in → out": f"{c} → {cfg.in_channels}",
            "length": length,
            "detail": "zero-initialised",
        }
    )
    return rows

"""The paper's conditional 1-D U-Net (the authors' ``unet/unet_conditional.py``) with its state-dict key names.

What the authors' U-Net does, with its sources: book/reference_implementation.md#the-u-net.

``ConditionalUNet1D(PaperUNetConfig.paper())`` has exactly the 713 keys of the released ``unet_all.pth``
(``downsampling_blocks``, ``upsampling_blocks``, ``bottelneck`` [sic], ``output_conv``, ...; checked key by
key and shape by shape against tests/fixtures/reference/unet_keys.json) and computes the reference's
epsilon within the golden-fixture tolerance.

Architecture (levels = 7, in_channels = 4, width_mult = 1)
----------------------------------------------------------
channels ``c = [4, 8, 16, 32, 64, 128, 256]``; lengths 128 -> 2.

* down stage i (0..5): ``h_i = Block(c_i -> c_{i+1})(x)`` then ``x = Conv1d(c_{i+1}, k3, stride 2, p1)(h_i)``;
  ``h_0..h_4`` are kept as skips, the deepest ``h_5`` is discarded (as in the reference).
* ``bottelneck``: time add, Conv(k3) -> GN(1) -> Mish -> Conv(k3), self-attn -> cross-attn -> LayerNorm,
  Conv(k3) -> GN(1) -> Mish, plus the residual to the un-time-shifted input.
* up stage j: ``x = ConvTranspose1d(k4, s2, p1)(x)``, then (j > 0) ``cat([x, skip], dim=1)``, then a Block.
* output head ``Conv1d(k3) -> Mish -> Conv1d(k1)``: predicted noise, same shape as the input.

Block(n_in, n_out): ``x + time_mlp(t)``; Conv(k) -> GN(1) -> Mish -> Conv(k1); self-attention ->
cross-attention(condition) -> LayerNorm; Conv(k) -> GN(1) -> Mish; + 1x1-conv(x) (residual of the input
*before* the time add). Attention: ``heads = 8``, ``hidden = 2 * n_in`` (bottleneck 4 heads, 32 wide).

The condition vector is ``cat([text (D), patient (3: sex 1=M/0=F, age, HR)])``; in paper mode the patient
values are fed raw (normalising them is the caller's business, see ``diffusets_core.text``).

The paper's network with our settings vs paper mode (``PaperUNetConfig()`` vs ``PaperUNetConfig.paper()``)
-------------------------------------------------------------------------------------------------------

(The default network for new runs is the FiLM U-Net of :mod:`~.film_unet`, the one the profiles train; a config
dict names its network by ``arch``, see :mod:`~.factory`.)

============================  ===================  ===========================================
setting                       paper                ours
============================  ===================  ===========================================
``text_dim``                  1536 (ada-002)       384 (local MiniLM)
``cond_dropout``              0 (no null params)   0.1 (learned ``null_text``/``null_patient``)
``keep_dead_params``          True                 False (no unused ``Block.down`` convs)
``cross_attn_impl``           ``"bias"``           ``"bias"`` (``"full"`` = literal attention)
============================  ===================  ===========================================

``cross_attn_impl="bias"`` computes the cross-attention in closed form (one repeated token => the output is
the projected value at every position; see :mod:`diffusets_core.models.attention`). It equals the
reference within float rounding (golden ``unet_eps`` max abs error 4.7e-06 with ``"bias"``, 4.9e-06 with
``"full"``; README tolerance 3.3e-04), so it is used in paper mode too. It is also cheaper: forward +
backward at batch 32 is ~1.6x faster than ``"full"`` on 2 CPU threads. The query/key branch of the
cross-attention has (up to rounding) zero gradient in the reference; with ``"bias"`` it gets no gradient
at all (``None``).

Condition dropout / classifier-free guidance
--------------------------------------------
With ``cond_dropout > 0`` the model owns two learned vectors ``null_text`` (text_dim) and ``null_patient``
(cond_dim), initialised to zero. ``forward(..., drop_mask=m)`` with a boolean ``m`` of shape (B,) replaces
sample i's text and patient values by the null vectors where ``m[i]`` is True (the unconditional branch);
a mask of shape (B, 2) drops the text (column 0) and the patient values (column 1) separately
(``cond_dropout_mode="separate"`` trains both ways, so guidance can act on the report alone). Training draws ``m`` with :meth:`ConditionalUNet1D.sample_drop_mask`; guided sampling evaluates the
model with ``m`` all False and all True. The parameters are only created when ``cond_dropout > 0``, so a
paper-mode model loads the released state dict with ``strict=True``.

Unused parameters: the dead ``Block.down`` convs (paper mode) and, with ``cross_attn_impl="bias"``, the
cross-attention query/key path never receive gradients. For DDP either pass ``find_unused_parameters=True`` or
call :meth:`ConditionalUNet1D.freeze_unused_parameters` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CrossAttention, SelfAttention
from .embeddings import PAPER_TIME_DIM, PAPER_TIME_LOG_BASE, reference_time_table
from .unet_base import UNetConfigBase, check_condition

__all__ = ["PaperUNetConfig", "ConditionalUNet1D", "Block", "Bottleneck", "TimeEmbedding", "describe_paper_unet"]


@dataclass
class PaperUNetConfig(UNetConfigBase):
    """The paper's network (:class:`ConditionalUNet1D`): the shared settings of :class:`~.unet_base.UNetConfigBase`
    and its own. ``PaperUNetConfig()`` is that network with our settings (384-d text, condition dropout 0.1, no dead
    parameters); :meth:`paper` is the authors' released 1536-d model. The default network for new runs is the FiLM
    U-Net (:class:`~.film_unet.FiLMUNetConfig`).

    Raises:
        ValueError: a value out of range (the message names the field).
    """

    arch: ClassVar[str] = "paper"

    levels: int = 7
    width_mult: int = 1
    time_dim: int = PAPER_TIME_DIM
    time_hidden: int = 128
    time_log_base: float = PAPER_TIME_LOG_BASE
    attn_hidden_mult: int = 2
    bottleneck_kernel: int = 3
    bottleneck_heads: int = 4
    bottleneck_hidden: int = 32
    cross_attn_impl: str = "bias"
    keep_dead_params: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2, got {self.levels}")
        if self.bottleneck_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd ('same' padding)")
        if self.cross_attn_impl not in ("bias", "full"):
            raise ValueError(f"cross_attn_impl must be 'bias' or 'full', got {self.cross_attn_impl!r}")
        if self.width_mult < 1:
            raise ValueError(f"width_mult must be >= 1, got {self.width_mult}")

    @classmethod
    def paper(cls, text_dim: int = 1536, **overrides: Any) -> PaperUNetConfig:
        """The reference ``ECGConditional(1000, kernel_size=7, num_levels=7, n_channels=4, text_dim)``."""
        kw: dict[str, Any] = dict(text_dim=text_dim, keep_dead_params=True, cond_dropout=0.0)
        kw.update(overrides)
        return cls(**kw)

    @property
    def channels(self) -> list[int]:
        """Block widths ``[in, 2*in*m, 4*in*m, ...]`` (paper: 4, 8, ..., 256)."""
        c = self.in_channels
        return [c] + [c * self.width_mult * 2 ** (i + 1) for i in range(self.levels - 1)]

    @property
    def length_multiple(self) -> int:
        """Input lengths must be divisible by this: ``2 ** (levels - 1)``."""
        return 2 ** (self.levels - 1)


class TimeEmbedding(nn.Module):
    """Frozen sinusoidal table (``embeddings``, an ``nn.Parameter`` with ``requires_grad=False`` so it is
    saved in the state dict like the reference's) -> Linear -> Mish -> Linear(n_out)."""

    def __init__(self, cfg: PaperUNetConfig, n_out: int):
        super().__init__()
        table = reference_time_table(cfg.time_steps, cfg.time_dim, cfg.time_log_base)
        self.embeddings = nn.Parameter(table, requires_grad=False)
        self.fc1 = nn.Linear(cfg.time_dim, cfg.time_hidden)
        self.fc2 = nn.Linear(cfg.time_hidden, n_out)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.mish(self.fc1(self.embeddings[t])))


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, k, padding=k // 2)


class Block(nn.Module):
    """Residual block with the self-/cross-attention sandwich (parameter order = reference order)."""

    def __init__(self, n_in: int, n_out: int, cfg: PaperUNetConfig):
        super().__init__()
        k = cfg.kernel_size
        n_mid = (n_in + n_out) // 2
        hidden = cfg.attn_hidden_mult * n_in
        cond_in = cfg.text_dim + cfg.cond_dim
        self.pre_shortcut_convs = _conv(n_in, n_mid, k)
        self.shortcut_convs = nn.Conv1d(n_mid, n_mid, 1)
        self.post_shortcut_convs = _conv(n_mid, n_out, k)
        if cfg.keep_dead_params:  # unused stride-2 conv of the reference, kept for checkpoint loading
            self.down = nn.Conv1d(n_out, n_out, 3, stride=2, padding=1)
        self.layer_norm1 = nn.GroupNorm(1, n_mid)
        self.layer_norm2 = nn.GroupNorm(1, n_out)
        self.res_conv = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.self_attention = SelfAttention(n_mid, hidden, cfg.attn_heads)
        self.cross_attention = CrossAttention(n_mid, hidden, cfg.attn_heads, cond_in, cfg.cross_attn_impl)
        self.attention_norm = nn.LayerNorm(n_mid)
        self.time_emb = TimeEmbedding(cfg, n_in)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = x + self.time_emb(t)[:, :, None]
        h = self.shortcut_convs(F.mish(self.layer_norm1(self.pre_shortcut_convs(h))))
        h = h.transpose(1, 2)
        h = self.attention_norm(self.cross_attention(self.self_attention(h), cond))
        h = h.transpose(1, 2)
        h = F.mish(self.layer_norm2(self.post_shortcut_convs(h)))
        return h + self.res_conv(x)


class Bottleneck(nn.Module):
    """The reference's bottleneck (kernel 3, 4 heads x 32), residual to the un-time-shifted input."""

    def __init__(self, c: int, cfg: PaperUNetConfig):
        super().__init__()
        k = cfg.bottleneck_kernel
        self.time_emb = TimeEmbedding(cfg, c)
        self.bottleneck_conv1 = _conv(c, c, k)
        self.bottleneck_conv1_2 = _conv(c, c, k)
        self.bottleneck_conv2 = _conv(c, c, k)
        self.bottleneck_layer_norm1 = nn.GroupNorm(1, c)
        self.bottleneck_layer_norm2 = nn.GroupNorm(1, c)
        self.attention_norm = nn.LayerNorm(c)
        self.self_attention = SelfAttention(c, cfg.bottleneck_hidden, cfg.bottleneck_heads)
        cond_in = cfg.text_dim + cfg.cond_dim
        self.cross_attention = CrossAttention(
            c, cfg.bottleneck_hidden, cfg.bottleneck_heads, cond_in, cfg.cross_attn_impl
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = x + self.time_emb(t)[:, :, None]
        h = self.bottleneck_conv1_2(F.mish(self.bottleneck_layer_norm1(self.bottleneck_conv1(h))))
        h = h.transpose(1, 2)
        h = self.attention_norm(self.cross_attention(self.self_attention(h), cond))
        h = h.transpose(1, 2)
        h = F.mish(self.bottleneck_layer_norm2(self.bottleneck_conv2(h)))
        return x + h


class _DownStage(nn.Module):
    def __init__(self, n_in: int, n_out: int, cfg: PaperUNetConfig):
        super().__init__()
        self.down = nn.Conv1d(n_out, n_out, 3, stride=2, padding=1)
        self.block = Block(n_in, n_out, cfg)


class _UpStage(nn.Module):
    def __init__(self, c_up: int, n_in: int, n_out: int, cfg: PaperUNetConfig):
        super().__init__()
        self.block = Block(n_in, n_out, cfg)
        self.up = nn.ConvTranspose1d(c_up, c_up, 4, stride=2, padding=1)


class ConditionalUNet1D(nn.Module):
    """Epsilon-prediction U-Net: ``forward(x (B,C,L), t (B,) long, text (B,D)|(B,1,D), patient (B,3)) -> eps``."""

    def __init__(self, cfg: PaperUNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else PaperUNetConfig()
        if not isinstance(cfg, PaperUNetConfig):
            raise ValueError(
                f"ConditionalUNet1D is the paper's network and takes a PaperUNetConfig; a {type(cfg).__name__} "
                f"(arch={getattr(cfg, 'arch', None)!r}) is built by build_unet(cfg)"
            )
        c = cfg.channels
        n = cfg.levels
        self.downsampling_blocks = nn.ModuleList(_DownStage(c[i], c[i + 1], cfg) for i in range(n - 1))
        ups = [_UpStage(c[-1], c[-1], c[-2], cfg)]
        for j in range(1, n - 1):
            p = c[n - 1 - j]
            ups.append(_UpStage(p, 2 * p, c[n - 2 - j], cfg))
        self.upsampling_blocks = nn.ModuleList(ups)
        self.bottelneck = Bottleneck(c[-1], cfg)  # [sic]: the reference's key name
        self.output_conv = nn.Sequential(_conv(c[0], c[0], 3), nn.Mish(), nn.Conv1d(c[0], c[0], 1))
        if cfg.cond_dropout > 0:
            self.null_text = nn.Parameter(torch.zeros(cfg.text_dim))
            self.null_patient = nn.Parameter(torch.zeros(cfg.cond_dim))

    @property
    def bottleneck(self) -> Bottleneck:
        return self.bottelneck

    # -- conditioning ----------------------------------------------------------------------------
    def condition_vector(
        self, text: torch.Tensor, patient: torch.Tensor | None, drop_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``cat([text, patient])`` -> (B, text_dim + cond_dim), with dropped rows set to the null vectors."""
        cfg = self.cfg
        text, patient = check_condition(cfg, text, patient)
        b = text.shape[0]
        cond = torch.cat([text, patient.to(text.dtype)], dim=1) if patient is not None else text
        if drop_mask is not None:
            if cfg.cond_dropout <= 0:
                raise ValueError("drop_mask given but the model has no null condition (cfg.cond_dropout == 0)")
            m = drop_mask.to(device=cond.device, dtype=torch.bool)
            if m.shape == (b,):  # drop text and patient together
                m = m[:, None].expand(b, 2)
            if m.shape != (b, 2):
                raise ValueError(f"drop_mask must be (B,) or (B, 2) ([text, patient]), got {tuple(drop_mask.shape)}")
            # per-column mask: the text columns follow m[:, 0], the patient columns m[:, 1]
            col = torch.cat([m[:, :1].expand(b, cfg.text_dim), m[:, 1:].expand(b, cfg.cond_dim)], dim=1)
            null = torch.cat([self.null_text, self.null_patient]) if cfg.cond_dim > 0 else self.null_text
            cond = torch.where(col, null.to(cond.dtype)[None, :], cond)
        return cond

    def sample_drop_mask(
        self, batch_size: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Condition dropout for training: (B,) Bernoulli(cfg.cond_dropout) with ``cond_dropout_mode="joint"``
        (the paper's single null condition), or (B, 2) independent [text, patient] draws with ``"separate"``."""
        if self.cfg.cond_dropout_mode == "separate":
            return torch.rand(batch_size, 2, generator=generator, device=device) < self.cfg.cond_dropout
        u = torch.rand(batch_size, generator=generator, device=device)
        return u < self.cfg.cond_dropout

    # -- forward ----------------------------------------------------------------------------------
    def _check_t(self, t: torch.Tensor | int, b: int, device: torch.device) -> torch.Tensor:
        if not torch.is_tensor(t):
            t = torch.tensor(t, device=device)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"timesteps must be an integer tensor (row index into the time table), got {t.dtype}")
        if t.dim() == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"timesteps must have shape (B,) = ({b},), got {tuple(t.shape)}")
        if t.device.type == "cpu" and t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.cfg.time_steps):
            raise ValueError(f"timesteps must lie in [0, {self.cfg.time_steps - 1}], got {t.tolist()}")
        return t.long()

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        text: torch.Tensor,
        patient: torch.Tensor | None = None,
        drop_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"x must be (B, {self.cfg.in_channels}, L), got {tuple(x.shape)}")
        b, _, length = x.shape
        if length % self.cfg.length_multiple:
            raise ValueError(f"length {length} is not divisible by 2**(levels-1) = {self.cfg.length_multiple}")
        t = self._check_t(t, b, x.device)
        cond = self.condition_vector(text, patient, drop_mask)
        skips = []
        h = x
        for stage in self.downsampling_blocks:
            h = stage.block(h, t, cond)
            skips.append(h)
            h = stage.down(h)
        skips.pop()  # the deepest block output is discarded, as in the reference
        h = self.bottelneck(h, t, cond)
        for j, stage in enumerate(self.upsampling_blocks):
            h = stage.up(h)
            if j > 0:
                h = torch.cat([h, skips.pop()], dim=1)
            h = stage.block(h, t, cond)
        return self.output_conv(h)

    # -- bookkeeping ------------------------------------------------------------------------------
    def unused_parameter_names(self) -> list[str]:
        """Parameters that never receive a gradient: dead ``Block.down`` convs and, when
        ``cross_attn_impl == 'bias'``, the cross-attention query/key path (``to_q``, ``to_k``,
        ``normalization``; the q/k thirds of ``in_proj_weight`` get zero gradient). The time tables are
        frozen anyway."""
        names = []
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if "block" in parts and parts[parts.index("block") + 1] == "down":
                names.append(name)
            elif self.cfg.cross_attn_impl == "bias" and "cross_attention" in parts:
                sub = parts[parts.index("cross_attention") + 1]
                if sub in ("to_q", "to_k", "normalization"):
                    names.append(name)
        return names

    def freeze_unused_parameters(self) -> list[str]:
        """Set ``requires_grad=False`` on :meth:`unused_parameter_names` (for DDP without
        ``find_unused_parameters``). Returns the names."""
        names = set(self.unused_parameter_names())
        for name, p in self.named_parameters():
            if name in names:
                p.requires_grad_(False)
        return sorted(names)

    def num_parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        frozen = sum(p.numel() for n, p in self.named_parameters() if n.endswith("time_emb.embeddings"))
        return {"total": total, "trainable": total - frozen, "time_tables": frozen}


def describe_paper_unet(cfg: PaperUNetConfig, latent_length: int = 128) -> list[dict[str, Any]]:
    """The paper's network of ``cfg`` level by level, for documentation: one dict per stage with ``stage``,
    ``channels in → out``, ``length`` (latent positions) and ``detail`` (skips); the numbers follow the arithmetic of
    :class:`ConditionalUNet1D`'s constructor."""
    rows: list[dict[str, Any]] = []
    length = latent_length
    chans = cfg.channels
    for i in range(cfg.levels - 1):
        rows.append(
            {
                "stage": f"down {i}",
                "channels in → out": f"{chans[i]} → {chans[i + 1]}",
                "length": length,
                "detail": "skip discarded" if i == cfg.levels - 2 else f"skip to up {cfg.levels - 2 - i}",
            }
        )
        length //= 2
    rows.append(
        {"stage": "bottleneck", "channels in → out": f"{chans[-1]} → {chans[-1]}", "length": length, "detail": ""}
    )
    for j in range(cfg.levels - 1):
        length *= 2
        c_in = chans[-1 - j] if j == 0 else 2 * chans[-1 - j]
        rows.append(
            {"stage": f"up {j}", "channels in → out": f"{c_in} → {chans[-2 - j]}", "length": length, "detail": ""}
        )
    return rows

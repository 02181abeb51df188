"""The paper's conditional 1-D U-Net (the authors' ``unet/unet_conditional.py``) with its state-dict key names.

What the authors' U-Net does, with its sources: book/reference_implementation.md#the-u-net.

``ConditionalUNet1D(UNetConfig.paper())`` has exactly the 713 keys of the released ``unet_all.pth``
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

The paper's network with our settings vs paper mode (``UNetConfig(arch="paper")`` vs ``UNetConfig.paper()``)
---------------------------------------------------------------------------------------------------------

(The default network, ``UNetConfig()``, is the FiLM U-Net of :mod:`~.film_unet`, the one the profiles train.)

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

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError, load_artifact
from .attention import CrossAttention, SelfAttention
from .condition import check_condition
from .embeddings import PAPER_TIME_DIM, PAPER_TIME_LOG_BASE, reference_time_table
from .film_unet import FiLMUNet1D

__all__ = [
    "UNetConfig",
    "ConditionalUNet1D",
    "Block",
    "Bottleneck",
    "TimeEmbedding",
    "build_unet",
    "describe_unet",
    "check_condition",
    "UNET_ARCHS",
    "unet_from_artifact",
]

#: ``paper``: the reference network (:class:`ConditionalUNet1D`); ``film``: :class:`~.film_unet.FiLMUNet1D`.
UNET_ARCHS = ("paper", "film")
COND_DROPOUT_MODES = ("joint", "separate")


@dataclass
class UNetConfig:
    """U-Net hyper-parameters. ``UNetConfig()`` is the default network, the FiLM U-Net the profiles train
    (:class:`~.film_unet.FiLMUNet1D`); ``UNetConfig(arch="paper", ...)`` is the paper's network
    (:class:`ConditionalUNet1D`) and ``UNetConfig.paper()`` the released 1536-d model. Fields marked "paper" are read
    by the paper's network only, "film" by the FiLM network only; the rest by both."""

    in_channels: int = 4
    levels: int = 7
    kernel_size: int = 7
    text_dim: int = 384
    cond_dim: int = 3
    time_steps: int = 1000
    width_mult: int = 1
    time_dim: int = PAPER_TIME_DIM
    time_hidden: int = 128
    time_log_base: float = PAPER_TIME_LOG_BASE
    attn_heads: int = 8
    attn_hidden_mult: int = 2
    bottleneck_kernel: int = 3
    bottleneck_heads: int = 4
    bottleneck_hidden: int = 32
    cross_attn_impl: str = "bias"
    keep_dead_params: bool = False
    cond_dropout: float = 0.1
    # "joint": text and patient dropped together (the paper's null condition); "separate": independently, so
    # guidance can act on the report alone (see DiffuSETSPipeline, guidance_on="text")
    cond_dropout_mode: str = "joint"
    arch: str = "film"
    # arch="film" only (models/film_unet.py)
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2, 4)
    res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2, 3)
    emb_dim: int = 256
    norm_groups: int = 32
    dropout: float = 0.0
    text_standardize: bool = True  # film: standardise text vectors with the training split's statistics
    # film: 0 = one vector per report (the ordered prompt); K > 0 = the prompt plus up to K statement tokens, each
    # statement embedded on its own, read by cross-attention in the attention levels (text is then (B, 1 + K, D))
    text_tokens: int = 0
    # film: 0 = standardise text per dimension; 0 < v < 1 = whiten within the training vectors' principal subspace
    # holding fraction v of their variance, removing directions they never span (text/standardize.py)
    text_subspace: float = 0.0

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attn_levels = tuple(int(a) for a in self.attn_levels)
        if self.arch not in UNET_ARCHS:
            raise ValueError(f"arch must be one of {UNET_ARCHS}, got {self.arch!r}")
        if self.cond_dropout_mode not in COND_DROPOUT_MODES:
            raise ValueError(f"cond_dropout_mode must be one of {COND_DROPOUT_MODES}, got {self.cond_dropout_mode!r}")
        if self.arch == "film":
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
        if self.text_tokens and self.arch != "film":
            raise ValueError("text_tokens > 0 (statement tokens) needs arch 'film'; the paper network takes one vector")
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2, got {self.levels}")
        if self.kernel_size % 2 == 0 or self.bottleneck_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd ('same' padding)")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.cross_attn_impl not in ("bias", "full"):
            raise ValueError(f"cross_attn_impl must be 'bias' or 'full', got {self.cross_attn_impl!r}")
        if self.text_dim < 1 or self.cond_dim < 0 or self.width_mult < 1:
            raise ValueError("text_dim >= 1, cond_dim >= 0 and width_mult >= 1 are required")

    @classmethod
    def paper(cls, text_dim: int = 1536, **overrides: Any) -> UNetConfig:
        """The reference ``ECGConditional(1000, kernel_size=7, num_levels=7, n_channels=4, text_dim)``."""
        kw: dict[str, Any] = dict(arch="paper", text_dim=text_dim, keep_dead_params=True, cond_dropout=0.0)
        kw.update(overrides)
        return cls(**kw)

    @property
    def channels(self) -> list[int]:
        """Block widths ``[in, 2*in*m, 4*in*m, ...]`` (paper: 4, 8, ..., 256)."""
        c = self.in_channels
        return [c] + [c * self.width_mult * 2 ** (i + 1) for i in range(self.levels - 1)]

    @property
    def length_multiple(self) -> int:
        """Input lengths must be divisible by this (2 ** (levels - 1); film: 2 ** (len(channel_mults) - 1))."""
        if self.arch == "film":
            return 2 ** (len(self.channel_mults) - 1)
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mults"], d["attn_levels"] = list(self.channel_mults), list(self.attn_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown UNetConfig fields: {sorted(unknown)}")
        return cls(**d)


class TimeEmbedding(nn.Module):
    """Frozen sinusoidal table (``embeddings``, an ``nn.Parameter`` with ``requires_grad=False`` so it is
    saved in the state dict like the reference's) -> Linear -> Mish -> Linear(n_out)."""

    def __init__(self, cfg: UNetConfig, n_out: int):
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

    def __init__(self, n_in: int, n_out: int, cfg: UNetConfig):
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

    def __init__(self, c: int, cfg: UNetConfig):
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
    def __init__(self, n_in: int, n_out: int, cfg: UNetConfig):
        super().__init__()
        self.down = nn.Conv1d(n_out, n_out, 3, stride=2, padding=1)
        self.block = Block(n_in, n_out, cfg)


class _UpStage(nn.Module):
    def __init__(self, c_up: int, n_in: int, n_out: int, cfg: UNetConfig):
        super().__init__()
        self.block = Block(n_in, n_out, cfg)
        self.up = nn.ConvTranspose1d(c_up, c_up, 4, stride=2, padding=1)


def build_unet(cfg: UNetConfig) -> nn.Module:
    """The network a config describes: :class:`ConditionalUNet1D` (``arch="paper"``) or
    :class:`~.film_unet.FiLMUNet1D` (``arch="film"``). Both take ``(x, t, text, patient, drop_mask)``."""
    if cfg.arch == "film":
        return FiLMUNet1D(cfg)
    return ConditionalUNet1D(cfg)


def unet_from_artifact(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The U-Net stored in a ``diffusets.unet`` artifact (``run/unet/model.pt``, written by
    :func:`~diffusets_core.train.unet.train_unet`), built with :func:`build_unet` from the stored config, and the
    artifact's ``meta`` (embedder identity, patient mode, schedule, ...). The model is on ``map_location``, in
    training mode as built.

    Raises:
        CheckpointError: unreadable file, another kind of artifact, or weights that do not fit the config.
    """
    ck = load_artifact(path, "diffusets.unet", "U-Net", map_location=map_location)
    unet = build_unet(UNetConfig.from_dict(ck["config"]))
    try:
        unet.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {exc}") from None
    return unet, ck["meta"]


class ConditionalUNet1D(nn.Module):
    """Epsilon-prediction U-Net: ``forward(x (B,C,L), t (B,) long, text (B,D)|(B,1,D), patient (B,3)) -> eps``."""

    def __init__(self, cfg: UNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else UNetConfig(arch="paper")
        if cfg.arch != "paper":
            raise ValueError(
                f"ConditionalUNet1D is the paper's network; a config with arch={cfg.arch!r} is built by build_unet(cfg)"
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


def describe_unet(cfg: UNetConfig, latent_length: int = 128) -> list[dict[str, Any]]:
    """The network of ``cfg`` level by level, for documentation: one dict per stage with ``stage``,
    ``channels in → out``, ``length`` (latent positions) and ``detail`` (skips, attention, conditioning).
    Works for both architectures; the numbers follow the same arithmetic as the constructors."""
    rows: list[dict[str, Any]] = []
    length = latent_length
    if cfg.arch == "film":
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        c = widths[0]
        rows.append(
            {"stage": "conv in", "channels in → out": f"{cfg.in_channels} → {c}", "length": length, "detail": ""}
        )
        for i, w in enumerate(widths):
            attn = (
                (", self-attention" + (" + cross-attention" if cfg.text_tokens else "")) if i in cfg.attn_levels else ""
            )
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
            f", cross-attention to {1 + cfg.text_tokens + (cfg.cond_dim > 0)} condition tokens"
            if cfg.text_tokens
            else ""
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
            attn = (
                (", self-attention" + (" + cross-attention" if cfg.text_tokens else "")) if i in cfg.attn_levels else ""
            )
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

"""A patient's own earlier ECG as a further condition: the reference encoder and the twin U-Net.

DiffuSETS' discussion names conditioning on the patient's own earlier ECG ("digital twins") as its first future
direction; the same group's ECGTwin (arXiv 2508.02720) does it with a reference-ECG encoder beside the report text,
but publishes no code. This is an open implementation on top of the FiLM U-Net (:mod:`.film_unet`):

* :class:`ReferenceEncoder` reads the reference ECG's latent (B, C, L) (the run's VAE encodes it, as it encodes the
  training ECGs) with a small strided convolution stack, then pools over time (mean and standard deviation of every
  channel): a vector that does not depend on where the beats fall (their number, hence the rate, still shapes the
  statistics), so the reference's rhythm is not copied position by position; a two-layer MLP maps it to the U-Net's ``emb_dim``. The last
  layer is zero-initialised, so a twin built from a trained U-Net starts as exactly that U-Net.
* :class:`TwinUNet1D` adds that vector to the condition embedding every FiLM block reads
  (``FiLMUNet1D.forward(..., extra_emb=...)``), beside time, report and patient values. ``reference=None`` runs the
  wrapped network unchanged (bit for bit); a row whose ``reference_drop`` is set contributes nothing, which is what
  reference dropout in training (``reference_dropout``) teaches the model to handle, so one model generates with or
  without a reference and guidance can act on the reference on its own (:class:`ReferenceConditioned`).

* optionally (``tokens: true``) the encoder's positions are also given as tokens to a zero-initialised
  cross-attention at every attention site of the U-Net (``FiLMUNet1D.forward(..., extra_attend=...)``), so the network
  can look up the reference's beat shapes where it draws its own.

Training (:mod:`diffusets_core.train.twin`) first teaches the encoder to recognise a subject contrastively
(:mod:`diffusets_core.train.twin_identity`), then fine-tunes the whole twin, the encoder at a higher learning rate
(:meth:`TwinUNet1D.optimizer_groups`). Only the FiLM network takes a reference (the paper's network has no place for
one, and paper mode stays as it is).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from .film_unet import CrossAttention, FiLMUNet1D

__all__ = ["ReferenceEncoderConfig", "ReferenceEncoder", "TwinUNet1D", "ReferenceConditioned", "is_twin"]


@dataclass
class ReferenceEncoderConfig:
    """The reference encoder's settings. ``channels``: widths of the strided convolution stages (each halves the
    latent length); ``reference_dropout``: the share of training samples whose reference is dropped (so the model
    also generates without one and guidance can act on the reference). ``in_channels`` and ``emb_dim`` are the
    twin's U-Net's (set from it).

    Raises:
        ValueError: a value out of range (the message names the field).
    """

    in_channels: int = 8
    emb_dim: int = 256
    channels: tuple[int, ...] = (64, 128, 128)
    norm_groups: int = 8
    reference_dropout: float = 0.3
    #: also give the reference as tokens (its encoded positions, ``L / 2 ** len(channels)`` of them) read by a
    #: cross-attention at every attention site of the U-Net (zero-initialised), beside the pooled vector
    tokens: bool = False
    attn_heads: int = 4

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"reference encoder channels must be >= 1, got {list(self.channels)}")
        if self.in_channels < 1 or self.emb_dim < 1:
            raise ValueError("reference encoder in_channels and emb_dim must be >= 1")
        if not 0.0 <= self.reference_dropout < 1.0:
            raise ValueError(f"reference_dropout must be in [0, 1), got {self.reference_dropout}")

    def to_dict(self) -> dict[str, Any]:
        """Every field, tuples as lists (JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceEncoderConfig:
        """The config of ``d``. Raises ValueError naming keys that are not fields."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown reference encoder fields: {unknown} (known: {[f.name for f in fields(cls)]})")
        return cls(**d)


def _gn(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c)


class ReferenceEncoder(nn.Module):
    """Reference latent (B, in_channels, L) -> (B, emb_dim): strided convolutions, mean and standard deviation over
    time, MLP with a zero-initialised last layer (module docstring)."""

    def __init__(self, cfg: ReferenceEncoderConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = cfg.in_channels
        for w in cfg.channels:
            layers += [nn.Conv1d(c, w, 3, stride=2, padding=1), _gn(w, cfg.norm_groups), nn.SiLU()]
            layers += [nn.Conv1d(w, w, 3, padding=1), _gn(w, cfg.norm_groups), nn.SiLU()]
            c = w
        self.convs = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(2 * c, cfg.emb_dim), nn.SiLU(), nn.Linear(cfg.emb_dim, cfg.emb_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The convolution stack's output (B, channels[-1], L / 2 ** len(channels)). Raises ValueError for a tensor
        that is not (B, in_channels, L)."""
        if z.dim() != 3 or z.shape[1] != self.cfg.in_channels:
            raise ValueError(f"reference latents must be (B, {self.cfg.in_channels}, L), got {tuple(z.shape)}")
        return self.convs(z.float())

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """Features (B, C, T) -> the (B, emb_dim) vector: mean and standard deviation over time, then the MLP."""
        return self.mlp(torch.cat([h.mean(dim=-1), h.std(dim=-1, unbiased=False)], dim=-1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, L) -> (B, emb_dim). Raises ValueError for another shape."""
        return self.pool(self.features(z))


class TwinUNet1D(nn.Module):
    """A FiLM U-Net that can also read a reference ECG's latent (module docstring).

    ``forward(x, t, text, patient, drop_mask, reference=None, reference_drop=None)``: ``reference`` (B, C, L_ref)
    or (1, C, L_ref) latents of the reference ECGs (any length the encoder can halve ``len(channels)`` times; one
    reference is shared by the whole batch); ``reference_drop`` (B,) bool drops it row by row. :attr:`cfg` is the
    wrapped network's config, so samplers, pipeline and trainer treat it as that network.

    Raises:
        ValueError: ``base`` is not a :class:`~.film_unet.FiLMUNet1D`, or the encoder's widths do not match it.
    """

    def __init__(self, base: nn.Module, reference_cfg: ReferenceEncoderConfig):
        super().__init__()
        if not isinstance(base, FiLMUNet1D):
            raise ValueError(
                f"a reference ECG conditions the FiLM network only (arch 'film'), not {type(base).__name__}"
            )
        if reference_cfg.emb_dim != base.cfg.emb_dim or reference_cfg.in_channels != base.cfg.in_channels:
            raise ValueError(
                f"reference encoder (in_channels {reference_cfg.in_channels}, emb_dim {reference_cfg.emb_dim}) does "
                f"not fit the U-Net (in_channels {base.cfg.in_channels}, emb_dim {base.cfg.emb_dim})"
            )
        self.base = base
        self.reference_cfg = reference_cfg
        self.reference_encoder = ReferenceEncoder(reference_cfg)
        if reference_cfg.tokens:
            e, g = reference_cfg.emb_dim, base.cfg.norm_groups
            self.reference_tokens = nn.Conv1d(reference_cfg.channels[-1], e, 1)
            self.reference_attn = nn.ModuleList(
                [CrossAttention(c, e, reference_cfg.attn_heads, g) for c in base.attention_sites()]
            )
        #: the encoder's learning rate relative to the base network's in :meth:`optimizer_groups` (a training
        #: setting, not saved with the weights): the new encoder starts from zero while the base is already trained
        self.encoder_lr_scale = 1.0

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the trainer: the base network at the trainer's rate, the reference encoder at
        ``encoder_lr_scale`` times it."""
        base = {id(p) for p in self.base.parameters()}
        return [
            {"params": list(self.base.parameters()), "lr_scale": 1.0},
            {"params": [p for p in self.parameters() if id(p) not in base], "lr_scale": float(self.encoder_lr_scale)},
        ]

    @property
    def cfg(self):
        """The wrapped U-Net's config (what samplers and guidance checks read)."""
        return self.base.cfg

    def sample_drop_mask(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The wrapped network's report / patient dropout (see :meth:`FiLMUNet1D.sample_drop_mask`)."""
        return self.base.sample_drop_mask(*args, **kwargs)

    def sample_reference_drop(
        self, batch_size: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B,) Bernoulli(``reference_dropout``) rows whose reference is dropped in training."""
        u = torch.rand(batch_size, generator=generator, device=device)
        return u < self.reference_cfg.reference_dropout

    def reference_embedding(
        self, reference: torch.Tensor, batch: int, reference_drop: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(vector (B, emb_dim), tokens (B, T, emb_dim) | None, keep (B, 1) float)``: what the reference adds to
        the condition embedding (zero in dropped rows), its tokens (with ``tokens``) and which rows keep it.

        Raises:
            ValueError: ``reference`` neither one row nor ``batch`` rows, or ``reference_drop`` not (batch,)."""
        h = self.reference_encoder.features(reference)
        if h.shape[0] == 1 and batch != 1:
            h = h.expand(batch, -1, -1)
        if h.shape[0] != batch:
            raise ValueError(f"reference: expected 1 or {batch} latents (the batch), got {reference.shape[0]}")
        r = self.reference_encoder.pool(h)
        keep = torch.ones(batch, 1, device=r.device, dtype=r.dtype)
        if reference_drop is not None:
            drop = reference_drop.to(device=r.device, dtype=torch.bool)
            if drop.shape != (batch,):
                raise ValueError(f"reference_drop must be ({batch},), got {tuple(drop.shape)}")
            keep = (~drop)[:, None].to(r.dtype)
        tokens = self.reference_tokens(h).transpose(1, 2) if self.reference_cfg.tokens else None
        return r * keep, tokens, keep

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        text: torch.Tensor,
        patient: torch.Tensor | None = None,
        drop_mask: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        reference_drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The noise prediction (B, C, L); without ``reference`` exactly the wrapped network's."""
        if reference is None:
            return self.base(x, t, text, patient, drop_mask)
        vector, tokens, keep = self.reference_embedding(reference.to(x.device), x.shape[0], reference_drop)
        attend = None
        if tokens is not None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

            def attend(site: int, h: torch.Tensor) -> torch.Tensor:
                # a dropped row keeps h unchanged: its reference reaches no site
                return h + keep[:, :, None].to(h.dtype) * (self.reference_attn[site](h, tokens, mask) - h)

        return self.base(x, t, text, patient, drop_mask, extra_emb=vector, extra_attend=attend)

    # -- the wrapped network's bookkeeping interface -----------------------------------------------------------
    def unused_parameter_names(self) -> list[str]:
        return []

    def freeze_unused_parameters(self) -> list[str]:
        return []

    def num_parameters(self) -> dict[str, int]:
        """The counts of the whole twin, and ``reference_encoder`` (every part the twin adds)."""
        counts = self.base.num_parameters()
        base = {id(p) for p in self.base.parameters()}
        enc = sum(p.numel() for p in self.parameters() if id(p) not in base)
        return {
            **counts,
            "total": counts["total"] + enc,
            "trainable": counts["trainable"] + enc,
            "reference_encoder": enc,
        }


def is_twin(model: nn.Module) -> bool:
    """Whether ``model`` reads a reference ECG (a :class:`TwinUNet1D`, possibly bound by :class:`ReferenceConditioned`)."""
    return isinstance(model, (TwinUNet1D, ReferenceConditioned))


class ReferenceConditioned(nn.Module):
    """A :class:`TwinUNet1D` with its references bound, called as any U-Net is (``(x, t, text, patient,
    drop_mask)``), so the samplers and the report's classifier-free guidance run unchanged.

    ``reference`` (B, C, L_ref) latents, one per generated ECG (or (1, C, L_ref) for all). A batch that is a multiple
    k of B (the guided prediction stacks the conditional and unconditional halves) reads the references tiled k
    times. ``reference_guidance`` s acts on the reference alone: ``eps(no reference) + s (eps(reference) -
    eps(no reference))`` for whatever report condition the call carries (s = 1: the plain prediction with the
    reference, one network call; s = 0: without it). Composed with the report's guidance ``eps_u + g (eps_c -
    eps_u)``, each branch guided on the reference this way, the result is ``R(u) + g (R(c) - R(u))`` with
    ``R(x) = x0 + s (x1 - x0)`` (0/1: without/with the reference): the report's guidance acts on reference-guided
    predictions. At s = 1 that is plain report guidance with the reference in both branches; for s != 1 it is not
    the two-condition form of Brooks et al. 2023 (InstructPix2Pix, §3.2), which guides the reference only in the
    report-free branch.

    Raises:
        ValueError: ``reference_guidance`` not finite or < 0; at call time a batch that is not a multiple of B.
    """

    def __init__(self, twin: TwinUNet1D, reference: torch.Tensor, reference_guidance: float = 1.0):
        super().__init__()
        if not isinstance(twin, TwinUNet1D):
            raise ValueError(f"ReferenceConditioned binds a TwinUNet1D, got {type(twin).__name__}")
        s = float(reference_guidance)
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"reference_guidance must be a finite number >= 0, got {reference_guidance!r}")
        self.twin = twin
        self.reference = reference
        self.reference_guidance = s

    @property
    def cfg(self):
        return self.twin.cfg

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        text: torch.Tensor,
        patient: torch.Tensor | None = None,
        drop_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, r = x.shape[0], self.reference.shape[0]
        if r != 1 and b % r:
            raise ValueError(f"a batch of {b} cannot read {r} references (not a multiple)")
        ref = self.reference if r == 1 else self.reference.repeat(b // r, 1, 1)
        if self.reference_guidance == 0.0:
            return self.twin(x, t, text, patient, drop_mask)
        with_ref = self.twin(x, t, text, patient, drop_mask, reference=ref)
        if self.reference_guidance == 1.0:
            return with_ref
        without = self.twin(x, t, text, patient, drop_mask)
        return without + self.reference_guidance * (with_ref - without)

"""The paper's 1-D Stable-Diffusion-style VAE (the authors' ``vae/vae_model.py``): 12 x 1024 ECG <-> 4 x 128 latent.

What the authors' VAE does, with its sources: book/reference_implementation.md#the-vae.

Layout and checkpoint compatibility
-----------------------------------
:class:`VAEEncoder` and :class:`VAEDecoder` are ``nn.Sequential`` subclasses whose indices reproduce the
reference's state-dict keys exactly at paper widths (``0.weight``, ``1.groupnorm_1.weight``,
``13.attention.in_proj.weight``, ...; checked key by key against tests/fixtures/reference/vae_keys.json).
The released ``vae_model.pth`` is ``{'encoder': ..., 'decoder': ...}``; load it with
:func:`diffusets_core.models.reference.load_reference_vae`.

Our API is channels-first, ``(B, 12, L)`` signals and ``(B, 4, L/8)`` latents. The reference's
``(B, L, 12)`` signal layout is available per call with ``layout="BLC"``.

Differences from the reference (switches, not forks)
----------------------------------------------------
* The decoder never modifies its input (the reference divides the caller's tensor in place).
* ``scale_factor``: latent scale. ``None`` (our default) means "measured from data": it acts as 1.0 until
  :meth:`VAE.set_scale_factor` is called with e.g. :func:`estimate_scale_factor` of training latents. Paper
  mode uses 0.18215. The encoder's ``z`` is multiplied by it, the decoder divides by it.
* ``norm_groups``: GroupNorm groups (paper 32); each norm uses ``gcd(norm_groups, C)`` groups so small
  widths (e.g. ``channels=(32, 32, 64)``) work.
* ``attn_norm``: the attention block's GroupNorm is constructed but *not applied* in the reference (dead
  parameters, kept for loading). ``attn_norm=True`` applies it (as Stable Diffusion does); default False.
* ``loss_reduction`` (see :meth:`VAE.loss`): ``"mean"`` (default) or ``"paper"``.
* ``latent_norm="channel"``: latents are standardised per channel with the training split's statistics
  (:meth:`VAE.set_latent_stats`). Diffusion starts from zero-mean noise; with a light KL term some latent channels
  sit far from zero mean (one at about -1 with a standard deviation of 0.2 in the cpu profile), which a sampler
  started from N(0, I) never reaches. ``"global"`` (default, paper) keeps one scale factor.
* ``derived_leads``: encode and decode only the eight independent leads (I, II, V1–V6) and compute III, aVR,
  aVL, aVF from I and II (:func:`~diffusets_core.data.limb_leads.derive_limb_leads`), so every decoded ECG
  satisfies Einthoven's and Goldberger's identities exactly, as ECG machines' output does. The API stays
  12-lead in and out. Off in paper mode (the released VAE models all 12 leads).
* ``derivative_weight``: adds ``w * MSE(diff(x_hat), diff(x))`` (first differences along time, mV per sample) to the reconstruction loss, a term
  that weights steep deflections (QRS, P onsets) that plain MSE, dominated by the slow T wave and baseline,
  lets the decoder smooth away. 0 (default, paper) disables it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_artifact
from ..data.limb_leads import INDEPENDENT_LEADS, derive_limb_leads, independent_leads
from ..layout import vae_model
from ..settings import dataclass_from_dict
from .attention import FusedSelfAttention

__all__ = [
    "load_vae",
    "VAEConfig",
    "VAEEncoder",
    "VAEDecoder",
    "VAE",
    "ResBlock",
    "AttnBlock",
    "estimate_scale_factor",
    "PAPER_SCALE_FACTOR",
]

#: Stable Diffusion's latent scale, copied by the paper.
PAPER_SCALE_FACTOR = 0.18215


@dataclass
class VAEConfig:
    """VAE hyper-parameters. ``VAEConfig.paper()`` is the released model."""

    in_channels: int = 12
    channels: tuple[int, ...] = (128, 256, 512)
    latent_channels: int = 4
    mid_attention: bool = True
    attn_heads: int = 1
    attn_norm: bool = False
    norm_groups: int = 32
    logvar_clamp: tuple[float, float] = (-30.0, 20.0)
    scale_factor: float | None = None
    loss_reduction: str = "mean"
    derived_leads: bool = False
    derivative_weight: float = 0.0
    # "global": one scale for all latent values (the paper's scheme; scale_factor). "channel": each latent channel
    # shifted and scaled to zero mean, unit variance with training statistics (latent_mean / latent_std)
    latent_norm: str = "global"
    latent_mean: list[float] | None = None
    latent_std: list[float] | None = None

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.logvar_clamp = (float(self.logvar_clamp[0]), float(self.logvar_clamp[1]))
        if len(self.channels) < 1:
            raise ValueError("VAEConfig.channels must list at least one width")
        if self.loss_reduction not in ("mean", "paper"):
            raise ValueError(f"loss_reduction must be 'mean' or 'paper', got {self.loss_reduction!r}")
        if self.derived_leads and self.in_channels != 12:
            raise ValueError(
                f"derived_leads needs 12-lead signals (in_channels=12), got in_channels={self.in_channels}"
            )
        if self.derivative_weight < 0:
            raise ValueError(f"derivative_weight must be >= 0, got {self.derivative_weight}")
        if self.latent_norm not in ("global", "channel"):
            raise ValueError(f"latent_norm must be 'global' or 'channel', got {self.latent_norm!r}")
        for name in ("latent_mean", "latent_std"):
            v = getattr(self, name)
            if v is not None:
                v = [float(x) for x in v]
                if len(v) != self.latent_channels or not all(math.isfinite(x) for x in v):
                    raise ValueError(f"{name} must list {self.latent_channels} finite numbers, got {v}")
                setattr(self, name, v)
        if self.latent_std is not None and min(self.latent_std) <= 0:
            raise ValueError(f"latent_std must be positive, got {self.latent_std}")

    @property
    def io_channels(self) -> int:
        """Channels the encoder reads and the decoder writes: 8 with ``derived_leads``, else ``in_channels``."""
        return len(INDEPENDENT_LEADS) if self.derived_leads else self.in_channels

    @property
    def downsample_factor(self) -> int:
        return 2 ** len(self.channels)

    @classmethod
    def paper(cls, **overrides: Any) -> VAEConfig:
        """The reference VAE (released ``vae_model.pth``): scale 0.18215, paper loss reduction."""
        kw: dict[str, Any] = dict(scale_factor=PAPER_SCALE_FACTOR, loss_reduction="paper")
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def tiny(cls, **overrides: Any) -> VAEConfig:
        """Small widths for smoke tests / CPU profiles."""
        kw: dict[str, Any] = dict(channels=(32, 32, 64))
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["logvar_clamp"] = list(self.logvar_clamp)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        return dataclass_from_dict(cls, d)


def _groups(norm_groups: int, channels: int) -> int:
    return math.gcd(norm_groups, channels)


def _norm(groups: int, c: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(groups, c), c)


class ResBlock(nn.Module):
    """GN -> SiLU -> Conv(k3) -> GN -> SiLU -> Conv(k3), plus identity or 1x1-conv skip."""

    def __init__(self, c_in: int, c_out: int, norm_groups: int = 32):
        super().__init__()
        self.groupnorm_1 = _norm(norm_groups, c_in)
        self.conv_1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.groupnorm_2 = _norm(norm_groups, c_out)
        self.conv_2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.residual_layer = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_1(F.silu(self.groupnorm_1(x)))
        h = self.conv_2(F.silu(self.groupnorm_2(h)))
        return h + self.residual_layer(x)


class AttnBlock(nn.Module):
    """Single-head self-attention over time with residual. ``groupnorm`` is applied only if ``apply_norm``
    (the reference constructs but never applies it)."""

    def __init__(self, channels: int, norm_groups: int = 32, heads: int = 1, apply_norm: bool = False):
        super().__init__()
        self.groupnorm = _norm(norm_groups, channels)
        self.attention = FusedSelfAttention(channels, heads)
        self.apply_norm = apply_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.groupnorm(x) if self.apply_norm else x
        h = self.attention(h.transpose(1, 2)).transpose(1, 2)
        return x + h


class _Downsample(nn.Conv1d):
    """Stride-2 conv (k3, no padding) after padding one zero on the right: L -> L/2 exactly."""

    def __init__(self, c: int):
        super().__init__(c, c, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(F.pad(x, (0, 1)))


class VAEEncoder(nn.Sequential):
    """(B, in_channels, L) -> ``(z, mean, logvar)``, each (B, latent_channels, L / 2**len(channels)).

    Module indices at paper widths: 0 conv_in; 1,2 Res; 3 Down; 4,5 Res; 6 Down; 7,8 Res; 9 Down;
    10-12 Res; 13 Attn; 14 Res; 15 GN; 16 SiLU; 17 Conv(->2*latent, k3); 18 Conv(k1).
    """

    def __init__(self, cfg: VAEConfig):
        g = cfg.norm_groups
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv1d(cfg.io_channels, ch[0], 3, padding=1)]
        c = ch[0]
        for c_out in ch:
            layers += [ResBlock(c, c_out, g), ResBlock(c_out, c_out, g), _Downsample(c_out)]
            c = c_out
        layers += [ResBlock(c, c, g), ResBlock(c, c, g), ResBlock(c, c, g)]
        if cfg.mid_attention:
            layers.append(AttnBlock(c, g, cfg.attn_heads, cfg.attn_norm))
        layers += [
            ResBlock(c, c, g),
            _norm(g, c),
            nn.SiLU(),
            nn.Conv1d(c, 2 * cfg.latent_channels, 3, padding=1),
            nn.Conv1d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1),
        ]
        super().__init__(*layers)
        self.latent_channels = cfg.latent_channels
        self.logvar_clamp = cfg.logvar_clamp
        self.scale_factor = cfg.scale_factor

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, logvar)`` (logvar clamped), unscaled."""
        h = super().forward(x)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(*self.logvar_clamp)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, noise: torch.Tensor | None = None, *, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z = (mean + exp(logvar/2) * noise) * scale``; ``noise`` drawn if not given; ``sample=False``
        returns the scaled mean as z."""
        mean, logvar = self.moments(x)
        if sample:
            if noise is None:
                noise = torch.randn_like(mean)
            z = mean + torch.exp(logvar).sqrt() * noise
        else:
            z = mean
        scale = 1.0 if self.scale_factor is None else self.scale_factor
        return z * scale, mean, logvar


class VAEDecoder(nn.Sequential):
    """(B, latent_channels, l) -> (B, in_channels, l * 2**len(channels)). Never modifies its input.

    Module indices at paper widths: 0 Conv(k1); 1 Conv(->512); 2 Res; 3 Attn; 4 Res; 5-7 Res;
    8 Up; 9 Conv; 10-12 Res; 13 Up; 14 Conv; 15-17 Res; 18 Up; 19 Conv; 20-22 Res; 23 GN; 24 SiLU; 25 Conv.
    """

    def __init__(self, cfg: VAEConfig):
        g = cfg.norm_groups
        lc = cfg.latent_channels
        c = cfg.channels[-1]
        layers: list[nn.Module] = [nn.Conv1d(lc, lc, 1), nn.Conv1d(lc, c, 3, padding=1), ResBlock(c, c, g)]
        if cfg.mid_attention:
            layers.append(AttnBlock(c, g, cfg.attn_heads, cfg.attn_norm))
        layers += [ResBlock(c, c, g) for _ in range(4)]
        for c_out in reversed(cfg.channels):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(c, c, 3, padding=1),
                ResBlock(c, c_out, g),
                ResBlock(c_out, c_out, g),
                ResBlock(c_out, c_out, g),
            ]
            c = c_out
        layers += [_norm(g, c), nn.SiLU(), nn.Conv1d(c, cfg.io_channels, 3, padding=1)]
        super().__init__(*layers)
        self.scale_factor = cfg.scale_factor

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        scale = 1.0 if self.scale_factor is None else self.scale_factor
        return self.decode_unscaled(z / scale)  # out of place: the caller's z is untouched

    def decode_unscaled(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent that is NOT multiplied by the scale factor."""
        return super().forward(z)


def _to_bcl(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "BCL":
        return x
    if layout == "BLC":
        return x.transpose(1, 2)
    raise ValueError(f"layout must be 'BCL' or 'BLC', got {layout!r}")


def estimate_scale_factor(latents: torch.Tensor) -> float:
    """Latent scale from unscaled latents (e.g. posterior means of training data): ``1 / std``."""
    std = latents.detach().float().std().item()
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"cannot estimate a scale factor from latents with std {std}")
    return 1.0 / std


class VAE(nn.Module):
    """Encoder + decoder. State dict = ``{'encoder.*', 'decoder.*'}``; :meth:`reference_state_dict` gives
    the released file's nested layout."""

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else VAEConfig()
        self.encoder = VAEEncoder(self.cfg)
        self.decoder = VAEDecoder(self.cfg)

    @classmethod
    def from_artifact(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VAE:
        """The VAE stored in a ``diffusets.vae`` artifact (``run/vae/model.pt``, written by
        :func:`~diffusets_core.train.vae.train_vae`): EMA weights, latent scale (or per-channel statistics) set,
        on ``map_location``, in eval mode.

        Raises:
            CheckpointError: unreadable file or another kind of artifact.
        """
        ck = load_artifact(path, "diffusets.vae", "VAE", map_location=map_location)
        vae = cls(VAEConfig.from_dict(ck["config"]))
        vae.load_state_dict(ck["state_dict"])
        return vae.to(map_location).eval()

    # -- latent scale ---------------------------------------------------------------------------
    @property
    def scale_factor(self) -> float:
        """Effective latent scale (1.0 while ``cfg.scale_factor`` is None)."""
        return 1.0 if self.cfg.scale_factor is None else float(self.cfg.scale_factor)

    def set_scale_factor(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"scale factor must be a positive finite number, got {value}")
        self.cfg.scale_factor = value
        self.encoder.scale_factor = value
        self.decoder.scale_factor = value

    # -- API --------------------------------------------------------------------------------------
    def encode(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, *, sample: bool = True, layout: str = "BCL"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Signal (B, 12, L) (or (B, L, 12) with ``layout="BLC"``) -> ``(z, mean, logvar)``; z is scaled (and, with
        ``latent_norm="channel"`` and measured statistics, standardised per channel)."""
        z, mean, logvar = self.encoder(self._inputs(_to_bcl(x, layout)), noise, sample=sample)
        stats = self._channel_stats(z)
        if stats is not None:
            z = (z - stats[0]) / stats[1]
        return z, mean, logvar

    def decode(self, z: torch.Tensor, *, layout: str = "BCL") -> torch.Tensor:
        """Scaled latent (B, 4, l) -> signal (B, 12, 8l) (or (B, 8l, 12) with ``layout="BLC"``)."""
        stats = self._channel_stats(z)
        if stats is not None:
            z = z * stats[1] + stats[0]
        return _to_bcl(self._outputs(self.decoder(z)), layout)

    def _channel_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        c = self.cfg
        if c.latent_norm != "channel" or c.latent_mean is None or c.latent_std is None:
            return None
        mean = torch.tensor(c.latent_mean, dtype=like.dtype, device=like.device)[None, :, None]
        std = torch.tensor(c.latent_std, dtype=like.dtype, device=like.device)[None, :, None]
        return mean, std

    def set_latent_stats(self, mean: Any, std: Any) -> None:
        """Per-channel latent statistics (latent_channels,) of the training posterior means (after the scale
        factor), used by ``latent_norm="channel"``: ``encode`` returns ``(z - mean) / std`` and ``decode``
        inverts it, so diffusion sees zero-mean, unit-variance channels whatever the KL weight left them at."""
        self.cfg.latent_mean = [float(v) for v in mean]
        self.cfg.latent_std = [float(v) for v in std]
        self.cfg.__post_init__()

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior ``(mean, logvar)``, each (B, latent_channels, L/8), of 12-lead signals (B, 12, L)."""
        return self.encoder.moments(self._inputs(x))

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return independent_leads(x) if self.cfg.derived_leads else x

    def _outputs(self, y: torch.Tensor) -> torch.Tensor:
        return derive_limb_leads(y) if self.cfg.derived_leads else y

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction of x (B, 12, L) through a sampled latent."""
        z, _, _ = self.encode(x, noise)
        return self.decode(z)

    def loss(
        self, x: torch.Tensor, kl_weight: float = 1.0, noise: torch.Tensor | None = None, reduction: str | None = None
    ) -> dict[str, torch.Tensor]:
        """Returns ``{'loss', 'recon', 'kl', 'x_hat'}`` with ``loss = recon + kl_weight * kl``.

        ``reduction`` (default ``cfg.loss_reduction``):

        * ``"mean"``: ``recon`` = mean squared error per signal value; ``kl`` = per-sample KL summed over
          all latent values, averaged over the batch and divided by the number of signal values per
          sample. Both are per-signal-value quantities, so ``kl_weight=1`` is the usual (beta=1) ELBO
          balance for a unit-variance Gaussian decoder, independent of L and batch size.
        * ``"paper"``: the reference: ``recon`` = sum of squared errors / B (per-sample SSE); ``kl`` =
          KL summed over latent channels, then averaged over batch AND latent positions (~1/128 of a
          per-sample KL, i.e. very weak KL pressure).
        """
        reduction = reduction or self.cfg.loss_reduction
        mean, logvar = self.encoder.moments(self._inputs(x))
        if noise is None:
            noise = torch.randn_like(mean)
        z = mean + torch.exp(0.5 * logvar) * noise
        x_hat = self._outputs(self.decoder.decode_unscaled(z))
        # reductions in float32 even under bf16/fp16 autocast
        mean, logvar, x_hat_f, x = mean.float(), logvar.float(), x_hat.float(), x.float()
        kl_elem = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, C, l)
        b = x.shape[0]
        if reduction == "mean":
            recon = F.mse_loss(x_hat_f, x)
            kl = kl_elem.sum() / (b * x[0].numel())
        elif reduction == "paper":
            recon = (x_hat_f - x).pow(2).sum() / b
            kl = kl_elem.sum(dim=1).mean()
        else:
            raise ValueError(f"reduction must be 'mean' or 'paper', got {reduction!r}")
        if self.cfg.derivative_weight > 0:
            d = (x_hat_f.diff(dim=-1) - x.diff(dim=-1)).pow(2)
            recon = recon + self.cfg.derivative_weight * (d.mean() if reduction == "mean" else d.sum() / b)
        return {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl, "x_hat": x_hat}

    def reference_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{'encoder': ..., 'decoder': ...}``, the layout of the released ``vae_model.pth``."""
        return {"encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict()}

    def num_parameters(self) -> dict[str, int]:
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        return {"encoder": enc, "decoder": dec, "total": enc + dec}

    def unused_parameter_names(self) -> list[str]:
        """Parameters that never receive a gradient: the ``groupnorm`` of every attention block built with
        ``apply_norm=False`` (the reference constructs it and never applies it, and keeps it in its state dict)."""
        names = []
        for mod_name, mod in self.named_modules():
            if isinstance(mod, AttnBlock) and not mod.apply_norm:
                names += [f"{mod_name}.groupnorm.{n}" for n, _ in mod.groupnorm.named_parameters()]
        return names

    def freeze_unused_parameters(self) -> list[str]:
        """Set ``requires_grad=False`` on :meth:`unused_parameter_names`, so DistributedDataParallel (which
        refuses parameters that get no gradient unless ``find_unused_parameters``) can train the VAE under
        torchrun. Returns the names."""
        names = set(self.unused_parameter_names())
        for name, p in self.named_parameters():
            if name in names:
                p.requires_grad_(False)
        return sorted(names)


def load_vae(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """The trained VAE of a run (``run/vae/model.pt``: EMA weights, latent scale set), on ``device``, in eval
    mode; see :meth:`VAE.from_artifact`."""
    return VAE.from_artifact(vae_model(run_dir), map_location=device)

"""What both U-Nets share: the settings both read (:class:`UNetConfigBase`) and the validation of their condition
(:func:`check_condition`).

Each network has its own config, a subclass of :class:`UNetConfigBase` in the network's module:
:class:`~.unet.PaperUNetConfig` for the paper's :class:`~.unet.ConditionalUNet1D`, :class:`~.film_unet.FiLMUNetConfig`
for :class:`~.film_unet.FiLMUNet1D`. Building a network from a config, and a config from a stored or profile dict
(which names the network by ``arch``), is :mod:`.factory`'s business. This module imports nothing from the other
U-Net modules, so the networks and the factory import it without a cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

import torch

__all__ = ["COND_DROPOUT_MODES", "UNetConfigBase", "check_condition"]

#: ``joint``: text and patient dropped together (the paper's null condition); ``separate``: independently, so guidance
#: can act on the report alone (see ``DiffuSETSPipeline``, ``guidance_on="text"``).
COND_DROPOUT_MODES = ("joint", "separate")

_Config = TypeVar("_Config", bound="UNetConfigBase")


@dataclass
class UNetConfigBase:
    """The settings both U-Nets read: the latent channels (``in_channels``), the condition (``text_dim``-d text,
    ``cond_dim`` patient values: sex, age, HR; 0 = text only), the convolution kernel, the attention heads, the
    number of diffusion timesteps (the paper network's time tables have that many rows and it refuses other
    timesteps; the FiLM network's sinusoidal embedding takes any) and the condition dropout of training
    (``cond_dropout`` > 0 creates the learned null condition classifier-free guidance needs).

    Raises:
        ValueError: a value out of range (the message names the field).
    """

    #: the network the config builds, ``"paper"`` or ``"film"``: set by each subclass, stored in its dict
    arch: ClassVar[str]

    in_channels: int = 4
    kernel_size: int = 7
    text_dim: int = 384
    cond_dim: int = 3
    time_steps: int = 1000
    attn_heads: int = 8
    cond_dropout: float = 0.1
    cond_dropout_mode: str = "joint"

    def __post_init__(self) -> None:
        if self.cond_dropout_mode not in COND_DROPOUT_MODES:
            raise ValueError(f"cond_dropout_mode must be one of {COND_DROPOUT_MODES}, got {self.cond_dropout_mode!r}")
        if self.kernel_size % 2 == 0:
            raise ValueError("kernel sizes must be odd ('same' padding)")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.text_dim < 1 or self.cond_dim < 0:
            raise ValueError("text_dim >= 1 and cond_dim >= 0 are required")

    @property
    def text_tokens(self) -> int:
        """Statement tokens read besides the prompt vector: 0, one text vector per report. The FiLM network's config
        overrides this with a field (``text_tokens = K > 0``: text is then (B, 1 + K, text_dim))."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """``{"arch": ..., <every field>}`` with tuples as lists (JSON); :meth:`from_dict` and
        :func:`~.factory.unet_config_from_dict` read it back."""
        d = asdict(self)
        return {"arch": self.arch, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}

    @classmethod
    def from_dict(cls: type[_Config], d: dict[str, Any]) -> _Config:
        """The config of ``d``: this class's fields, and optionally ``arch`` (which must be this network's).

        Raises:
            ValueError: an ``arch`` of another network, or keys that are not fields of this class (named). A dict
                that may name either network, or hold the other network's fields, goes through
                :func:`~.factory.unet_config_from_dict`.
        """
        d = dict(d)
        arch = d.pop("arch", cls.arch)
        if arch != cls.arch:
            raise ValueError(f"{cls.__name__} is arch {cls.arch!r}, got arch {arch!r}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**d)


def check_condition(
    cfg: UNetConfigBase, text: torch.Tensor, patient: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate and flatten a condition: text (B, D) or (B, 1, D) with D = ``cfg.text_dim`` — or, for a model
    with ``cfg.text_tokens = K > 0``, (B, 1 + K, D) (the ordered prompt, then the statements, zero rows for
    padding; see :func:`diffusets_core.text.tokens.report_tokens`) — and patient values (B, cond_dim) or
    (B, 1, cond_dim). Returns ``(text (B, D) or (B, 1 + K, D), patient (B, cond_dim) or None for cond_dim 0)``.
    Raises ValueError naming the expected shape (e.g. an embedder whose width does not match the checkpoint)."""
    k = cfg.text_tokens
    if k:
        if text.dim() != 3 or text.shape[1:] != (1 + k, cfg.text_dim):
            raise ValueError(
                f"text has shape {tuple(text.shape)} but this U-Net reads statement tokens: it expects "
                f"(B, {1 + k}, {cfg.text_dim}) (the ordered prompt and up to {k} statements, "
                "diffusets_core.text.tokens.report_tokens)"
            )
    else:
        if text.dim() == 3:
            if text.shape[1] != 1:
                raise ValueError(f"text must be (B, D) or (B, 1, D), got {tuple(text.shape)}")
            text = text[:, 0]
        if text.dim() != 2 or text.shape[1] != cfg.text_dim:
            raise ValueError(
                f"text embedding has shape {tuple(text.shape)} but this U-Net expects (B, {cfg.text_dim}) "
                f"(text_dim={cfg.text_dim}); the embedder and the checkpoint do not match"
            )
    b = text.shape[0]
    if cfg.cond_dim == 0:
        if patient is not None and patient.numel() > 0:
            raise ValueError("this U-Net has cond_dim=0 (text only) but patient values were given")
        return text, None
    if patient is None:
        raise ValueError(f"patient values (B, {cfg.cond_dim}) are required (sex, age, HR)")
    if patient.dim() == 3 and patient.shape[1] == 1:
        patient = patient[:, 0]
    if patient.shape != (b, cfg.cond_dim):
        raise ValueError(f"patient must be (B={b}, {cfg.cond_dim}), got {tuple(patient.shape)}")
    return text, patient

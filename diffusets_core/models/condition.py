"""Validation of a U-Net's condition (text and patient values), shared by both U-Net architectures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the config class lives in .unet, which imports this module
    from .unet import UNetConfig


def check_condition(
    cfg: UNetConfig, text: torch.Tensor, patient: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate and flatten a condition: text (B, D) or (B, 1, D) with D = ``cfg.text_dim`` — or, for a model
    with ``cfg.text_tokens = K > 0``, (B, 1 + K, D) (the ordered prompt, then the statements, zero rows for
    padding; see :func:`diffusets_core.text.tokens.report_tokens`) — and patient values (B, cond_dim) or
    (B, 1, cond_dim). Returns ``(text (B, D) or (B, 1 + K, D), patient (B, cond_dim) or None for cond_dim 0)``.
    Raises ValueError naming the expected shape (e.g. an embedder whose width does not match the checkpoint)."""
    k = getattr(cfg, "text_tokens", 0)
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

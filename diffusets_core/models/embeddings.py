"""Embedding helpers shared by the models.

The diffusion U-Net of DiffuSETS uses a fixed sinusoidal *table* of timestep embeddings (class
``TimeEmbedding`` in the authors' ``unet/unet_conditional.py``; book/reference_implementation.md#time-embedding).
It differs from the usual transformer/DDPM embedding in two ways that a checkpoint-compatible model must keep:

* frequencies ``w_k = exp(-k * 10 / (half - 1))`` for ``k = 0 .. half-1`` (``half = 32``), i.e. the
  log-base is ``10`` and not ``log(10000) = 9.21``; the frequencies span ``1 .. e^-10``;
* row ``r`` holds the embedding of ``tau = r + 1``, so timestep ``t`` (0-based, used directly as the row
  index) is embedded as ``t + 1``.

The table is computed entirely in float32 with torch, in the order the reference uses, which reproduces
the stored golden table ``unet_time_table`` bitwise (see tests/test_reference_golden.py).
"""

from __future__ import annotations

import torch

__all__ = ["reference_time_table", "PAPER_TIME_LOG_BASE", "PAPER_TIME_DIM"]

#: ``log`` of the frequency range of the paper's table (the reference writes ``10``, not ``log(10000)``).
PAPER_TIME_LOG_BASE = 10.0
#: width of the paper's table (32 sines followed by 32 cosines).
PAPER_TIME_DIM = 64


def reference_time_table(
    num_steps: int = 1000, dim: int = PAPER_TIME_DIM, log_base: float = PAPER_TIME_LOG_BASE
) -> torch.Tensor:
    """Return the reference's sinusoidal time-embedding table, shape ``(num_steps, dim)``, float32.

    ``table[r, k] = sin((r + 1) * w_k)`` for ``k < dim/2`` and ``cos((r + 1) * w_{k - dim/2})`` after, with
    ``w_k = exp(-k * log_base / (dim/2 - 1))``. All arithmetic is float32: ``w`` is a float32 ``exp`` of
    ``float32(k) * float32(-log_base / (half - 1))``, the product ``tau * w`` is rounded to float32, and
    ``sin``/``cos`` are float32.
    """
    if dim % 2 or dim < 4:
        raise ValueError(f"time embedding dim must be even and >= 4, got {dim}")
    half = dim // 2
    scale = torch.tensor(-log_base / (half - 1), dtype=torch.float32)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * scale)
    tau = torch.arange(1, num_steps + 1, dtype=torch.float32)
    args = tau[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)

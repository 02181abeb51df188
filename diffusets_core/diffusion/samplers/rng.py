"""Randomness of the samplers: seeds and generators -> noise, drawn like diffusers' ``randn_tensor``.

With one generator/seed the whole batch is drawn at once (as diffusers), so sample ``i`` depends on the batch
size. With per-sample seeds/generators every sample draws its own noise (shape ``(1, ...)`` each), so sample
``i`` is the same whatever batch it is in. Noise is drawn on the generator's device (CPU for seeds) and moved to
``device``, so a seed gives the same noise on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

__all__ = ["GeneratorLike", "make_generators", "randn"]

GeneratorLike = Union[torch.Generator, Sequence[torch.Generator], None]


def make_generators(
    seed: int | Sequence[int] | None = None, generator: GeneratorLike = None, batch_size: int | None = None
) -> GeneratorLike:
    """Resolve ``seed`` / ``generator`` into what :func:`randn` takes.

    ``seed`` int -> one CPU generator; a sequence of ints -> one CPU generator per sample (its length must
    equal ``batch_size``). Passing both ``seed`` and ``generator`` is an error.
    """
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if seed is not None:
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return torch.Generator("cpu").manual_seed(int(seed))
        if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence):
            raise TypeError(f"seed must be an int or a sequence of ints, got {type(seed).__name__}")
        seeds = list(seed)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
            raise TypeError("every per-sample seed must be an int")
        generator = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    if isinstance(generator, (list, tuple)):
        if batch_size is not None and len(generator) != batch_size:
            raise ValueError(
                f"got {len(generator)} per-sample seeds/generators for a batch of {batch_size}; "
                "pass one per sample or a single one"
            )
        if not all(isinstance(g, torch.Generator) for g in generator):
            raise TypeError("generator list must contain torch.Generator objects")
        return list(generator)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    return generator


def randn(
    shape: Sequence[int],
    generator: GeneratorLike = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, drawn like diffusers' ``randn_tensor``.

    A single generator draws the full shape on its own device; a list draws ``(1, *shape[1:])`` per
    generator and concatenates. The result is moved to ``device``.
    """
    shape = tuple(int(s) for s in shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        parts = [torch.randn((1,) + shape[1:], generator=g, device=g.device, dtype=dtype) for g in generator]
        return torch.cat([p.to(device) for p in parts], dim=0)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)

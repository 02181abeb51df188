"""The sampler settings a generation runs with, resolved and checked before anything is generated or written.

:func:`resolve_sampling` fills each setting left at None from the pipeline's (a run's validated
``sampling.json``, or a model folder's index) and checks it against the sampler registry, the noise schedule and
the guidance the U-Net was trained for; :func:`positive_int` checks a count. The pipeline, the model folder and
the generation commands (:mod:`diffusets_core.generate`) all call them, so a bad setting is refused with the same
message wherever it is given.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .gaussian import GUIDANCE_TARGETS, GaussianDiffusion
from .samplers import get_sampler
from .samplers.base import check_num_steps

__all__ = ["positive_int", "resolve_sampling"]


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1; ValueError naming ``name`` otherwise (bools, fractions and strings included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def resolve_sampling(
    pipe: Any,
    sampler: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    guidance_on: str | None = None,
) -> dict:
    """The sampler settings a generation will use: each argument, or the pipeline's (``pipe.sampling``, the
    run's validated settings) when None; checked before anything is generated or written.

    Returns ``{"sampler", "num_inference_steps", "guidance_scale", "guidance_on"}``.

    Raises:
        ValueError: an unknown sampler or guidance target, steps not a whole number in 1..the schedule's training
            timesteps, a guidance scale not finite or < 0, or guidance the U-Net was not trained for (when ``pipe``
            carries the model: :meth:`GaussianDiffusion.check_guidance`).
    """
    base = {"sampler": "ddim", "num_inference_steps": 50, "guidance_scale": 1.0, "guidance_on": "all"}
    base.update(getattr(pipe, "sampling", None) or {})
    for key, v in (
        ("sampler", sampler),
        ("num_inference_steps", num_inference_steps),
        ("guidance_scale", guidance_scale),
        ("guidance_on", guidance_on),
    ):
        if v is not None:
            base[key] = v
    schedule = getattr(pipe, "schedule", None)
    get_sampler(base["sampler"], schedule)  # ValueError naming the known samplers
    steps = base["num_inference_steps"]
    if isinstance(steps, float) and steps.is_integer():  # 50.0 read back from a hand-edited sampling.json
        steps = int(steps)
    steps = positive_int("num_inference_steps (--steps)", steps)
    if schedule is not None:
        check_num_steps(steps, schedule.num_train_timesteps)
    try:
        scale = float(base["guidance_scale"])
    except (TypeError, ValueError):
        scale = math.nan
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {base['guidance_scale']!r}")
    if base["guidance_on"] not in GUIDANCE_TARGETS:
        raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {base['guidance_on']!r}")
    unet_cfg = getattr(getattr(pipe, "unet", None), "cfg", None)
    if unet_cfg is not None:
        GaussianDiffusion.check_guidance(unet_cfg, scale, base["guidance_on"])
    return {
        "sampler": str(base["sampler"]),
        "num_inference_steps": steps,
        "guidance_scale": scale,
        "guidance_on": str(base["guidance_on"]),
    }

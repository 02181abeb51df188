"""DDIM (Song et al. 2021), deterministic for ``eta=0``; same formulas as diffusers' ``DDIMScheduler``."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..schedules import NoiseSchedule
from .base import UNSET, ClipSample, Sampler, StepOutput
from .rng import GeneratorLike


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021), epsilon prediction; deterministic for ``eta=0`` (default).

    One step from ``t`` to ``p``: ``x0 = clip((x_t - sqrt(1-ab_t) eps) / sqrt(ab_t))``,
    ``sigma = eta * sqrt((1-ab_p)/(1-ab_t) * (1 - ab_t/ab_p))``,
    ``x_p = sqrt(ab_p) x0 + sqrt(1 - ab_p - sigma^2) eps + sigma z`` with ``ab_{-1} = 1``
    (diffusers' ``set_alpha_to_one=True``). As in diffusers, the direction term uses the model's eps even
    when x0 was clipped unless ``use_clipped_model_output=True``. With ``eta > 0`` noise is drawn at every
    step (also the last, where sigma = 0), as diffusers does. The step goes to the next timestep of the
    schedule; diffusers uses ``t - T // n``, which is the same whenever ``n`` divides ``T`` (with
    ``trailing`` spacing and e.g. n = 30 diffusers steps 966 -> 933 while the schedule's next level is 932).
    """

    name = "ddim"
    default_num_inference_steps = 50
    default_spacing = "leading"

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        **common: Any,
    ) -> None:
        """``eta``: the noise of each step (0: deterministic DDIM; 1: DDPM-like); ``common``: the base sampler's
        settings (``timestep_spacing``, ``steps_offset``, ``clip_sample``, ``num_inference_steps``)."""
        super().__init__(schedule, **common)
        eta = float(eta)
        if not (eta >= 0 and math.isfinite(eta)):
            raise ValueError(f"eta must be a finite float >= 0, got {eta}")
        self.eta = eta
        self.use_clipped_model_output = bool(use_clipped_model_output)

    def _extra_config(self) -> dict[str, Any]:
        return {"eta": self.eta, "use_clipped_model_output": self.use_clipped_model_output}

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        x_t: torch.Tensor,
        prev_t: int | torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: GeneratorLike = None,
        clip_sample: ClipSample = UNSET,
        state: Any = None,
    ) -> StepOutput:
        """One DDIM step from ``t`` to ``prev_t`` (default ``t - 1``; :meth:`sample` passes the schedule's)."""
        clip, t_idx, prev_idx = self._begin_step(model_output, t, x_t, prev_t, clip_sample)
        alpha_prod_t, alpha_prod_t_prev, pred_x0 = self._eps_to_x0(model_output, x_t, t_idx, prev_idx, clip)
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        pred_eps = model_output

        variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
        std_dev_t = self.eta * variance ** (0.5)
        if self.use_clipped_model_output and clip is not None:
            pred_eps = (x_t - alpha_prod_t ** (0.5) * pred_x0) / beta_prod_t ** (0.5)
        direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_eps
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_x0 + direction
        if self.eta > 0:
            noise = self._variance_noise(noise, generator, x_t)
            prev_sample = prev_sample + std_dev_t * noise
        return StepOutput(prev_sample.to(x_t.dtype), pred_x0.to(x_t.dtype))

"""Ancestral DDPM (Ho et al. 2020): the paper's sampler, identical to diffusers' ``DDPMScheduler``."""

from __future__ import annotations

from typing import Any

import torch

from ..schedules import NoiseSchedule
from .base import UNSET, ClipSample, Sampler, StepOutput
from .rng import GeneratorLike


class DDPMSampler(Sampler):
    """Ancestral DDPM (Ho et al. 2020), epsilon prediction, ``fixed_small`` variance.

    Equals diffusers' ``DDPMScheduler.step`` with the reference's settings; the paper configuration is
    :meth:`paper` (clip x0 to [-1, 1], leading spacing, 1000 steps). One step from ``t`` to ``p = prev_t``:

        x0   = clip((x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t))
        mean = sqrt(ab_p) (1 - ab_t/ab_p) / (1 - ab_t) * x0 + sqrt(ab_t/ab_p) (1 - ab_p) / (1 - ab_t) * x_t
        x_p  = mean + sqrt(max((1 - ab_p) / (1 - ab_t) (1 - ab_t/ab_p), 1e-20)) * z   (no noise at t = 0)

    with ``ab_{-1} = 1``. No noise is drawn at the last step (t = 0), so a generator is consumed exactly
    as in a diffusers DDPM loop.
    """

    name = "ddpm"
    default_spacing = "leading"
    default_num_inference_steps = None  # the paper's sampler visits every training timestep

    @classmethod
    def paper(cls, schedule: NoiseSchedule | None = None) -> DDPMSampler:
        """The reference's sampler: 1000-step ancestral DDPM, x0 clipped to [-1, 1], leading spacing."""
        return cls(
            schedule if schedule is not None else NoiseSchedule.paper(),
            timestep_spacing="leading",
            steps_offset=0,
            clip_sample=1.0,
        )

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
        """One ancestral step from ``t`` to ``prev_t`` (default ``t - 1``).

        ``t``/``prev_t``: ints, or (B,) integer tensors (one timestep per sample). ``noise``: the variance
        noise z (same shape as x_t); drawn from ``generator`` when not given, and only if some t > 0.
        """
        clip, t_idx, prev_idx = self._begin_step(model_output, t, x_t, prev_t, clip_sample, same_shape=True)
        alpha_prod_t, alpha_prod_t_prev, pred_x0 = self._eps_to_x0(model_output, x_t, t_idx, prev_idx, clip)
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t

        x0_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        xt_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
        prev_sample = x0_coeff * pred_x0 + xt_coeff * x_t

        add_noise = t_idx > 0
        if bool(torch.any(add_noise)):
            noise = self._variance_noise(noise, generator, x_t)
            variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
            noisy = prev_sample + (variance ** (0.5)) * noise
            if t_idx.ndim == 0:
                prev_sample = noisy
            else:
                prev_sample = torch.where(self._batched_mask(add_noise, x_t), noisy, prev_sample)
        return StepOutput(prev_sample.to(x_t.dtype), pred_x0.to(x_t.dtype))

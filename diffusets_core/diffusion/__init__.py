"""Diffusion: noise schedules, samplers and the objective (model-agnostic; samplers call ``model_fn(x_t, t) -> eps``).

* :mod:`.schedules` -- :class:`NoiseSchedule` (betas, alpha_bar, forward noising, training timesteps);
* :mod:`.samplers` -- one reverse process per file (DDPM, DDIM, DPM-Solver++), :func:`get_sampler`;
* :mod:`.gaussian` -- :class:`GaussianDiffusion`: the training loss and guided sampling in one object;
* :mod:`.pipeline` -- :class:`~.pipeline.DiffuSETSPipeline` (reports -> ECGs); :mod:`.export`, :mod:`.dataset`
  write generated ECGs to disk.
"""

from .gaussian import GUIDANCE_TARGETS, LOSS_WEIGHTINGS, GaussianDiffusion
from .samplers import (
    SAMPLERS,
    TIMESTEP_SPACINGS,
    DDIMSampler,
    DDPMSampler,
    DPMSolverMultistepSampler,
    Sampler,
    StepOutput,
    get_sampler,
    make_generators,
    randn,
)
from .schedules import BETA_SCHEDULES, TIMESTEP_SAMPLING_MODES, NoiseSchedule

__all__ = [
    "BETA_SCHEDULES",
    "GUIDANCE_TARGETS",
    "GaussianDiffusion",
    "LOSS_WEIGHTINGS",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverMultistepSampler",
    "NoiseSchedule",
    "SAMPLERS",
    "Sampler",
    "StepOutput",
    "TIMESTEP_SAMPLING_MODES",
    "TIMESTEP_SPACINGS",
    "get_sampler",
    "make_generators",
    "randn",
]

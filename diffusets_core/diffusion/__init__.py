"""Diffusion: noise schedules and samplers (model-agnostic; samplers call ``model_fn(x_t, t) -> eps``)."""

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

"""Diffusion: noise schedules, samplers, the objective and the pipeline that wires them to the networks.

Schedules, samplers and the objective are model-agnostic (samplers call ``model_fn(x_t, t) -> eps``); the pipeline
is the one place that knows the DiffuSETS networks.

* :mod:`.schedules` -- :class:`NoiseSchedule` (betas, alpha_bar, forward noising, training timesteps);
* :mod:`.samplers` -- one reverse process per file (DDPM, DDIM, DPM-Solver++), :func:`get_sampler`;
* :mod:`.gaussian` -- :class:`GaussianDiffusion`: the training loss and guided sampling in one object;
* :mod:`.sampling` -- :func:`~.sampling.resolve_sampling`: the sampler settings a generation uses, checked;
* :mod:`.pipeline` -- :class:`~.pipeline.DiffuSETSPipeline` (reports -> ECGs in memory);
* :mod:`.model_folder` -- the pipeline's shareable model folder (``save_pretrained`` / ``from_pretrained``).

Writing generated ECGs to disk (records, datasets, output folders) is :mod:`diffusets_core.generate`, a layer above.
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

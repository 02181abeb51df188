"""The diffusion objective in one object: the training loss and guided sampling (lucidrains' ``GaussianDiffusion``).

:class:`GaussianDiffusion` holds a :class:`~.schedules.NoiseSchedule` and everything the method does with it:

* ``diffusion.loss(model, x0, text, patient, generator=g, drop_mask=...)``: epsilon-prediction MSE on
  ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps`` with training timesteps ``t`` (``uniform`` or ``paper``), optional
  condition dropout (for classifier-free guidance) and the ``uniform`` or Min-SNR-gamma weighting. The trainer
  (:class:`~diffusets_core.train.unet.DiffusionLoss`) calls it.
* ``diffusion.sample(unet, text, patient, shape, sampler=..., guidance_scale=..., guidance_on=..., seed=...)``: the
  reverse process of a sampler (:mod:`.samplers`) on the guided noise prediction
  ``eps_u + s (eps_c - eps_u)`` (:meth:`GaussianDiffusion.guided_eps`). The pipeline calls it.

The model is any network ``model(x_t, t, text, patient, drop_mask) -> eps`` (both U-Nets of
:mod:`diffusets_core.models`); the object itself has no weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .samplers import ClipSample, Sampler, get_sampler
from .schedules import TIMESTEP_SAMPLING_MODES, NoiseSchedule

__all__ = ["GUIDANCE_TARGETS", "LOSS_WEIGHTINGS", "GaussianDiffusion", "DropMaskFn"]

#: ``uniform``: the paper's plain MSE; ``min_snr``: Min-SNR-gamma weights (Hang et al. 2023).
LOSS_WEIGHTINGS = ("uniform", "min_snr")
#: What classifier-free guidance guides: ``all`` (report and patient values dropped together in the unconditional
#: branch, the paper's scheme) or ``text`` (the report alone; sex, age and HR kept in both branches).
GUIDANCE_TARGETS = ("all", "text")

#: ``drop_mask(batch_size, device=, generator=) -> (B,) or (B, 2) bool``: which conditions a training sample drops.
DropMaskFn = Callable[..., torch.Tensor]


class GaussianDiffusion:
    """A discrete variance-preserving diffusion with epsilon prediction: training loss and guided sampling.

    Args:
        schedule: the noise schedule (default: the paper's, :meth:`NoiseSchedule.paper`).
        timestep_mode: how training timesteps are drawn, one of :data:`.schedules.TIMESTEP_SAMPLING_MODES`.
        loss_weighting: one of :data:`LOSS_WEIGHTINGS`. ``"min_snr"`` weights each sample by
            ``min(SNR(t), gamma) / SNR(t)``: the nearly-clean timesteps, whose noise is hard to predict but which only
            polish detail, stop dominating the gradient, and the high-noise steps that decide rhythm and beat
            placement get the model's attention.
        snr_gamma: gamma of Min-SNR-gamma (> 0).

    Raises:
        ValueError: unknown timestep mode or weighting, or ``snr_gamma <= 0``.
    """

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        timestep_mode: str = "uniform",
        loss_weighting: str = "uniform",
        snr_gamma: float = 5.0,
    ):
        if timestep_mode not in TIMESTEP_SAMPLING_MODES:
            raise ValueError(f"timestep mode must be one of {TIMESTEP_SAMPLING_MODES}, got {timestep_mode!r}")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {loss_weighting!r}")
        if snr_gamma <= 0:
            raise ValueError(f"snr_gamma must be > 0, got {snr_gamma}")
        self.schedule = schedule if schedule is not None else NoiseSchedule.paper()
        self.timestep_mode = timestep_mode
        self.loss_weighting, self.snr_gamma = loss_weighting, float(snr_gamma)

    # -- training --------------------------------------------------------------------------------------------------
    def loss(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        text: torch.Tensor,
        patient: torch.Tensor | None,
        *,
        generator: torch.Generator | None = None,
        drop_mask: DropMaskFn | None = None,
    ) -> torch.Tensor:
        """The training loss of ``model`` on clean latents ``x0`` (B, C, L) with condition ``text``/``patient``.

        Draws, in this order from ``generator``: the timesteps ``t`` (B,), the noise ``eps`` (like ``x0``), then
        (when ``drop_mask`` is given) the condition-dropout mask. Returns the scalar loss (float32 for ``min_snr``).
        """
        b = x0.shape[0]
        t = self.schedule.sample_timesteps(b, generator=generator, device=x0.device, mode=self.timestep_mode)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        x_t = self.schedule.add_noise(x0, noise, t)
        drop = drop_mask(b, device=x0.device, generator=generator) if drop_mask is not None else None
        eps = model(x_t, t, text, patient, drop)
        return self.weighted_mse(eps, noise, t)

    def weighted_mse(self, eps: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the noise prediction, weighted per sample as :attr:`loss_weighting` says."""
        if self.loss_weighting == "uniform":
            return nn.functional.mse_loss(eps, noise)
        abar = self.schedule.alphas_cumprod_on(t.device, torch.float32)[t]
        snr = abar / (1.0 - abar)
        weight = snr.clamp(max=self.snr_gamma) / snr
        per_sample = (eps.float() - noise).pow(2).mean(dim=tuple(range(1, eps.ndim)))
        return (weight * per_sample).mean()

    # -- sampling --------------------------------------------------------------------------------------------------
    @staticmethod
    def check_guidance(unet_cfg: Any, guidance_scale: float, guidance_on: str) -> None:
        """Raise ValueError when a U-Net (its config) cannot be guided as asked: an unknown target, a scale != 1
        without condition dropout in training, or ``guidance_on="text"`` without ``cond_dropout_mode="separate"``."""
        if guidance_on not in GUIDANCE_TARGETS:
            raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {guidance_on!r}")
        if guidance_scale != 1.0 and unet_cfg.cond_dropout <= 0:
            raise ValueError("guidance_scale != 1 needs a U-Net trained with condition dropout (cfg.cond_dropout > 0)")
        if (
            guidance_scale != 1.0
            and guidance_on == "text"
            and getattr(unet_cfg, "cond_dropout_mode", "joint") != "separate"
        ):
            raise ValueError(
                "guidance_on='text' needs a U-Net trained with cond_dropout_mode='separate' (it never saw "
                "the report dropped with the patient values kept); use guidance_on='all'"
            )

    @staticmethod
    def guided_eps(
        unet: nn.Module,
        x_t: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        patient: torch.Tensor,
        guidance_scale: float,
        guidance_on: str = "all",
    ) -> torch.Tensor:
        """The noise prediction with classifier-free guidance: ``eps_u + s (eps_c - eps_u)``, where ``eps_u`` drops
        the report and the patient values (``guidance_on="all"``) or the report only (``"text"``). With
        ``guidance_scale == 1`` it is the plain conditional prediction (one network call instead of two). Raises
        ValueError when ``guidance_on`` is not one of :data:`GUIDANCE_TARGETS`."""
        if guidance_on not in GUIDANCE_TARGETS:
            raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {guidance_on!r}")
        if guidance_scale == 1.0:
            return unet(x_t, t, text, patient)
        b = x_t.shape[0]
        keep, drop = torch.zeros(b, 2, dtype=torch.bool), torch.ones(b, 2, dtype=torch.bool)
        if guidance_on == "text":
            drop[:, 1] = False  # the unconditional branch keeps sex, age and HR
        both = unet(
            torch.cat([x_t, x_t]),
            torch.cat([t, t]),
            torch.cat([text, text]),
            torch.cat([patient, patient]),
            torch.cat([keep, drop]).to(x_t.device),
        )
        eps_c, eps_u = both.chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    def sampler(self, name: str | Sampler) -> Sampler:
        """A sampler of this schedule by name (``ddim``, ``dpmsolver++``, ``ddpm``; :func:`.samplers.get_sampler`),
        or ``name`` itself when it is already a :class:`~.samplers.Sampler`."""
        return name if isinstance(name, Sampler) else get_sampler(name, self.schedule)

    @torch.no_grad()
    def sample(
        self,
        unet: nn.Module,
        text: torch.Tensor,
        patient: torch.Tensor,
        shape: Sequence[int],
        *,
        sampler: str | Sampler = "ddim",
        seed: int | Sequence[int] | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 1.0,
        guidance_on: str = "all",
        device: str | torch.device | None = None,
        progress: bool = False,
        clip_sample: ClipSample = None,
        bf16: bool = False,
    ) -> torch.Tensor:
        """Latents ``shape`` = (B, C, L) generated by ``sampler`` from noise drawn with ``seed`` (one per sample for
        batch-independent results), with the guided noise prediction of :meth:`guided_eps`. ``bf16`` runs the
        network under bfloat16 autocast; the sampler's arithmetic stays float32."""
        device = torch.device(device) if device is not None else text.device
        sampler = self.sampler(sampler)

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                return self.guided_eps(unet, x_t, t, text, patient, guidance_scale, guidance_on).float()

        return sampler.sample(
            model_fn,
            shape,
            seed=seed,
            num_inference_steps=num_inference_steps,
            device=device,
            progress=progress,
            clip_sample=clip_sample,
        )

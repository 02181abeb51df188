"""The pipeline's training stages on a run directory (a re-export module kept until the issue-14 merge).

The stages now live one concern per module:

* :mod:`.vae` -- stage 1, :func:`~.vae.train_vae` (VAE loss, latent scale, reconstruction error);
* :mod:`.latents` -- stage 2, :func:`~.latents.encode_latents`;
* :mod:`.unet` -- stage 3, :func:`~.unet.train_unet` and :class:`~.unet.DiffusionLoss` (the trainer's view of
  :class:`diffusets_core.diffusion.gaussian.GaussianDiffusion`);
* :mod:`.conditioning` -- the U-Net's training conditions; :mod:`.datasets` -- signals and latents of a split;
  :mod:`.artifacts` -- the end the stages share (best weights, ``model.pt``, ``summary.json``);
* loading a trained VAE is the model's job: :func:`diffusets_core.models.vae.load_vae` / ``VAE.from_artifact``;
  the run-directory names (``NOC_DIR``...) are in :mod:`diffusets_core.layout`.
"""

# compat(issue14): re-export, removed at merge
from ..layout import LATENT_SPLITS, NOC_DIR  # noqa: F401  # compat(issue14): re-export, removed at merge
from ..models.vae import load_vae  # noqa: F401  # compat(issue14): re-export, removed at merge
from .conditioning import conditioning_arrays  # noqa: F401  # compat(issue14): re-export, removed at merge
from .latents import encode_latents  # noqa: F401  # compat(issue14): re-export, removed at merge
from .unet import LOSS_WEIGHTINGS, DiffusionLoss, train_unet  # noqa: F401  # compat(issue14): re-export, removed at merge
from .vae import (  # noqa: F401  # compat(issue14): re-export, removed at merge
    PAPER_KL_WEIGHT,
    VAELoss,
    VAETrainModule,
    measure_latent_channel_stats,
    measure_latent_scale,
    reconstruction_error,
    train_vae,
)

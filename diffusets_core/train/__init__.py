"""Training: the loop and the pipeline's three stages, one concern per module.

* :mod:`.loop` -- :class:`~.loop.Trainer` (AdamW + cosine, EMA, bf16, DDP, exact resume), :class:`~.loop.TrainConfig`;
* :mod:`.vae` -- stage 1, ``train_vae``; :mod:`.latents` -- stage 2, ``encode_latents``; :mod:`.unet` -- stage 3,
  ``train_unet`` and the trainer's diffusion loss (:class:`diffusets_core.diffusion.gaussian.GaussianDiffusion`);
* :mod:`.conditioning` (the U-Net's conditions), :mod:`.datasets` (a split's signals / latents), :mod:`.artifacts`
  (the end every stage shares), :mod:`.distributed`, :mod:`.ema`; the trainer's best/last checkpoints are read by
  :func:`diffusets_core.checkpoint.load_trained`.
"""

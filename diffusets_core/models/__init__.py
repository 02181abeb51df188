"""Models: the paper's VAE and conditional U-Net with checkpoint-compatible parameter names.

* :mod:`.vae` -- :class:`VAEConfig`, :class:`VAE` (``encode``/``decode``/``loss``), :class:`VAEEncoder`,
  :class:`VAEDecoder`.
* :mod:`.unet` -- :class:`UNetConfig`, :class:`ConditionalUNet1D`.
* :mod:`.attention` -- SDPA-based attention layers with ``nn.MultiheadAttention`` parameter names.
* :mod:`.embeddings` -- the reference's sinusoidal time table.
* :mod:`.reference` -- loading the authors' ``unet_all.pth`` / ``vae_model.pth`` (paper mode;
  book/reference_implementation.md#released-files); :class:`ReferenceVAE`
  converts between canonical lead order and the released network's :data:`REFERENCE_LEAD_ORDER`.
"""

from .embeddings import reference_time_table
from .reference import (
    REFERENCE_LEAD_ORDER,
    CheckpointError,
    EmbedderMismatchError,
    ReferenceVAE,
    check_embedder_compat,
    load_reference_unet,
    load_reference_vae,
    patient_from_condition,
)
from .unet import ConditionalUNet1D, UNetConfig
from .vae import PAPER_SCALE_FACTOR, VAE, VAEConfig, VAEDecoder, VAEEncoder, estimate_scale_factor

__all__ = [
    "VAEConfig",
    "VAE",
    "VAEEncoder",
    "VAEDecoder",
    "PAPER_SCALE_FACTOR",
    "estimate_scale_factor",
    "UNetConfig",
    "ConditionalUNet1D",
    "reference_time_table",
    "load_reference_unet",
    "load_reference_vae",
    "ReferenceVAE",
    "REFERENCE_LEAD_ORDER",
    "check_embedder_compat",
    "patient_from_condition",
    "CheckpointError",
    "EmbedderMismatchError",
]

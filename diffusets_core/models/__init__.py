"""Models: the paper's VAE and conditional U-Net with checkpoint-compatible parameter names, and the FiLM U-Net.

* :mod:`.vae` -- :class:`VAEConfig`, :class:`VAE` (``encode``/``decode``/``loss``), :class:`VAEEncoder`,
  :class:`VAEDecoder`.
* :mod:`.unet` -- the paper's U-Net: :class:`PaperUNetConfig`, :class:`ConditionalUNet1D`.
* :mod:`.film_unet` -- the FiLM U-Net, the default network: :class:`FiLMUNetConfig`, :class:`FiLMUNet1D`.
* :mod:`.unet_base` -- what both U-Nets share: the base config and the condition check.
* :mod:`.factory` -- :func:`unet_config_from_dict` (a profile's or artifact's dict, ``arch`` naming the network),
  :func:`build_unet`, :func:`describe_unet`, :func:`unet_from_artifact`.
* :mod:`.attention` -- SDPA-based attention layers with ``nn.MultiheadAttention`` parameter names.
* :mod:`.embeddings` -- the reference's sinusoidal time table.
* :mod:`.reference` -- loading the authors' ``unet_all.pth`` / ``vae_model.pth`` (paper mode;
  book/reference_implementation.md#released-files); :class:`ReferenceVAE`
  converts between canonical lead order and the released network's :data:`REFERENCE_LEAD_ORDER`.
"""

from .embeddings import reference_time_table
from .factory import build_unet, describe_unet, unet_config_from_dict, unet_from_artifact
from .film_unet import FiLMUNet1D, FiLMUNetConfig
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
from .unet import ConditionalUNet1D, PaperUNetConfig
from .vae import PAPER_SCALE_FACTOR, VAE, VAEConfig, VAEDecoder, VAEEncoder, estimate_scale_factor

__all__ = [
    "VAEConfig",
    "VAE",
    "VAEEncoder",
    "VAEDecoder",
    "PAPER_SCALE_FACTOR",
    "estimate_scale_factor",
    "PaperUNetConfig",
    "ConditionalUNet1D",
    "FiLMUNetConfig",
    "FiLMUNet1D",
    "unet_config_from_dict",
    "build_unet",
    "describe_unet",
    "unet_from_artifact",
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

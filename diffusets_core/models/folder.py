"""One model of an exported model folder: ``<folder>/config.json`` + ``<folder>/model.safetensors``.

The diffusers / Hugging Face convention for a component of a pipeline: the configuration as JSON, the weights as
safetensors (tensors only, no pickled code). :func:`save_model_dir` writes a U-Net or a VAE that way;
:func:`load_unet_dir` and :func:`load_vae_dir` build the model from ``config.json`` and load the weights strictly.
The whole folder (both models, the index, the model card) is :mod:`diffusets_core.diffusion.model_folder`'s.

``config.json`` is the model's config dict (:meth:`UNetConfigBase.to_dict
<diffusets_core.models.unet_base.UNetConfigBase.to_dict>`: the network's fields and ``arch``; :meth:`VAEConfig.to_dict
<diffusets_core.models.vae.VAEConfig.to_dict>`) plus ``_class_name`` (the class that reads it:
``ConditionalUNet1D``, ``FiLMUNet1D``, ``VAE`` or ``ReferenceVAE``) and ``_diffusets_version`` (the package version
that wrote it). The safetensors file holds the full ``state_dict()``: parameters AND persistent buffers (a film
U-Net's text standardisation ``text_mean``/``text_std``, its subspace ``text_whiten``, the statement-token
statistics). The VAE's latent scale and per-channel latent statistics (``scale_factor``, ``latent_mean``,
``latent_std``) are fields of its config, so they are in ``config.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..checkpoint import CheckpointError
from ..fileio import atomic_write_json, atomic_writer
from .factory import build_unet, unet_config_from_dict
from .reference import ReferenceVAE, check_state_dict
from .twin import ReferenceEncoderConfig, TwinUNet1D
from .vae import VAE, VAEConfig

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "UNET_CLASSES",
    "VAE_CLASSES",
    "save_model_dir",
    "read_config",
    "load_unet_dir",
    "load_vae_dir",
]

CONFIG_FILE = "config.json"  #: a component's configuration, in its folder
WEIGHTS_FILE = "model.safetensors"  #: a component's weights (parameters and buffers), in its folder

#: ``_class_name`` of a U-Net config -> the ``arch`` it must have (``build_unet`` builds that network)
UNET_CLASSES = {"ConditionalUNet1D": "paper", "FiLMUNet1D": "film", "TwinUNet1D": "film"}
#: the config key of a twin's reference encoder (:mod:`.twin`), beside its FiLM network's fields
REFERENCE_KEY = "reference_encoder"
#: ``_class_name`` of a VAE config -> the class built
VAE_CLASSES: dict[str, type[VAE]] = {"VAE": VAE, "ReferenceVAE": ReferenceVAE}


def save_model_dir(model: nn.Module, folder: str | os.PathLike) -> dict[str, Path]:
    """Write ``model`` (a U-Net of :func:`~.factory.build_unet` or a :class:`~.vae.VAE`) to ``folder/config.json``
    and ``folder/model.safetensors``, each atomically (:mod:`diffusets_core.fileio`); the folder is created.

    Every tensor of ``model.state_dict()`` is copied to the CPU (contiguous, its own storage: safetensors refuses
    shared memory) and stored with its dtype, so loading gives bit-identical weights; the same weights always give
    the same file (and SHA-256).

    Returns:
        ``{"config": path, "weights": path}``.

    Raises:
        ValueError: a model of a class the folder format does not know (its ``_class_name`` could not be read
            back).
    """
    name = type(model).__name__
    if name not in UNET_CLASSES and name not in VAE_CLASSES:
        raise ValueError(
            f"cannot save a {name} as a model folder; known classes: {', '.join([*UNET_CLASSES, *VAE_CLASSES])}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    with atomic_writer(weights) as tmp:
        # one metadata entry: safetensors stores the metadata map in no fixed order, and a second key would make two
        # saves of the same weights differ byte for byte (and in their SHA-256)
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    config = folder / CONFIG_FILE
    fields = model.cfg.to_dict()
    if isinstance(model, TwinUNet1D):  # the twin's FiLM network and its reference encoder in one config
        fields[REFERENCE_KEY] = model.reference_cfg.to_dict()
    atomic_write_json(config, {"_class_name": name, "_diffusets_version": str(__version__), **fields})
    return {"config": config, "weights": weights}


def read_config(folder: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(class name, config fields)`` of ``folder/config.json`` (keys starting with ``_`` removed).

    Raises:
        CheckpointError: the file is missing, not JSON, not an object or has no ``_class_name`` (the message names
            the file).
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"missing file: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("_class_name"), str):
        raise CheckpointError(f"{path}: expected a JSON object with a '_class_name'")
    return raw["_class_name"], {k: v for k, v in raw.items() if not k.startswith("_")}


def _load_weights(model: nn.Module, folder: Path, map_location: str | torch.device) -> nn.Module:
    """Load ``folder/model.safetensors`` into ``model`` strictly; CheckpointError names the file and every missing,
    unexpected or mis-shaped tensor."""
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"missing file: {path}")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    check_state_dict(model, state, f"{path} (config {folder / CONFIG_FILE})")
    model.load_state_dict(state, strict=True)
    return model.to(map_location)


def load_unet_dir(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """The U-Net of ``folder`` (written by :func:`save_model_dir`; a :class:`~.twin.TwinUNet1D` when the config holds
    ``reference_encoder``): built with :func:`~.factory.build_unet` from ``config.json`` (read as a stored config, :func:`~.factory.unet_config_from_dict` with ``strict=False``: folders in
    the flat format load), weights loaded strictly, on ``map_location``, in eval mode.

    Raises:
        CheckpointError: a missing or unreadable file, a config that is not a U-Net's (unknown class, unknown
            fields, a class that disagrees with its ``arch``), or weights that do not fit the config (missing or
            unexpected tensors, other shapes); the message names the file.
    """
    folder = Path(folder)
    name, fields = read_config(folder)
    path = folder / CONFIG_FILE
    if name not in UNET_CLASSES:
        raise CheckpointError(f"{path}: _class_name {name!r} is not a U-Net ({', '.join(UNET_CLASSES)})")
    fields = dict(fields)
    reference = fields.pop(REFERENCE_KEY, None)
    if (reference is not None) != (name == "TwinUNet1D"):
        raise CheckpointError(
            f"{path}: a {name} config {'with' if reference is not None else 'without'} {REFERENCE_KEY}"
        )
    try:
        cfg = unet_config_from_dict(fields, strict=False)
        unet = build_unet(cfg)
        if reference is not None:
            unet = TwinUNet1D(unet, ReferenceEncoderConfig.from_dict(reference))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid U-Net config ({exc})") from None
    if UNET_CLASSES[name] != cfg.arch:
        raise CheckpointError(f"{path}: _class_name {name!r} does not match arch {cfg.arch!r}")
    return _load_weights(unet, folder, map_location).eval()


def load_vae_dir(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> VAE:
    """The VAE of ``folder`` (written by :func:`save_model_dir`): a :class:`~.vae.VAE` or, for the authors' released
    VAE, a :class:`~.reference.ReferenceVAE` (lead reordering at its boundary), built from ``config.json`` (latent
    scale and statistics included), weights loaded strictly, on ``map_location``, in eval mode.

    Raises:
        CheckpointError: as :func:`load_unet_dir`, for a VAE.
    """
    folder = Path(folder)
    name, fields = read_config(folder)
    path = folder / CONFIG_FILE
    if name not in VAE_CLASSES:
        raise CheckpointError(f"{path}: _class_name {name!r} is not a VAE ({', '.join(VAE_CLASSES)})")
    try:
        vae = VAE_CLASSES[name](VAEConfig.from_dict(fields))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid VAE config ({exc})") from None
    return _load_weights(vae, folder, map_location).eval()

"""The U-Net a config names: configs from dicts, networks from configs, trained U-Nets from artifacts.

A profile (``unet.model``), a notebook's ``unet_model``, a benchmark spec and a saved artifact all give the U-Net as a
flat dict whose ``arch`` names the network: ``film`` (the default, also when ``arch`` is missing) is
:class:`~.film_unet.FiLMUNet1D` with :class:`~.film_unet.FiLMUNetConfig`, ``paper`` is the paper's
:class:`~.unet.ConditionalUNet1D` with :class:`~.unet.PaperUNetConfig`. :func:`unet_config_from_dict` reads such a
dict, :func:`build_unet` builds the network of a config, :func:`unet_from_artifact` loads a trained one.

Flat dicts. Until each network had its own config, one config class held the fields of both networks, and the
artifacts written then (``run/unet/model.pt``, a model folder's ``unet/config.json``) store that class's dict: every
field of both networks, plus ``arch``. A network never read the other network's fields, so
:func:`unet_config_from_dict` drops them when they hold their defaults (as in every artifact written from this
package's profiles). A field of the other network set to another value is refused, naming it: a profile that sets
``base_channels`` with ``arch: paper`` asks for something the paper network does not have. A stored config is read
with ``strict=False`` instead, which drops such a field whatever its value: the value never reached the network the
weights were trained in, and refusing would leave a trained model unloadable. Artifacts written now store their
network's fields and ``arch`` (:meth:`~.unet_base.UNetConfigBase.to_dict`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_artifact
from .film_unet import FiLMUNet1D, FiLMUNetConfig, describe_film_unet
from .twin import ReferenceEncoderConfig, TwinUNet1D
from .unet import ConditionalUNet1D, PaperUNetConfig, describe_paper_unet
from .unet_base import UNetConfigBase

__all__ = [
    "UNET_CONFIGS",
    "UNET_ARCHS",
    "DEFAULT_UNET_ARCH",
    "unet_config_from_dict",
    "build_unet",
    "describe_unet",
    "unet_from_artifact",
]

#: ``arch`` -> the config class of that network: ``paper`` the reference network, ``film`` the FiLM network.
UNET_CONFIGS: dict[str, type[UNetConfigBase]] = {"paper": PaperUNetConfig, "film": FiLMUNetConfig}
UNET_ARCHS = tuple(UNET_CONFIGS)
#: The network of a dict without ``arch``: the one the profiles train.
DEFAULT_UNET_ARCH = FiLMUNetConfig.arch

#: config class -> (network class, its level-by-level description)
_NETWORKS: dict[type[UNetConfigBase], tuple[Callable[[Any], nn.Module], Callable[[Any, int], list[dict[str, Any]]]]] = {
    PaperUNetConfig: (ConditionalUNet1D, describe_paper_unet),
    FiLMUNetConfig: (FiLMUNet1D, describe_film_unet),
}


def _defaults(cls: type[UNetConfigBase]) -> dict[str, Any]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def unet_config_from_dict(d: dict[str, Any], *, strict: bool = True) -> UNetConfigBase:
    """The config of a flat U-Net dict: ``arch`` (``"film"`` when missing) chooses the network's config class, the
    other keys are its fields.

    A key that is a field of the other network only is dropped when it holds that field's default (the flat dicts
    that artifacts store hold every field of both networks). With ``strict`` (profiles, notebooks, benchmark specs)
    another value is refused; ``strict=False`` (a stored config, see the module docstring) drops it whatever it is.

    Raises:
        ValueError: an unknown ``arch``, a key that is a field of neither network, or (``strict``) a field of the
            other network set to a non-default value; the message names the keys. Also the config's own range
            checks.
    """
    d = dict(d)
    arch = d.pop("arch", DEFAULT_UNET_ARCH)
    if arch not in UNET_CONFIGS:
        raise ValueError(f"arch must be one of {UNET_ARCHS}, got {arch!r}")
    cls = UNET_CONFIGS[arch]
    own = {f.name for f in fields(cls)}
    foreign = {
        name: (other_arch, default)
        for other_arch, other in UNET_CONFIGS.items()
        if other is not cls
        for name, default in _defaults(other).items()
        if name not in own
    }
    unknown = sorted(set(d) - own - set(foreign))
    if unknown:
        raise ValueError(f"unknown U-Net config fields: {unknown} (arch {arch!r} reads {sorted(own)})")
    for name in sorted(set(d) & set(foreign)):
        value = d.pop(name)
        other_arch, default = foreign[name]
        if isinstance(default, tuple) and isinstance(value, list):  # JSON and YAML give lists
            value = tuple(value)
        if strict and value != default:
            raise ValueError(
                f"{name} = {value!r} is a setting of the {other_arch!r} network, which a config with arch {arch!r} "
                f"does not build: remove it, or set arch: {other_arch}"
            )
    return cls(**d)


def build_unet(cfg: UNetConfigBase) -> nn.Module:
    """The network a config describes: :class:`~.unet.ConditionalUNet1D` for a :class:`~.unet.PaperUNetConfig`,
    :class:`~.film_unet.FiLMUNet1D` for a :class:`~.film_unet.FiLMUNetConfig`. Both take
    ``(x, t, text, patient, drop_mask)``.

    Raises:
        TypeError: not a U-Net config (a dict goes through :func:`unet_config_from_dict` first).
    """
    if type(cfg) not in _NETWORKS:
        raise TypeError(
            f"build_unet takes a PaperUNetConfig or FiLMUNetConfig (unet_config_from_dict reads a dict), got "
            f"{type(cfg).__name__}"
        )
    return _NETWORKS[type(cfg)][0](cfg)


def describe_unet(cfg: UNetConfigBase, latent_length: int = 128) -> list[dict[str, Any]]:
    """The network of ``cfg`` level by level, for documentation: one dict per stage with ``stage``,
    ``channels in → out``, ``length`` (latent positions) and ``detail`` (skips, attention, conditioning); see
    :func:`~.unet.describe_paper_unet` and :func:`~.film_unet.describe_film_unet`.

    Raises:
        TypeError: not a U-Net config.
    """
    if type(cfg) not in _NETWORKS:
        raise TypeError(f"describe_unet takes a PaperUNetConfig or FiLMUNetConfig, got {type(cfg).__name__}")
    return _NETWORKS[type(cfg)][1](cfg, latent_length)


def unet_from_artifact(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The U-Net stored in a ``diffusets.unet`` artifact (``run/unet/model.pt``, written by
    :func:`~diffusets_core.train.unet.train_unet`), built with :func:`build_unet` from the stored config (read with
    ``strict=False``: artifacts in the one-config format load) -- a :class:`~.twin.TwinUNet1D` when the artifact also
    stores a ``reference_encoder`` (:func:`~diffusets_core.train.twin.train_twin_unet`) -- and the artifact's ``meta`` (embedder identity,
    patient mode, schedule, ...). The model is on ``map_location``, in training mode as built.

    Raises:
        CheckpointError: unreadable file, another kind of artifact, or weights that do not fit the config.
    """
    ck = load_artifact(path, "diffusets.unet", "U-Net", map_location=map_location)
    unet = build_unet(unet_config_from_dict(ck["config"], strict=False))
    if ck.get("reference_encoder") is not None:  # a twin (train/twin.py): the U-Net with a reference encoder
        try:
            unet = TwinUNet1D(unet, ReferenceEncoderConfig.from_dict(ck["reference_encoder"]))
        except ValueError as exc:
            raise CheckpointError(f"{path}: reference encoder does not fit the stored U-Net: {exc}") from None
    try:
        unet.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {exc}") from None
    return unet, ck["meta"]

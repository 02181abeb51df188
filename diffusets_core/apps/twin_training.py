"""The digital twin from one call: the twin run prepared and the twin trained, with chapter 11's settings.

What ``diffusets train-twin RUN_DIR`` runs, and what chapter 11 (``notebooks/11_digital_twin.ipynb``) does in its
sections 11.1 and 11.2: :func:`~diffusets_core.apps.twin.prepare_twin_run` builds ``RUN_DIR/twin`` (a cohort with
several records per subject, encoded with the run's VAE and embedded with its embedder), then
:func:`~diffusets_core.train.twin.train_twin_unet` fine-tunes the run's U-Net (``RUN_DIR/unet/model.pt``) with a
reference encoder into ``RUN_DIR/twin/unet/model.pt``, which ``DiffuSETSPipeline.from_pretrained(RUN_DIR/twin)`` and
``diffusets generate --run RUN_DIR/twin --reference RECORD`` load.

The settings are the chapter's parameters (a profile's ``notebook_params["11_digital_twin"]``), defaulting to the
chapter's own defaults (:data:`TWIN_DEFAULTS`; a test checks they equal the notebook's parameters cell, so the
command and the chapter train the same twin).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..checkpoint import load_checkpoint
from ..layout import unet_model, vae_model
from ..models.factory import unet_config_from_dict
from ..models.film_unet import FiLMUNetConfig
from ..models.twin import ReferenceEncoderConfig
from ..train.loop import TrainConfig
from ..train.twin import train_twin_unet
from .twin import TwinRunConfig, prepare_twin_run

__all__ = ["TWIN_CHAPTER", "TWIN_DEFAULTS", "twin_settings", "train_twin_run"]

#: the chapter whose parameters (a profile's ``notebook_params``) set the twin
TWIN_CHAPTER = "11_digital_twin"

#: chapter 11's defaults of the parameters that make the twin (its parameters cell; tests/test_cli_twin.py checks
#: the two agree): the twin cohort's size, records per subject and build workers, the reference encoder's widths
#: and dropout, the contrastive identity steps, the encoder's learning-rate scale and the fine-tuning settings
TWIN_DEFAULTS: dict[str, Any] = {
    "twin_n": 160,
    "records_per_subject": "3-5",
    "workers": 2,
    "reference_channels": [32, 32],
    "reference_dropout": 0.3,
    "identity_steps": 50,
    "encoder_lr_scale": 10.0,
    "twin_train": {
        "max_steps": 40,
        "batch_size": 16,
        "lr": 0.0005,
        "val_every": 20,
        "checkpoint_every": 20,
        "log_every": 5,
    },
}


def twin_settings(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`TWIN_DEFAULTS` with the keys of ``params`` (a profile's ``notebook_params["11_digital_twin"]``) that
    it names; the chapter's other parameters (``max_requests``, ``steps``, ...) are ignored. ``twin_train`` is
    replaced as a whole, as papermill replaces the chapter's. A new dict (the defaults are never changed)."""
    out = copy.deepcopy(TWIN_DEFAULTS)
    for key, value in (params or {}).items():
        if key in out:
            out[key] = copy.deepcopy(value)
    return out


def _check_base_run(run_dir: Path) -> None:
    """FileNotFoundError naming every model the twin needs that ``run_dir`` lacks, each with the command that makes
    it; ValueError when the U-Net is not the FiLM network (the only one a reference encoder conditions)."""
    needed = [(vae_model(run_dir), "train-vae"), (unet_model(run_dir), "train-unet")]
    missing = [f"{path} (make it with `diffusets {cmd} {run_dir}`)" for path, cmd in needed if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir}: the twin is fine-tuned from the run's trained models, and it has no "
            + " and no ".join(missing)
        )
    cfg = unet_config_from_dict(load_checkpoint(unet_model(run_dir))["config"])
    if not isinstance(cfg, FiLMUNetConfig):
        raise ValueError(
            f"{unet_model(run_dir)}: a twin needs the FiLM U-Net (unet.model.arch: film); this run's is the paper's "
            "network, which has no place for a reference encoder"
        )


def _train_overrides(settings: dict, device: str | None, max_steps: int | None, progress: bool) -> dict:
    """The fine-tuning's :class:`~diffusets_core.train.loop.TrainConfig` settings: ``twin_train`` with the command
    line's device and step count; checked here, before the twin run is built (ValueError naming the field)."""
    train = dict(settings["twin_train"])
    train.setdefault("progress", progress)
    if device is not None:
        train["device"] = device
    if max_steps is not None:
        train["max_steps"] = max_steps
    try:
        TrainConfig.from_overrides(train, 0)
    except TypeError as exc:  # an unknown key: name the setting it came from
        raise ValueError(f"{TWIN_CHAPTER}.twin_train: {exc}") from None
    return train


def train_twin_run(
    run_dir: str | os.PathLike,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    device: str | None = None,
    max_steps: int | None = None,
    resume: bool = True,
    progress: bool = False,
) -> dict:
    """Prepare ``run_dir``'s twin run and train its twin (module docstring) with chapter 11's settings.

    Args:
        run_dir: a run with a trained VAE and FiLM U-Net (``vae/model.pt``, ``unet/model.pt``) and embeddings.
        params: the chapter's parameters (a profile's ``notebook_params["11_digital_twin"]``); keys left out take
            :data:`TWIN_DEFAULTS`.
        seed: the run's seed (the twin cohort's is ``seed + TWIN_SEED_OFFSET``; the fine-tuning's is ``seed``).
        device: the fine-tuning's device (``auto``, ``cpu``, ``cuda:1``, ...); None: ``twin_train``'s, else auto.
        max_steps: fine-tuning steps instead of ``twin_train["max_steps"]``.
        resume: continue an interrupted fine-tuning from its ``last.pt`` (False: start again).
        progress: progress bars for the cohort, the preparation and (unless ``twin_train`` says) the training.

    Returns:
        ``{"twin_dir", "model", "prepared": prepare_twin_run's summary, "trained": train_twin_unet's summary,
        "settings": the settings used, "generate_with": a command that generates with the twin}``.

    Raises:
        FileNotFoundError: the run lacks its VAE or U-Net (the message names the files and the commands that make
            them) or its embeddings.
        ValueError: a U-Net that is not the FiLM network, or a bad setting (named), before anything is written.
    """
    run_dir = Path(run_dir)
    settings = twin_settings(params)
    _check_base_run(run_dir)
    twin_cfg = TwinRunConfig(
        n=settings["twin_n"], records_per_subject=settings["records_per_subject"], workers=settings["workers"]
    )
    reference = {"channels": list(settings["reference_channels"]), "reference_dropout": settings["reference_dropout"]}
    try:
        ReferenceEncoderConfig.from_dict(reference)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{TWIN_CHAPTER}: {exc}") from None
    train = _train_overrides(settings, device, max_steps, progress)
    prepared = prepare_twin_run(run_dir, twin_cfg, base_seed=seed, progress=progress)
    twin_dir = Path(prepared["twin_dir"])
    trained = train_twin_unet(
        twin_dir,
        unet_model(run_dir),
        reference,
        train,
        seed=seed,
        encoder_lr_scale=float(settings["encoder_lr_scale"]),
        identity_steps=int(settings["identity_steps"]),
        resume=resume,
    )
    return {
        "twin_dir": str(twin_dir),
        "model": str(unet_model(twin_dir)),
        "prepared": prepared,
        "trained": trained,
        "settings": settings,
        "generate_with": f"diffusets generate --run {twin_dir} --reference RECORD --report ... --age ... --sex ... "
        "--hr ... --out ...",
    }

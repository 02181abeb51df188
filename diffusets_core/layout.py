"""The run-directory layout: every sub-folder and file name that more than one module relies on (CONTRACTS.md).

A run directory (``runs/<profile>/``) is written stage by stage; each stage reads what the previous one wrote.
The names live here, once, so a reader finds the layout in one place and a writer and its readers cannot drift
apart. The helpers return :class:`~pathlib.Path` objects and touch no file.

::

    run/data/manifest.csv, data/signals/shard_NNNNN.npy, data/prepare.json     prepare (data.store)
    run/embeddings/{prompts.csv, distinct_prompts.csv, vectors.npy, identity.json, cache/}   embed (text.embed)
    run/vae/model.pt (+ last.pt, best.pt, history.csv, config.json, summary.json, progress.json)   train-vae
    run/latents/{split}.npy, {split}_ids.csv, info.json                          encode
    run/unet/model.pt (+ the trainer's files), unet/sampling.json                train-unet, guidance-sweep
    run/unet_noc/                                                                the text-only ablation U-Net
    run/samples/, run/eval/, run/executed/, run/explorer/                        generation, evaluation, book

Base layer: imports nothing from the package.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "EMBEDDINGS_DIR",
    "VAE_DIR",
    "LATENTS_DIR",
    "UNET_DIR",
    "NOC_DIR",
    "SAMPLES_DIR",
    "EVAL_DIR",
    "EXECUTED_DIR",
    "EXPLORER_DIR",
    "EVAL_GUIDANCE_DIR",
    "COHORT_DIR",
    "BOOK_SRC_DIR",
    "MODEL_FILE",
    "LAST_CHECKPOINT",
    "BEST_CHECKPOINT",
    "HISTORY_FILE",
    "TRAIN_CONFIG_FILE",
    "SUMMARY_FILE",
    "SAMPLING_FILE",
    "PROGRESS_FILE",
    "LATENT_INFO_FILE",
    "LATENT_SPLITS",
    "MANIFEST_FILE",
    "SIGNALS_DIR",
    "PREPARE_FILE",
    "EMBEDDING_CACHE_DIR",
    "PROFILE_FILE",
    "data_dir",
    "embeddings_dir",
    "vae_dir",
    "vae_model",
    "unet_dir",
    "unet_model",
    "sampling_file",
    "latents_dir",
    "latents_file",
    "latent_ids_file",
    "latent_info_file",
]

# ---- sub-folders of a run directory ----------------------------------------------------------------------------
DATA_DIR = "data"  #: prepared signals and the manifest
EMBEDDINGS_DIR = "embeddings"  #: text embeddings of the reports
VAE_DIR = "vae"  #: the VAE trainer's folder and artifact
LATENTS_DIR = "latents"  #: the VAE's encodings of every split
UNET_DIR = "unet"  #: the conditional U-Net trainer's folder and artifact
NOC_DIR = "unet_noc"  #: where the text-only ablation ("noc", cond_dim 0) is trained, beside unet/
SAMPLES_DIR = "samples"  #: generated ECGs (chapter 05, `diffusets generate`)
EVAL_DIR = "eval"  #: evaluate_run's tables
EXECUTED_DIR = "executed"  #: the book runner's executed notebooks
EXPLORER_DIR = "explorer"  #: chapter 10's pre-rendered explorer
EVAL_GUIDANCE_DIR = "eval_guidance"  #: the validation guidance sweep's tables and judges (chapter 04)
COHORT_DIR = "cohort"  #: the embedded cohort a `cohort`-source run builds or reuses
BOOK_SRC_DIR = "book_src"  #: the book runner's staged copy of the book (rendered chapters)

# ---- files --------------------------------------------------------------------------------------------------
MANIFEST_FILE = "manifest.csv"  #: in data/
SIGNALS_DIR = "signals"  #: in data/: shard_NNNNN.npy
PREPARE_FILE = "prepare.json"  #: in data/
EMBEDDING_CACHE_DIR = "cache"  #: in embeddings/
PROFILE_FILE = "profile.json"  #: the profile a run was made with (written by `diffusets book`; config.recorded_profile)
MODEL_FILE = "model.pt"  #: a stage's final artifact (EMA weights + config + meta), in vae/ and unet/
LAST_CHECKPOINT = "last.pt"  #: the trainer's resumable checkpoint
BEST_CHECKPOINT = "best.pt"  #: the trainer's best-validation EMA weights
HISTORY_FILE = "history.csv"  #: the trainer's loss log
TRAIN_CONFIG_FILE = "config.json"  #: the trainer's settings and meta
SUMMARY_FILE = "summary.json"  #: a stage's summary (steps, seconds, losses)
PROGRESS_FILE = "progress.json"  #: a stage's live progress (diffusets_core.progress)
SAMPLING_FILE = "sampling.json"  #: the validated sampling settings, beside the U-Net's model.pt
LATENT_INFO_FILE = "info.json"  #: in latents/
LATENT_SPLITS = ("train", "val", "test")

PathLike = str | os.PathLike


def data_dir(run_dir: PathLike) -> Path:
    return Path(run_dir) / DATA_DIR


def embeddings_dir(run_dir: PathLike) -> Path:
    return Path(run_dir) / EMBEDDINGS_DIR


def vae_dir(run_dir: PathLike) -> Path:
    return Path(run_dir) / VAE_DIR


def vae_model(run_dir: PathLike) -> Path:
    """``run/vae/model.pt``: the trained VAE artifact."""
    return vae_dir(run_dir) / MODEL_FILE


def unet_dir(run_dir: PathLike, name: str = UNET_DIR) -> Path:
    """``run/<name>/``: ``unet`` (the main model) or :data:`NOC_DIR` (the text-only ablation)."""
    return Path(run_dir) / name


def unet_model(run_dir: PathLike, name: str = UNET_DIR) -> Path:
    """``run/<name>/model.pt``: a trained U-Net artifact."""
    return unet_dir(run_dir, name) / MODEL_FILE


def sampling_file(run_dir: PathLike, name: str = UNET_DIR) -> Path:
    """``run/<name>/sampling.json``: the validated sampling settings of that U-Net."""
    return unet_dir(run_dir, name) / SAMPLING_FILE


def latents_dir(run_dir: PathLike) -> Path:
    return Path(run_dir) / LATENTS_DIR


def latents_file(run_dir: PathLike, split: str) -> Path:
    """``run/latents/<split>.npy``: float32 ``(N, C, L)`` posterior means x latent scale."""
    return latents_dir(run_dir) / f"{split}.npy"


def latent_ids_file(run_dir: PathLike, split: str) -> Path:
    """``run/latents/<split>_ids.csv``: the record ids of :func:`latents_file`'s rows."""
    return latents_dir(run_dir) / f"{split}_ids.csv"


def latent_info_file(run_dir: PathLike) -> Path:
    return latents_dir(run_dir) / LATENT_INFO_FILE

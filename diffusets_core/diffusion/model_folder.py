"""A self-contained model folder: what ``DiffuSETSPipeline.save_pretrained`` and ``diffusets export`` write and what
``DiffuSETSPipeline.from_pretrained`` reads without the run directory that trained the model (diffusers / Hugging
Face convention).

::

    model_index.json          format + version, package version, embedder identity, patient mode, noise schedule,
                              fs, leads, sampling settings (and whether validated or defaults), clip_sample,
                              the SHA-256 of every file below, provenance (data, profile, training, evaluation)
    README.md                 the model card (YAML front matter: license, library_name, tags)
    unet/config.json          U-Net config (its network's fields + arch) + _class_name (models.folder)
    unet/model.safetensors    the U-Net's state dict: parameters and buffers (text standardisation, ...)
    vae/config.json           VAEConfig + _class_name (latent scale and per-channel latent statistics included)
    vae/model.safetensors     the VAE's state dict
    text_cache/<identity>/    optional: the run's cached prompt vectors (an embedding cache, read only)

Nothing else of the run is needed: prompts are embedded again with the recorded embedder, which is deterministic for
a given batch of texts; the optional ``text_cache/`` carries the run's own vectors for the prompts it had embedded
(a local transformer gives vectors that differ in the last float bits when a prompt is embedded in another batch,
so only with them are the run's samples reproduced bit for bit on those prompts).

:func:`write_model_folder` writes a folder from :class:`ModelParts` (the index last: a folder without
``model_index.json`` is an interrupted export); :func:`read_model_folder` checks it (format version, every listed
file present with its SHA-256, tensors that fit the configs, embedder width = U-Net text width) and returns the
parts. :func:`run_provenance` collects what a run records about itself (data, profile, training, evaluation);
:func:`render_model_card` writes the card from the index alone, so a folder exported again from a folder gets the
same card. Errors are :class:`~diffusets_core.checkpoint.CheckpointError` naming the file.

Why it lives in ``diffusion``, beside the pipeline, and not in :mod:`diffusets_core.generate`: it is the pipeline's
own I/O (diffusers' ``save_pretrained`` / ``from_pretrained``): ``DiffuSETSPipeline.from_pretrained`` reads a folder
and ``save_pretrained`` writes one, and no module may import a layer above its own. The provenance stays here too:
:func:`run_provenance` runs when the pipeline loads a run, so a pipeline loaded from a run saves a card with that
run's data, profile and benchmark. It reads only files the run has recorded (``data/prepare.json``,
``profile.json``, ``eval/targets.csv``, ``eval/benchmark.json``) and imports neither training nor evaluation.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from torch import nn

from .. import __version__
from ..checkpoint import CheckpointError
from ..data.leads import CANONICAL_LEADS
from ..fileio import TMP_PREFIX, atomic_write_json, atomic_write_text, atomic_writer
from ..layout import EVAL_DIR, MODEL_FILE, PREPARE_FILE, PROFILE_FILE, VAE_DIR, data_dir, unet_dir
from ..models.folder import CONFIG_FILE, WEIGHTS_FILE, load_unet_dir, load_vae_dir, save_model_dir
from ..models.vae import VAE
from ..text.cache import EmbeddingCache
from ..text.embedders import EmbedderIdentity
from .sampling import resolve_sampling
from .schedules import NoiseSchedule

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "CARD_FILE",
    "UNET_SUBDIR",
    "VAE_SUBDIR",
    "TEXT_CACHE_DIR",
    "ModelParts",
    "is_model_folder",
    "file_sha256",
    "identity_from_dict",
    "run_provenance",
    "reference_provenance",
    "write_model_folder",
    "read_index",
    "read_model_folder",
    "render_model_card",
]

FORMAT = "diffusets-model-folder"  #: ``model_index.json["format"]``
FORMAT_VERSION = 1  #: the newest layout this package reads and the one it writes
INDEX_FILE = "model_index.json"  #: the folder's index (written last)
CARD_FILE = "README.md"  #: the model card
UNET_SUBDIR = "unet"
VAE_SUBDIR = "vae"
TEXT_CACHE_DIR = "text_cache"  #: optional read-only embedding cache of the run's prompt vectors

#: what an export writes; a folder holding anything else is not overwritten without ``overwrite=True``
_EXPORT_ENTRIES = {INDEX_FILE, CARD_FILE, UNET_SUBDIR, VAE_SUBDIR, TEXT_CACHE_DIR}
_COMPONENT_FILES = {CONFIG_FILE, WEIGHTS_FILE}

#: what each data source of ``diffusets prepare`` is, for the model card
_DATASETS = {
    "cohort": (
        "the package's embedded synthetic cohort: simulated 12-lead ECGs (a median beat from the deepfake-ecg GAN, "
        "edited by written rules for one rhythm and up to three further findings) with machine-style reports "
        "written by a rule-based interpreter from the finished signal; no patient data"
    ),
    "mimic": "MIMIC-IV-ECG (recorded ECGs of patients, with their machine reports)",
    "ptbxl": "PTB-XL (recorded ECGs of patients, with their reports)",
    "wfdb": "a folder of WFDB records (recorded or synthetic, as its source says)",
}


@dataclass
class ModelParts:
    """Everything a model folder holds, in memory: the two networks and what generation needs besides them.

    ``sampling_saved``: the settings saved with the model (a run's ``unet/sampling.json``: sampler,
    num_inference_steps, guidance_scale, guidance_on, chosen_by, ...), ``{}`` when none were (the pipeline's
    defaults apply); ``sampling``: the settings generation uses, four keys, validated. ``provenance``: data,
    profile, training and evaluation of the weights (:func:`run_provenance`, :func:`reference_provenance`).
    """

    unet: nn.Module
    vae: VAE
    embedder: dict[str, Any]
    patient_mode: str
    schedule: NoiseSchedule
    fs: float
    sampling_saved: dict[str, Any]
    sampling: dict[str, Any]
    provenance: dict[str, Any]
    clip_sample: float | None = None
    text_cache: Path | None = None  # a read-only embedding cache root that ships with the folder
    files: dict[str, str] = field(default_factory=dict)  # relative path -> SHA-256, as the index lists them


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an exported model folder (it holds ``model_index.json``)."""
    return (Path(path) / INDEX_FILE).is_file()


def _looks_exported(path: Path) -> bool:
    return any((path / sub / WEIGHTS_FILE).is_file() for sub in (UNET_SUBDIR, VAE_SUBDIR))


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file (64 hex digits), streamed in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity_from_dict(d: dict[str, Any]) -> EmbedderIdentity:
    """The :class:`~diffusets_core.text.embedders.EmbedderIdentity` of a recorded identity dict (a run's
    ``embeddings/identity.json``, ``model_index.json["embedder"]``); extra keys (window, counts) are ignored."""
    dim = d.get("dim")
    return EmbedderIdentity(
        str(d["backend"]),
        str(d["model"]),
        None if dim is None else int(dim),
        str(d.get("prompt_mode", "paper")),
        d.get("base_url"),
    )


# ---- provenance --------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when it is missing or unreadable (provenance never stops an export)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _number(text: str | None) -> float | None:
    try:
        v = float(text) if text not in (None, "") else math.nan
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _evaluation(run_dir: Path, unet_sha16: str | None) -> dict[str, Any]:
    """The run's benchmark summary (``eval/targets.csv`` with ``eval/benchmark.json``, as ``evaluate_run`` writes
    them) when it was made with these U-Net weights; otherwise ``status: not evaluated`` with the reason."""
    ev = run_dir / EVAL_DIR
    targets, bench_path = ev / "targets.csv", ev / "benchmark.json"
    if not targets.is_file():
        return {"status": "not evaluated", "reason": "the run has no eval/targets.csv (`diffusets evaluate` not run)"}
    bench = _read_json(bench_path)
    if bench is None:
        return {
            "status": "not evaluated",
            "reason": "the run's eval/benchmark.json is missing or unreadable (an interrupted evaluation?)",
        }
    evaluated = (bench.get("pipeline") or {}).get("unet_sha256")
    if unet_sha16 is None or evaluated != unet_sha16:
        return {
            "status": "not evaluated",
            "reason": f"the run's evaluation (eval/) is of other U-Net weights (sha256 {evaluated}...), not of these "
            f"({unet_sha16}...)",
        }
    try:
        with open(targets, newline="", encoding="utf-8") as fh:
            raw = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        return {"status": "not evaluated", "reason": f"the run's eval/targets.csv is unreadable ({exc})"}
    rows = [
        {
            "target": r.get("target", ""),
            "description": r.get("description", ""),
            "value": _number(r.get("value")),
            "vae_ceiling": _number(r.get("vae_ceiling")),
            "threshold": _number(r.get("threshold")),
            "direction": r.get("direction", ""),
            "met": str(r.get("met", "")).strip().lower() == "true",
        }
        for r in raw
    ]
    keys = ("n_conditions", "seed", "sampler", "steps", "guidance_scale", "guidance_on", "baselines", "n_tstr")
    return {
        "status": "evaluated",
        "files": ["eval/targets.csv", "eval/benchmark.json"],
        "settings": {k: bench.get(k) for k in keys if k in bench},
        "targets": rows,
    }


def _scrub_profile(profile: dict) -> dict:
    """A recorded profile without the build machine's paths (the run and data folders: their names are kept)."""
    out = json.loads(json.dumps(profile))
    if isinstance(out.get("run_dir"), str):
        out["run_dir"] = Path(out["run_dir"]).name
    data = out.get("data")
    if isinstance(data, dict):
        for key in ("data_dir", "code_map", "exclude"):
            if isinstance(data.get(key), str):
                data[key] = Path(data[key]).name
    return out


def run_provenance(
    run_dir: str | os.PathLike, unet_name: str, meta: dict[str, Any], unet_sha16: str | None
) -> dict[str, Any]:
    """What a run records about the weights being exported, from its files: the data (``data/prepare.json``:
    source, records prepared, split sizes), the profile (``profile.json``, without machine paths), the U-Net's
    training (the artifact's ``meta``: records, steps, loss weighting, package version), the evaluation
    (``eval/targets.csv`` + ``eval/benchmark.json`` when ``benchmark.json`` names these weights by ``unet_sha16``,
    the first 16 hex digits of the SHA-256 of ``run/<unet_name>/model.pt``), and the git commit (None: runs do
    not record it). Missing or unreadable files give None entries, never an error."""
    run_dir = Path(run_dir)
    prep = _read_json(data_dir(run_dir) / PREPARE_FILE)
    data = None
    if prep is not None:
        data = {
            "source": prep.get("source"),
            "records_prepared": (prep.get("counts") or {}).get("ok", prep.get("n")),
            "splits": prep.get("splits"),
            "fs": prep.get("fs"),
        }
    profile = _read_json(run_dir / PROFILE_FILE)
    keys = (
        "n_train",
        "n_val",
        "steps",
        "train_seconds",
        "patient_mode",
        "timestep_mode",
        "loss_weighting",
        "snr_gamma",
        "wording_variants",
        "package_version",
    )
    return {
        "source": "run",
        "run_name": run_dir.resolve().name,
        "unet_dir": unet_name,
        "data": data,
        "profile": None if profile is None else _scrub_profile(profile),
        "training": {k: meta.get(k) for k in keys if k in meta},
        "git_commit": None,
        "evaluation": _evaluation(run_dir, unet_sha16),
    }


def reference_provenance(identity: dict[str, Any]) -> dict[str, Any]:
    """Provenance of the authors' released checkpoint loaded by ``DiffuSETSPipeline.from_reference`` (its
    ``identity``): the file names, no evaluation by this package."""
    return {
        "source": "reference",
        "weights": identity.get("weights", "the authors' released DiffuSETS checkpoint"),
        "unet_file": Path(str(identity.get("unet_path", ""))).name or None,
        "vae_file": Path(str(identity.get("vae_path", ""))).name or None,
        "git_commit": None,
        "evaluation": {
            "status": "not evaluated",
            "reason": "the released checkpoint has not been through this package's benchmark",
        },
    }


# ---- writing -----------------------------------------------------------------------------------------------------
def _foreign_entries(out: Path) -> list[str]:
    """Entries of ``out`` that an export does not write (temporary files of an interrupted write excepted)."""
    bad = []
    for p in sorted(out.iterdir()):
        if p.name.startswith(TMP_PREFIX) or (p.name == TEXT_CACHE_DIR and p.is_dir()):
            continue
        if p.name not in _EXPORT_ENTRIES or (p.name in (UNET_SUBDIR, VAE_SUBDIR)) != p.is_dir():
            bad.append(p.name)
        elif p.is_dir():
            bad += [f"{p.name}/{q.name}" for q in sorted(p.iterdir()) if q.name not in _COMPONENT_FILES
                    and not q.name.startswith(TMP_PREFIX)]  # fmt: skip
    return bad


def _check_out(out: Path, overwrite: bool, sources: Sequence[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder")
    for src in sources:
        if out.resolve() == src.resolve():
            raise ValueError(f"{out} is where the model is loaded from (its run or folder); export into another folder")
    if (unet_dir(out) / MODEL_FILE).exists() or (out / VAE_DIR / MODEL_FILE).exists():
        raise ValueError(f"{out} is a run directory (it holds unet/ or vae/ {MODEL_FILE}); export into another folder")
    if out.is_dir() and not overwrite:
        foreign = _foreign_entries(out)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
            raise ValueError(
                f"{out} is not empty and not a model folder ({shown}); choose an empty or new folder, or pass "
                "overwrite=True (--overwrite) to write the export into it anyway"
            )


def _copy_text_cache(roots: Sequence[Path], identity: EmbedderIdentity, dest_root: Path) -> int:
    """Copy the committed segments of ``identity`` under ``roots`` into ``dest_root`` and merge them into one
    segment; returns the number of vectors the copied cache holds."""
    slug = identity.slug()
    dest = dest_root / slug
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    seen: set[Path] = set()
    for root in roots:
        src = Path(root) / slug
        if not src.is_dir() or src.resolve() in seen:
            continue
        seen.add(src.resolve())
        for keys in sorted(src.glob("seg-*.keys")):
            npy = keys.with_suffix(".npy")
            if npy.is_file():
                for f in (npy, keys):  # .npy first, its .keys (the commit marker) after
                    with atomic_writer(dest / f.name) as tmp:
                        shutil.copyfile(f, tmp)
    cache = EmbeddingCache(dest_root, identity)
    cache.consolidate()
    if len(cache):
        atomic_write_json(dest / "identity.json", dict(identity.to_dict(), dim=cache.dim, key="sha256(prompt utf-8)"))
    return len(cache)


def write_model_folder(
    out: str | os.PathLike,
    parts: ModelParts,
    *,
    overwrite: bool = False,
    text_cache_roots: Sequence[str | os.PathLike] | None = None,
    sources: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write ``parts`` as a model folder at ``out`` (layout in the module docstring); every file atomically, the
    index last. Returns ``out``.

    ``out`` may be new, empty, or a previous export (its files are replaced; an old ``text_cache/`` is removed
    unless a new one is written); any other non-empty folder is refused unless ``overwrite`` (then the export's
    entries, ``model_index.json``, ``README.md``, ``unet/``, ``vae/`` and ``text_cache/``, are replaced and
    everything else is left alone). ``text_cache_roots``: embedding cache roots whose vectors of the
    recorded embedder are copied into ``text_cache/`` (None: no cache is shipped). ``sources``: the run directory
    or folder the model comes from (exporting into a run directory is refused).

    Raises:
        ValueError: ``out`` is a file, a run directory, or a non-empty folder other than an export (without
            ``overwrite``); sampling settings that do not validate (:func:`~.sampling.resolve_sampling`).
    """
    out = Path(out)
    _check_out(out, overwrite, [Path(s) for s in sources])
    sampling = resolve_sampling(SimpleNamespace(sampling=parts.sampling, schedule=parts.schedule, unet=parts.unet))
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # the folder is an interrupted export until the new index exists
        (out / INDEX_FILE).unlink()
    written: list[Path] = []
    for sub, model in ((UNET_SUBDIR, parts.unet), (VAE_SUBDIR, parts.vae)):
        paths = save_model_dir(model, out / sub)
        written += [paths["config"], paths["weights"]]
    cache_root = out / TEXT_CACHE_DIR
    if cache_root.exists():
        shutil.rmtree(cache_root)
    n_cached = 0
    if text_cache_roots is not None:
        n_cached = _copy_text_cache([Path(r) for r in text_cache_roots], identity_from_dict(parts.embedder), cache_root)
        if n_cached:
            written += sorted(p for p in cache_root.rglob("*") if p.is_file())
        else:
            shutil.rmtree(cache_root)
    files = {p.relative_to(out).as_posix(): file_sha256(p) for p in written}
    dim = parts.embedder.get("dim")
    index = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package": "diffusets-core",
        "package_version": str(__version__),
        "exported_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "pipeline": "DiffuSETSPipeline",
        "components": {
            UNET_SUBDIR: {
                "class": type(parts.unet).__name__,
                "config": f"{UNET_SUBDIR}/{CONFIG_FILE}",
                "weights": f"{UNET_SUBDIR}/{WEIGHTS_FILE}",
            },
            VAE_SUBDIR: {
                "class": type(parts.vae).__name__,
                "config": f"{VAE_SUBDIR}/{CONFIG_FILE}",
                "weights": f"{VAE_SUBDIR}/{WEIGHTS_FILE}",
            },
        },  # fmt: skip
        "embedder": {**parts.embedder, "dim": int(dim) if dim is not None else parts.unet.cfg.text_dim},
        "text_dim": int(parts.unet.cfg.text_dim),
        "cond_dim": int(parts.unet.cfg.cond_dim),
        "patient_mode": parts.patient_mode,
        "schedule": parts.schedule.to_config(),
        "clip_sample": parts.clip_sample,
        "fs": float(parts.fs),
        "leads": list(CANONICAL_LEADS),
        "signal_length": 1024,
        "units": "mV",
        "sampling": {
            "source": "sampling.json" if parts.sampling_saved else "defaults",
            "saved": parts.sampling_saved,
            "settings": sampling,
        },
        "text_cache": {"folder": TEXT_CACHE_DIR, "vectors": n_cached} if n_cached else None,
        "files": files,
        "provenance": parts.provenance,
    }
    atomic_write_text(out / CARD_FILE, render_model_card(index))
    _readable([*written, out / CARD_FILE])
    atomic_write_json(out / INDEX_FILE, index)  # last: the folder is complete
    _readable([out / INDEX_FILE])
    return out


def _readable(paths: Sequence[Path]) -> None:
    """Give ``paths`` the permissions a new file gets under the process's umask (the atomic writes' temporary
    files are private, 0600): a folder made to be shared is readable by those the umask allows."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        with contextlib.suppress(OSError):
            p.chmod(0o666 & ~mask)


# ---- reading -----------------------------------------------------------------------------------------------------
def read_index(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder/model_index.json``, checked: a JSON object of :data:`FORMAT` whose ``format_version`` this package
    reads (<= :data:`FORMAT_VERSION`).

    Raises:
        CheckpointError: the file is missing (for a folder that holds exported weights: "an interrupted export?"),
            unreadable, of another format, or of an unknown format version; the message names the file.
    """
    folder = Path(folder)
    path = folder / INDEX_FILE
    if not path.is_file():
        hint = " (it holds exported weights: an interrupted export? export it again)" if _looks_exported(folder) else ""
        raise CheckpointError(f"missing file: {path}{hint}")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        got = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise CheckpointError(f"{path}: not a DiffuSETS model folder index (format {got!r}, expected {FORMAT!r})")
    version = index.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unknown format version {version!r}; this package (diffusets-core {__version__}) reads "
            f"versions 1 to {FORMAT_VERSION} (a newer package wrote it? upgrade diffusets-core)"
        )
    for key in ("files", "embedder", "schedule", "sampling", "components"):
        if not isinstance(index.get(key), dict):
            raise CheckpointError(f"{path}: no {key!r} object")
    return index


def _verify_files(folder: Path, index: dict[str, Any]) -> None:
    path = folder / INDEX_FILE
    files = index["files"]
    for sub in (UNET_SUBDIR, VAE_SUBDIR):
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if f"{sub}/{name}" not in files:
                raise CheckpointError(f"{path}: 'files' does not list {sub}/{name}")
    for rel, expected in files.items():
        p = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise CheckpointError(f"{path}: file {rel!r} lies outside the folder")
        if not p.is_file():
            raise CheckpointError(f"missing file: {p} (listed in {path})")
        got = file_sha256(p)
        if got != expected:
            raise CheckpointError(
                f"{p}: SHA-256 {got[:16]}... does not match {expected[:16]}... recorded in {path}: the file was "
                "changed or damaged after export"
            )


def read_model_folder(folder: str | os.PathLike, map_location: Any = "cpu") -> ModelParts:
    """The parts of the model folder ``folder``, checked: :func:`read_index`, every file of ``files`` present
    with its SHA-256, the U-Net and VAE built from their configs with strictly loaded weights
    (:func:`~diffusets_core.models.folder.load_unet_dir`, :func:`~diffusets_core.models.folder.load_vae_dir`),
    the recorded embedder's width equal to the U-Net's ``text_dim``, the schedule and sampling settings valid.
    Models are on ``map_location``, in eval mode.

    Raises:
        CheckpointError: any of those checks failing; the message names the file.
    """
    folder = Path(folder)
    index = read_index(folder)
    path = folder / INDEX_FILE
    _verify_files(folder, index)
    unet = load_unet_dir(folder / UNET_SUBDIR, map_location)
    vae = load_vae_dir(folder / VAE_SUBDIR, map_location)
    emb = index["embedder"]
    if "backend" not in emb or "model" not in emb:
        raise CheckpointError(f"{path}: the embedder identity lacks 'backend' or 'model'")
    if emb.get("dim") is not None and int(emb["dim"]) != unet.cfg.text_dim:
        raise CheckpointError(
            f"{path}: the embedder {emb['backend']} {emb['model']} gives {emb['dim']}-d vectors but "
            f"{folder / UNET_SUBDIR / CONFIG_FILE} has text_dim {unet.cfg.text_dim}"
        )
    try:
        schedule = NoiseSchedule.from_config(index["schedule"])
        saved = index["sampling"].get("saved") or {}
        # what the pipeline will generate with: the saved settings over the effective ones recorded at export
        effective = {**(index["sampling"].get("settings") or {}), **saved}
        sampling = resolve_sampling(SimpleNamespace(sampling=effective, schedule=schedule, unet=unet))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    cache = folder / TEXT_CACHE_DIR
    return ModelParts(
        unet=unet,
        vae=vae,
        embedder=dict(emb),
        patient_mode=str(index.get("patient_mode", "normalized")),
        schedule=schedule,
        fs=float(index.get("fs", 102.4)),
        sampling_saved=dict(saved),
        sampling=sampling,
        provenance=dict(index.get("provenance") or {}),
        clip_sample=index.get("clip_sample"),
        text_cache=cache if cache.is_dir() else None,
        files=dict(index["files"]),
    )


# ---- the model card ----------------------------------------------------------------------------------------------
def _licence() -> tuple[str, str]:
    """(front-matter id, sentence) of the package's licence, from its installed metadata."""
    try:
        md = importlib.metadata.metadata("diffusets-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown", "The package metadata of diffusets-core is not installed here, so its licence is unknown."
    expr = md.get("License-Expression") or md.get("License")
    files = md.get_all("License-File") or []
    if not expr:
        return "unknown", "diffusets-core declares no licence in its package metadata."
    text = f"{expr}, as declared in the package metadata of diffusets-core (pyproject.toml)"
    text += "." if files else "; no licence text file ships with the package."
    return str(expr).lower(), text


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _evaluation_section(ev: dict[str, Any]) -> list[str]:
    if ev.get("status") != "evaluated":
        return [f"Not evaluated: {ev.get('reason', 'no benchmark was recorded for these weights')}."]
    s = ev.get("settings", {})
    lines = [
        "The run's benchmark (`diffusets evaluate`), read from its "
        + " and ".join(f"`{f}`" for f in ev.get("files", []))
        + f": {_fmt(s.get('n_conditions'))} test conditions, sampler {_fmt(s.get('sampler'))} with "
        f"{_fmt(s.get('steps'))} steps, guidance scale {_fmt(s.get('guidance_scale'))} on "
        f"{_fmt(s.get('guidance_on'))}, seed {_fmt(s.get('seed'))}. The VAE ceiling is the same measure on the "
        "real test ECGs passed through the VAE.",
        "",
        "| target | description | value | VAE ceiling | threshold | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in ev.get("targets", []):
        thr = f"{r.get('direction', '')} {_fmt(r.get('threshold'))}".strip()
        lines.append(
            f"| `{r.get('target')}` | {r.get('description')} | {_fmt(r.get('value'))} | "
            f"{_fmt(r.get('vae_ceiling'))} | {thr} | {_fmt(r.get('met'))} |"
        )
    return lines


def _embedder_sentence(emb: dict[str, Any]) -> str:
    backend, model, dim = emb.get("backend"), emb.get("model"), emb.get("dim")
    what = f"`{backend}` embedder `{model}` ({dim}-d vectors, `{emb.get('prompt_mode', 'paper')}` prompts)"
    need = {
        "local": "it runs locally with the package (no download)",
        "openai": "it needs an OpenAI-compatible endpoint and the OPENAI_API_KEY environment variable",
        "hash": "a test-only embedder without meaning: this model is a test fixture",
    }.get(str(backend), "")
    return what + (f"; {need}" if need else "")


#: Front-matter tags of the card (what the Hugging Face hub files the model under).
_CARD_TAGS = ("ecg", "electrocardiogram", "12-lead-ecg", "latent-diffusion", "text-to-signal", "synthetic-data")

_INTENDED_USE = [
    "## Intended use",
    "",
    "Research and teaching: studying text- and patient-conditioned ECG generation, reproducing and extending "
    "the DiffuSETS benchmark, making synthetic ECGs to test software, illustrating ECG findings. **Not for "
    "diagnosis** or any clinical decision: a generated ECG is not a recording of a patient, and nothing it "
    "shows is evidence about one.",
]


def _data_source(prov: dict[str, Any]) -> Any:
    """The ``diffusets prepare`` source of the training data (``cohort``, ``mimic``, ...), or None."""
    return (prov.get("data") or {}).get("source")


def _front_matter(lic_id: str) -> list[str]:
    return [
        "---",
        f"license: {lic_id}",
        "library_name: diffusets-core",
        "tags:",
        *[f"- {t}" for t in _CARD_TAGS],
        "---",
    ]


def _title_section(index: dict[str, Any], prov: dict[str, Any]) -> list[str]:
    """The title (which run and profile, or the released checkpoint) and what the model does."""
    profile = prov.get("profile") or {}
    reference = prov.get("source") == "reference"
    title = "the authors' released checkpoint" if reference else f"run `{prov.get('run_name', 'unknown')}`"
    if profile.get("name"):
        title += f", profile `{profile['name']}`"
    return [
        f"# DiffuSETS ECG generator ({title})",
        "",
        "A latent diffusion model that generates 10-second 12-lead ECGs (12 × 1024 samples at "
        f"{_fmt(index.get('fs'))} Hz, in mV, leads {', '.join(index.get('leads', []))}) from a clinical text report "
        "(statements joined with `|`) and the patient's sex, age and heart rate: an implementation of DiffuSETS "
        f"(Lai et al., arXiv 2501.05932) by the `diffusets-core` package. Exported with diffusets-core "
        f"{index.get('package_version')} (folder format {index.get('format_version')}).",
    ]


def _usage_section(index: dict[str, Any]) -> list[str]:
    """How to load and call the model, and what its inputs and sampling defaults are."""
    smp = index.get("sampling", {})
    st = smp.get("settings", {})
    saved = smp.get("saved") if isinstance(smp.get("saved"), dict) else {}
    if smp.get("source") == "sampling.json":
        how = "the run's sampling.json" + (f", chosen by {saved['chosen_by']}" if saved.get("chosen_by") else "")
    else:
        how = "the package's defaults: no validated settings were saved with the model"
    return [
        "## How to use",
        "",
        "```python",
        "from diffusets_core.diffusion.pipeline import DiffuSETSPipeline",
        "",
        'pipe = DiffuSETSPipeline.from_pretrained("path/to/this/folder")',
        'out = pipe("Sinus rhythm|Normal ECG", age=60, sex="F", hr=70, seed=0)',
        "out.signals  # float32 (1, 12, 1024), mV",
        "```",
        "",
        'or `diffusets generate --model path/to/this/folder --report "Sinus rhythm|Normal ECG" --age 60 --sex F '
        "--hr 70 --out samples/`. Nothing of the training run is needed.",
        "",
        f"- Text condition: {_embedder_sentence(index.get('embedder', {}))}. Prompts are embedded when generating "
        "(new vectors are cached in the user's cache folder, `$DIFFUSETS_CACHE` if set)"
        + (
            f"; `{TEXT_CACHE_DIR}/` holds the run's own {index['text_cache']['vectors']} prompt vectors."
            if index.get("text_cache")
            else "."
        ),
        f"- Patient values: `{index.get('patient_mode')}` encoding of sex (M/F), age (years) and heart rate (bpm)"
        + (
            "; this U-Net was trained without them (the text-only ablation) and ignores them."
            if index.get("cond_dim") == 0
            else "."
        ),
        f"- Sampling defaults: {st.get('sampler')}, {st.get('num_inference_steps')} steps, guidance scale "
        f"{_fmt(st.get('guidance_scale'))} on `{st.get('guidance_on')}` ({how}); every call can override them.",
    ]


def _training_section(prov: dict[str, Any]) -> list[str]:
    """Where the weights come from: the run's data, records, training and profile, the released checkpoint, or
    unknown; and the git commit."""
    lines = ["## Training", ""]
    if prov.get("source") == "unknown":
        lines.append("- Unknown: the pipeline was assembled in memory; nothing records how its weights were trained.")
    elif prov.get("source") == "reference":
        lines += [
            f"- Weights: {prov.get('weights')} (`{prov.get('unet_file')}`, `{prov.get('vae_file')}`), trained by the "
            "authors of DiffuSETS on MIMIC-IV-ECG according to the paper; loaded in paper mode (raw patient values, "
            "latent scale 0.18215, predicted x0 clipped to [-1, 1])."
        ]
    else:
        data = prov.get("data") or {}
        profile = prov.get("profile") or {}
        training = prov.get("training") or {}
        source = _data_source(prov)
        splits = data.get("splits") or {}
        lines += [
            f"- Data: {_DATASETS.get(str(source), f'source {source!r}') if source else 'unknown (the run records no data/prepare.json)'}.",
            f"- Records: {_fmt(data.get('records_prepared'))} prepared; subject-level split train "
            f"{_fmt(splits.get('train'))} / validation {_fmt(splits.get('val'))} / test {_fmt(splits.get('test'))}.",
            f"- U-Net: trained on {_fmt(training.get('n_train'))} training records ({_fmt(training.get('n_val'))} "
            f"validation) for {_fmt(training.get('steps'))} steps, loss weighting "
            f"`{_fmt(training.get('loss_weighting'))}`, diffusets-core {_fmt(training.get('package_version'))}.",
            "- Profile: "
            + (
                f"`{profile.get('name')}`: {profile.get('description', '')} (every setting in `{INDEX_FILE}`, "
                "`provenance.profile`)."
                if profile
                else "unknown (the run records no profile.json)."
            ),
        ]  # fmt: skip
    commit = prov.get("git_commit")
    lines.append(
        f"- Git commit: {commit if commit else 'unknown (the run does not record the commit it was built at)'}."
    )
    return lines


def _limitations_section(index: dict[str, Any], prov: dict[str, Any]) -> list[str]:
    """What the model cannot do: its training data (synthetic or recorded), the text it understands, the ranges,
    rate and length it was trained on, and its determinism."""
    lines = ["## Limitations", ""]
    source = _data_source(prov)
    if source == "cohort":
        lines.append(
            "- Trained on a synthetic cohort: the model learnt the synthesiser's beats and the interpreter's "
            "reports, never a real patient's ECG; what it does well or badly here does not carry over to real ECGs."
        )
    elif source in ("mimic", "ptbxl", "wfdb"):
        lines.append(
            "- Trained on recorded ECGs: the model can reflect the population, devices and reporting habits of its "
            "dataset, and (like any generative model) may reproduce features of individual training records."
        )
    lines += [
        "- The report is understood only as far as the text embedder and the training reports allow: statements, "
        "wordings and combinations of findings absent from training are followed less reliably, and a statement "
        "longer than the embedder's window is refused.",
        "- Sex, age (0–120 y) and heart rate (20–300 bpm) are accepted over wide ranges; values outside those of "
        "the training records were never learnt.",
        f"- One rate and length: {_fmt(index.get('fs'))} Hz, 10 s. Output at 100 or 500 Hz "
        "(`generate --conditions --fs`) is resampled, not generated at that rate.",
        "- Outputs depend on the seed; the same seed, settings and software give the same ECG on the same kind of "
        "processor, but other hardware or library versions can change the last digits.",
    ]
    return lines


def _licence_section(prov: dict[str, Any], lic_text: str) -> list[str]:
    """The package's licence (``lic_text``), the authors' for released weights, and the dataset's terms for weights
    trained on recorded ECGs."""
    lines = ["## Licence", ""]
    if prov.get("source") == "reference":
        lines.append(
            "The weights are the authors' released checkpoint; their licence is the authors' and is not recorded "
            f"here. The code that loads them: {lic_text}"
        )
    else:
        lines.append(lic_text)
        if _data_source(prov) in ("mimic", "ptbxl", "wfdb"):
            lines.append(
                "\nThe weights were trained on that dataset: its licence and data use terms apply to sharing them "
                "as well."
            )
    return lines


def _files_section(index: dict[str, Any]) -> list[str]:
    lines = ["## Files", "", "| file | SHA-256 |", "|---|---|"]
    lines += [f"| `{rel}` | `{sha}` |" for rel, sha in sorted(index.get("files", {}).items())]
    lines += ["", f"`{INDEX_FILE}` lists them with everything else generation needs (embedder, schedule, sampling)."]
    return lines


def render_model_card(index: dict[str, Any]) -> str:
    """The model card (Hugging Face ``README.md`` with YAML front matter) of a model folder, from its index alone:
    what the model does and how to load it, the training data, profile and commit, the evaluation (the run's
    benchmark table, or "not evaluated" with the reason), intended use, limitations, licence and files."""
    prov = index.get("provenance") or {}
    lic_id, lic_text = _licence()
    sections = [
        _front_matter("unknown" if prov.get("source") == "reference" else lic_id),
        _title_section(index, prov),
        _usage_section(index),
        _training_section(prov),
        ["## Evaluation", "", *_evaluation_section(prov.get("evaluation") or {})],
        _INTENDED_USE,
        _limitations_section(index, prov),
        _licence_section(prov, lic_text),
        _files_section(index),
    ]
    lines: list[str] = []
    for k, section in enumerate(sections):
        lines += ([""] if k else []) + section  # one blank line between sections
    return "\n".join(lines) + "\n"

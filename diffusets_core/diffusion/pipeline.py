"""``DiffuSETSPipeline``: reports + patient info -> 12-lead ECGs, wiring a U-Net to a sampler and the VAE.

In the style of diffusers: the pipeline owns no maths. It embeds the ordered prompts (through the run's
embedding cache), encodes the patient values, runs :meth:`GaussianDiffusion.sample
<diffusets_core.diffusion.gaussian.GaussianDiffusion.sample>` (a sampler with optional classifier-free guidance),
and decodes the latents to mV signals. Loading belongs to the models (``VAE.from_artifact``,
``unet_from_artifact``); the pipeline imports only models, diffusion, text, data and the base layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import torch

from .. import fileio
from ..data.leads import CANONICAL_LEADS
from ..data.preprocess import MODEL_FS, PreprocessConfig
from ..data.store import SignalStore
from ..data.wfdb_io import RecordError
from ..device import resolve_device
from ..fileio import atomic_write_text
from ..layout import SAMPLING_FILE, UNET_DIR, sampling_file, unet_model, vae_model
from ..models.factory import unet_from_artifact
from ..models.folder import WEIGHTS_FILE
from ..models.reference import check_embedder_compat, load_reference_unet, load_reference_vae
from ..models.twin import ReferenceConditioned, TwinUNet1D
from ..models.unet import ConditionalUNet1D
from ..models.vae import VAE, load_vae
from ..text.cache import EmbeddingCache
from ..text.embed import CACHE_ENV, CachePlacement, embed_reports, embed_texts, inference_cache, user_cache_dir
from ..text.embedders import embedder_from_identity, make_embedder
from ..text.patient import encode_patient
from ..text.tokens import report_tokens
from .gaussian import GUIDANCE_TARGETS, GaussianDiffusion
from .model_folder import (
    UNET_SUBDIR,
    VAE_SUBDIR,
    ModelParts,
    identity_from_dict,
    is_model_folder,
    read_model_folder,
    reference_provenance,
    run_provenance,
    write_model_folder,
)
from .samplers import get_sampler
from .sampling import positive_int
from .schedules import NoiseSchedule

log = logging.getLogger(__name__)

Scalar = Union[float, int, str]

__all__ = [
    "DEFAULT_SAMPLING",
    "GUIDANCE_TARGETS",
    "SAMPLING_FILE",
    "DiffuSETSPipeline",
    "PipelineConfig",
    "GenerationOutput",
    "export_model",
    "load_sampling_settings",
    "save_sampling_settings",
]

DEFAULT_SAMPLING = {"sampler": "ddim", "num_inference_steps": 50, "guidance_scale": 1.0}


def save_sampling_settings(run_dir: str | os.PathLike, settings: dict, *, unet_dir: str = UNET_DIR) -> Path:
    """Write the sampling settings every consumer of the run uses unless told otherwise (``sampler``,
    ``num_inference_steps``, ``guidance_scale``, ``guidance_on`` and how they were chosen) to
    ``run_dir/<unet_dir>/sampling.json``, atomically. Raises ValueError on an unknown sampler/target or a
    negative scale."""
    s = {**DEFAULT_SAMPLING, **settings}
    get_sampler(s["sampler"], NoiseSchedule.paper())  # raises on an unknown sampler name
    if s.get("guidance_on", "all") not in GUIDANCE_TARGETS:
        raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {s.get('guidance_on')!r}")
    if not float(s["guidance_scale"]) >= 0:
        raise ValueError(f"guidance_scale must be >= 0, got {s['guidance_scale']}")
    path = sampling_file(run_dir, unet_dir)
    atomic_write_text(path, json.dumps(s, indent=2, default=str))
    return path


def load_sampling_settings(run_dir: str | os.PathLike, *, unet_dir: str = UNET_DIR) -> dict:
    """The run's saved sampling settings (:func:`save_sampling_settings`), or ``{}`` when none were saved."""
    path = sampling_file(run_dir, unet_dir)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc}); delete it or re-run `diffusets guidance-sweep --save`"
        ) from None


def _effective_sampling(unet_cfg: Any, saved: dict | None) -> dict:
    """What a pipeline generates with for arguments left at None: ``saved`` (a run's validated settings) over the
    defaults; guidance acts on the report alone by default for a U-Net trained with separate condition dropout."""
    separate = getattr(unet_cfg, "cond_dropout_mode", "joint") == "separate"
    return {**DEFAULT_SAMPLING, "guidance_on": "text" if separate else "all", **(saved or {})}


def _user_cache(identity: Any) -> CachePlacement:
    """Where a pipeline that has no run caches new prompt vectors: ``$DIFFUSETS_CACHE``, else the user's cache
    folder (:func:`~diffusets_core.text.embed.user_cache_dir` ``/embeddings``), when this process may write there;
    else nowhere (vectors kept in memory)."""
    root = Path(os.environ.get(CACHE_ENV) or user_cache_dir() / "embeddings")
    if fileio.writable_dir(root / identity.slug()):
        return CachePlacement(root)
    return CachePlacement(
        None, (), f"{root} is not writable: embeddings of new prompts are computed and not cached (set {CACHE_ENV})"
    )


def _run_preprocess(run_dir: Path) -> PreprocessConfig | None:
    """The run's preprocessing (``data/prepare.json``), or None when the run has no prepared data."""
    from ..data.store import read_preprocess_config

    try:
        return read_preprocess_config(run_dir)
    except FileNotFoundError:
        return None


def _run_parts(run_dir: Path, unet_dir: str, device: Any) -> tuple[ModelParts, dict, dict]:
    """The parts of a run's model (``run/<unet_dir>/model.pt``, ``run/vae/model.pt``, ``sampling.json``, the
    prepared data's rate, the run's provenance), the U-Net artifact's ``meta`` and the short SHA-256 of both
    artifacts (``{"unet": ..., "vae": ...}``). Raises CheckpointError for a missing or mismatched artifact."""
    unet, meta = unet_from_artifact(unet_model(run_dir, unet_dir), map_location=device)
    vae = load_vae(run_dir, device)
    schedule = NoiseSchedule.from_config(meta["schedule"]) if "schedule" in meta else NoiseSchedule.paper()
    fs = MODEL_FS
    try:
        fs = SignalStore(run_dir).fs
    except FileNotFoundError:
        pass
    saved = load_sampling_settings(run_dir, unet_dir=unet_dir)
    sha = {"unet": _file_sha256(unet_model(run_dir, unet_dir)), "vae": _file_sha256(vae_model(run_dir))}
    parts = ModelParts(
        unet=unet,
        vae=vae,
        embedder=dict(meta["embedder"]),
        patient_mode=meta.get("patient_mode", "normalized"),
        schedule=schedule,
        fs=fs,
        sampling_saved=saved,
        sampling=_effective_sampling(unet.cfg, saved),
        provenance=run_provenance(run_dir, unet_dir, meta, sha["unet"]),
    )
    return parts, meta, sha


def export_model(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    unet_dir: str = UNET_DIR,
    overwrite: bool = False,
    text_cache: bool = False,
) -> Path:
    """Write the model of ``source`` (a run directory, or a model folder) as a self-contained model folder at
    ``out`` (:mod:`~diffusets_core.diffusion.model_folder`), without building its text embedder (no API key or
    embedder weights needed): what ``diffusets export`` calls. :meth:`DiffuSETSPipeline.save_pretrained` writes the
    same folder from a loaded pipeline.

    ``unet_dir``: which U-Net of a run (``"unet"``, or ``layout.NOC_DIR`` for the text-only ablation).
    ``overwrite``: write into a non-empty folder that is not a previous export. ``text_cache``: ship the prompt
    vectors cached for the run's embedder in the caches its pipeline reads (``text_cache/``; needed only to
    reproduce the run's samples bit for bit with an embedder whose vectors depend on the batch they were computed
    in, such as the local MiniLM; holds sha256 keys of prompts, not their text).

    Returns ``out``.

    Raises:
        CheckpointError: a missing, unreadable or mismatched artifact of ``source`` (the message names the file).
        ValueError: ``out`` is refused (see :func:`~.model_folder.write_model_folder`), or ``unet_dir`` is given for
            a model folder.
    """
    source = Path(source)
    if is_model_folder(source):
        if unet_dir != UNET_DIR:
            raise ValueError(f"unet_dir applies to run directories; the model folder {source} holds one U-Net")
        parts = read_model_folder(source)
        roots = [parts.text_cache] if parts.text_cache is not None else []
    else:
        parts, _, _ = _run_parts(source, unet_dir, torch.device("cpu"))
        place = inference_cache(source, identity_from_dict(parts.embedder))  # the caches the run's pipeline reads
        roots = [r for r in (place.root, *place.read_only) if r is not None]
    return write_model_folder(
        out, parts, overwrite=overwrite, text_cache_roots=roots if text_cache else None, sources=[source]
    )


@dataclass
class GenerationOutput:
    """Generated signals ``(B, 12, L)`` in mV with their sampling rate, lead names and conditions."""

    signals: np.ndarray
    fs: float
    leads: tuple[str, ...]
    conditions: pd.DataFrame  # report, sex, age, hr, seed, sampler, steps, guidance_scale
    latents: np.ndarray | None = None
    model: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    """How a pipeline's models condition and decode: what they were trained with, read from the run or model folder.

    ``patient_mode``: ``"normalized"`` (sex +-1, (age - 50) / 20, (HR - 75) / 25) or ``"paper"`` (raw values, the
    released model; :func:`~diffusets_core.text.patient.encode_patient`); ``schedule``: the training noise schedule
    (None: the paper's); ``fs``: the signals' sampling rate in Hz; ``clip_sample``: the predicted x0's clipping
    (None: none; the released model 1.0); ``sampling``: the validated sampling settings saved with the model
    (``sampling.json``; None: :data:`DEFAULT_SAMPLING`)."""

    patient_mode: str = "normalized"
    schedule: NoiseSchedule | None = None
    fs: float = MODEL_FS
    clip_sample: Any = None
    sampling: dict | None = None
    #: how the run prepared its records (``data/prepare.json``): a reference ECG given as a WFDB record is prepared
    #: the same way (None: the default preprocessing at ``fs``)
    preprocess: PreprocessConfig | None = None


def _file_sha256(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _broadcast(name: str, value: Any, n: int) -> list:
    if isinstance(value, (str, int, float, np.integer, np.floating)) or value is None:
        return [value] * n
    values = list(value)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{name}: expected one value or {n} values, got {len(values)}")
    return values


class DiffuSETSPipeline:
    """Text + patient conditioned ECG generation. Build with :meth:`from_pretrained` (a run directory or an exported
    model folder) or :meth:`from_reference`; :meth:`save_pretrained` writes a model folder to share."""

    def __init__(
        self,
        unet: ConditionalUNet1D,
        vae: VAE,
        embedder: Any,
        config: PipelineConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        text_cache: CachePlacement | None = None,
        identity: dict | None = None,
        provenance: dict | None = None,
    ):
        """``config``: how the models condition and decode (:class:`PipelineConfig`; default: normalised patient
        values, the paper's schedule, 102.4 Hz, no clipping, the default sampling settings). ``text_cache``: where
        prompt vectors are read and appended (None: computed each time). ``identity``: what the pipeline reports as
        its model (``GenerationOutput.model``); ``provenance``: where the weights come from (data, profile,
        training, evaluation), what :meth:`save_pretrained`'s model card says.

        Raises:
            ValueError: the embedder's width is not the U-Net's ``text_dim``.
        """
        config = config or PipelineConfig()
        text_cache = text_cache or CachePlacement(None)
        self.device = torch.device(device)
        self.unet = unet.to(self.device).eval()
        self.vae = vae.to(self.device).eval()
        self.embedder = embedder
        self.patient_mode = config.patient_mode
        self.schedule = config.schedule or NoiseSchedule.paper()
        self.fs = config.fs
        self.preprocess = config.preprocess
        self.cache_dir = text_cache.root  # where new prompt vectors are appended (None: not cached)
        self.cache_read_only = tuple(text_cache.read_only)  # caches read but never written (a read-only run's)
        # a model folder's shipped vectors win over the user's cache (they are the ones the run generated with)
        self.cache_read_only_first = text_cache.read_only_first
        self.identity = identity or {}
        self.clip_sample = config.clip_sample
        # what __call__ uses for arguments left at None: the run's validated settings, else the defaults
        self.sampling_saved = dict(config.sampling or {})  # the settings saved with the model ({}: none)
        self.sampling = _effective_sampling(unet.cfg, config.sampling)
        # where the weights come from (data, profile, training, evaluation): what save_pretrained's model card says
        self.provenance = provenance
        dim = getattr(embedder, "dim", None)
        if dim is not None and int(dim) != unet.cfg.text_dim:
            raise ValueError(
                f"embedder {getattr(embedder, 'identity', embedder)} gives {dim}-d vectors but the U-Net "
                f"was trained on {unet.cfg.text_dim}-d text embeddings; use the embedder it was trained with"
            )

    @property
    def diffusion(self) -> GaussianDiffusion:
        """The diffusion objective of :attr:`schedule` (sampling and guidance)."""
        return GaussianDiffusion(self.schedule)

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        run_dir: str | os.PathLike,
        *,
        device: str = "auto",
        embedder: Any = None,
        unet_dir: str = UNET_DIR,
        **embedder_kwargs: Any,
    ) -> DiffuSETSPipeline:
        """Load a trained model with the embedder it was trained with (``embedder_kwargs`` go to
        :func:`~diffusets_core.text.embedders.embedder_from_identity`; ``embedder`` replaces it, and must give
        vectors of the U-Net's text width).

        ``run_dir`` is either a run directory (``run_dir/<unet_dir>/model.pt`` and ``run_dir/vae/model.pt``;
        ``unet_dir=layout.NOC_DIR`` (``"unet_noc"``) loads the text-only ablation trained beside the main model), or
        a model folder written by :meth:`save_pretrained` / ``diffusets export`` (recognised by its
        ``model_index.json``; every file is checked against the SHA-256 the index records). Loading a folder needs
        nothing of the run and imports no training code; new prompt vectors are cached in ``$DIFFUSETS_CACHE`` or
        the user's cache folder, never in the model folder (its optional ``text_cache/`` is only read).

        Raises:
            CheckpointError: a missing, unreadable or mismatched artifact: a file of the folder missing or changed
                (SHA-256), weights that do not fit their config, an embedder identity whose width is not the
                U-Net's, an unknown folder format version (the message names the file).
            ValueError: an ``embedder`` whose vectors do not have the U-Net's text width; ``unet_dir`` given for a
                model folder.
        """
        run_dir = Path(run_dir)
        dev = resolve_device(device)
        if is_model_folder(run_dir):
            if unet_dir != UNET_DIR:
                raise ValueError(f"unet_dir applies to run directories; the model folder {run_dir} holds one U-Net")
            return cls._from_folder(run_dir, dev, embedder, embedder_kwargs)
        if not unet_model(run_dir, unet_dir).exists() and (run_dir / UNET_SUBDIR / WEIGHTS_FILE).exists():
            read_model_folder(run_dir)  # a model folder without its index: CheckpointError names the missing file
        parts, meta, sha = _run_parts(run_dir, unet_dir, dev)
        ident = meta["embedder"]
        if embedder is None:  # with the window the training text was embedded with (same prompts split)
            embedder = embedder_from_identity(ident, **embedder_kwargs)
        model_id = {
            "run_dir": str(run_dir.resolve()),
            "unet_dir": unet_dir,
            "unet_steps": meta.get("steps"),
            # the weights themselves: a U-Net retrained to the same step count is another model
            "unet_sha256": sha["unet"],
            "vae_sha256": sha["vae"],
            "embedder": ident,
            "arch": parts.unet.cfg.arch,
            "sampling": parts.sampling_saved or "defaults (no validated settings saved)",
            "patient_mode": parts.patient_mode,
            "weights": "trained in this run",
        }
        # generation never needs to write into the run: a run others only read caches new prompts elsewhere
        place: CachePlacement = inference_cache(run_dir, embedder.identity)
        if place.note:
            log.warning("%s", place.note)
        return cls(
            parts.unet,
            parts.vae,
            embedder,
            PipelineConfig(
                parts.patient_mode,
                parts.schedule,
                parts.fs,
                sampling=parts.sampling_saved,
                preprocess=_run_preprocess(run_dir),
            ),
            device=dev,
            text_cache=place,
            identity=model_id,
            provenance=parts.provenance,
        )

    @classmethod
    def _from_folder(
        cls, folder: Path, dev: torch.device, embedder: Any, embedder_kwargs: dict[str, Any]
    ) -> DiffuSETSPipeline:
        """:meth:`from_pretrained` of an exported model folder (:func:`~.model_folder.read_model_folder`)."""
        parts = read_model_folder(folder, dev)
        if embedder is None:
            embedder = embedder_from_identity(parts.embedder, **embedder_kwargs)
        place = _user_cache(embedder.identity)
        if place.note:
            log.warning("%s", place.note)
        model_id = {
            "model_dir": str(folder.resolve()),
            "unet_steps": (parts.provenance.get("training") or {}).get("steps"),
            "unet_sha256": parts.files[f"{UNET_SUBDIR}/{WEIGHTS_FILE}"][:16],
            "vae_sha256": parts.files[f"{VAE_SUBDIR}/{WEIGHTS_FILE}"][:16],
            "embedder": parts.embedder,
            "arch": parts.unet.cfg.arch,
            "sampling": parts.sampling_saved or "defaults (no validated settings saved)",
            "patient_mode": parts.patient_mode,
            "weights": "exported model folder",
        }
        return cls(
            parts.unet,
            parts.vae,
            embedder,
            PipelineConfig(parts.patient_mode, parts.schedule, parts.fs, parts.clip_sample, parts.sampling_saved),
            device=dev,
            text_cache=CachePlacement(
                place.root, (parts.text_cache,) if parts.text_cache is not None else (), read_only_first=True
            ),
            identity=model_id,
            provenance=parts.provenance,
        )

    def save_pretrained(self, out: str | os.PathLike, *, overwrite: bool = False, text_cache: bool = False) -> Path:
        """Write this pipeline's model as a self-contained model folder at ``out``, which
        :meth:`from_pretrained` loads without the run (layout: :mod:`~diffusets_core.diffusion.model_folder`): both
        networks as safetensors with their JSON configs, ``model_index.json`` (embedder identity, patient mode,
        schedule, fs, leads, sampling settings, SHA-256 of every file, provenance) and a model card ``README.md``
        (data, profile, the run's benchmark table or "not evaluated", intended use, limitations, licence). Works for
        a pipeline loaded from a run, from a model folder (a copy with the same weights and card) or with
        :meth:`from_reference`.

        ``overwrite``: write into a non-empty folder that is not a previous export (a previous export is always
        replaced). ``text_cache``: also ship the prompt vectors cached for this embedder (``text_cache/``, read-only
        at load), so the run's samples are reproduced bit for bit even for prompts whose cached vectors were
        computed in other batches (the local MiniLM's vectors differ in the last bits between batches).

        Returns ``out``.

        Raises:
            ValueError: ``out`` is a file, a run directory, the folder this pipeline was loaded from, or a
                non-empty folder other than an export (without ``overwrite``); invalid sampling settings.
        """
        provenance = self.provenance
        if provenance is None:
            provenance = {
                "source": "unknown",
                "git_commit": None,
                "evaluation": {
                    "status": "not evaluated",
                    "reason": "the pipeline was assembled in memory; nothing records how its weights were made",
                },
            }
        parts = ModelParts(
            unet=self.unet,
            vae=self.vae,
            embedder=dict(self.identity.get("embedder") or self.embedder.identity.to_dict()),
            patient_mode=self.patient_mode,
            schedule=self.schedule,
            fs=self.fs,
            sampling_saved=self.sampling_saved,
            sampling=self.sampling,
            provenance=provenance,
            clip_sample=self.clip_sample,
        )
        roots = [r for r in (self.cache_dir, *self.cache_read_only) if r is not None]
        sources = [Path(self.identity[k]) for k in ("run_dir", "model_dir") if self.identity.get(k)]
        return write_model_folder(
            out, parts, overwrite=overwrite, text_cache_roots=roots if text_cache else None, sources=sources
        )

    @classmethod
    def from_reference(
        cls,
        unet_path: str | os.PathLike,
        vae_path: str | os.PathLike,
        *,
        embedder: Any = "openai",
        device: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        **embedder_kwargs: Any,
    ) -> DiffuSETSPipeline:
        """The authors' released model (``unet_all.pth`` + ``vae_model.pth``) in paper mode
        (book/reference_implementation.md#released-files).

        Paper mode: ordered prompts in the reference's exact template, raw patient values (sex 1 = M,
        age in years, HR in bpm), latent constant 0.18215, predicted x0 clipped to [-1, 1]. The released
        U-Net was trained on OpenAI ``text-embedding-ada-002`` vectors (1536-d; the key is read from
        ``OPENAI_API_KEY``); any other embedder must have the checkpoint's text width, which is checked
        before generation. Use ``sampler="ddpm", num_inference_steps=1000`` for the paper's sampler.

        Lead order: the released VAE was trained on MIMIC-IV-ECG's files as stored and decodes in their order
        (I, II, III, aVR, aVF, aVL, V1..V6); the loaded :class:`~diffusets_core.models.reference.ReferenceVAE`
        reorders at its boundary, so the signals returned (and exported) are in
        :data:`~diffusets_core.data.leads.CANONICAL_LEADS` order like every other model's (aVL before aVF).
        """

        dev = resolve_device(device)
        unet = load_reference_unet(unet_path)
        vae = load_reference_vae(vae_path)
        if isinstance(embedder, str):
            model = embedder_kwargs.pop("model", "text-embedding-ada-002" if embedder == "openai" else None)
            embedder = make_embedder(embedder, model=model, prompt_mode="paper", **embedder_kwargs)
        if getattr(embedder, "prompt_mode", "paper") != "paper":
            raise ValueError(
                "the released model was conditioned on paper-mode ordered prompts; "
                f"got an embedder with prompt_mode={embedder.prompt_mode!r}"
            )
        if getattr(embedder, "dim", None) is not None:
            check_embedder_compat(unet, embedder)
        cache = (
            Path(cache_dir) if cache_dir else Path(os.environ.get("DIFFUSETS_CACHE") or user_cache_dir() / "embeddings")
        )
        identity = {
            "weights": "authors' released DiffuSETS checkpoint (paper mode)",
            "unet_path": str(Path(unet_path).resolve()),
            "vae_path": str(Path(vae_path).resolve()),
            "text_dim": unet.cfg.text_dim,
            "embedder": embedder.identity.to_dict(),
            "patient_mode": "paper",
        }
        return cls(
            unet,
            vae,
            embedder,
            PipelineConfig("paper", NoiseSchedule.paper(), MODEL_FS, clip_sample=1.0),
            device=dev,
            text_cache=CachePlacement(cache),
            identity=identity,
            provenance=reference_provenance(identity),
        )

    # -- conditioning --------------------------------------------------------------------------------
    def embedding_cache(self) -> EmbeddingCache | None:
        """The cache prompts are embedded through: appends to :attr:`cache_dir`, also reads
        :attr:`cache_read_only`; None when there is neither (vectors are then computed each time)."""
        if self.cache_dir is None and not self.cache_read_only:
            return None
        if self.cache_dir is None:  # nothing writable: read what exists, append into memory only
            first = self.cache_read_only[0]
            return EmbeddingCache(first, self.embedder.identity, read_only_roots=self.cache_read_only, persist=False)
        return EmbeddingCache(
            self.cache_dir,
            self.embedder.identity,
            read_only_roots=self.cache_read_only,
            read_only_first=self.cache_read_only_first,
        )

    def embed_reports(self, reports: Sequence[str]) -> np.ndarray:
        """The text condition of ``reports`` (``|``-joined statements), embedded through the run's cache: the
        ordered-prompt vectors (N, D) of :func:`~diffusets_core.text.embed.embed_reports` (a prompt longer than the
        embedder's window is embedded in chunks of whole statements), or for a U-Net with statement tokens
        (``text_tokens = K``) the token matrix (N, 1 + K, D) of :func:`~diffusets_core.text.tokens.report_tokens`.
        Raises PromptTooLongError (a ValueError) for a statement longer than the window, with its token count and
        the limit."""

        cache = self.embedding_cache()
        # the text layer's one rule for prompts longer than the embedder's window (split, or refused)
        vectors, _ = embed_reports(list(reports), self.embedder, cache)
        if vectors.shape[1] != self.unet.cfg.text_dim:
            raise ValueError(
                f"the embedder returned {vectors.shape[1]}-d vectors; this U-Net expects "
                f"{self.unet.cfg.text_dim}-d (text_dim of the checkpoint)"
            )
        k = getattr(self.unet.cfg, "text_tokens", 0)
        if not k:
            return vectors
        tokens, _ = report_tokens(
            list(reports), vectors, lambda st: embed_texts(st, self.embedder, cache, progress=False)[0], k
        )
        return tokens

    def conditions(
        self, reports: str | Sequence[str], age: Any, sex: Any, hr: Any, n: int | None = None
    ) -> pd.DataFrame:
        """Validated, broadcast conditions as a table (one row per ECG to generate); ``n`` (a whole number >= 1)
        ECGs, or as many as the longest of the given lists. ValueError names a bad field or count."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise ValueError(f"n (number of ECGs) must be a whole number >= 1, got {n!r}")
        if isinstance(reports, str):
            reports = [reports]
        reports = list(reports)
        n = n or max(len(reports), *(len(v) if isinstance(v, (list, tuple, np.ndarray)) else 1 for v in (age, sex, hr)))
        frame = pd.DataFrame(
            {
                "report": _broadcast("reports", reports, n),
                "sex": _broadcast("sex", sex, n),
                "age": _broadcast("age", age, n),
                "hr": _broadcast("hr", hr, n),
            }
        )
        if frame["report"].map(lambda r: not isinstance(r, str) or not r.strip()).any():
            raise ValueError("reports: every report must be a non-empty string (statements joined with '|')")
        # encode_patient validates ranges and sex values with messages that name the field
        encode_patient(frame["sex"].tolist(), frame["age"].to_numpy(float), frame["hr"].to_numpy(float), mode="paper")
        frame["sex"] = frame["sex"].map(lambda s: str(s).strip().upper()[:1])
        return frame

    @torch.no_grad()
    def reference_latents(
        self, reference: Any, n: int, reference_guidance: float = 1.0
    ) -> tuple[torch.Tensor | None, list[str]]:
        """The VAE latents (1 or ``n``, C, l) of ``reference`` (see :meth:`__call__`) and a name for each (the path,
        or ``array[i]``); ``(None, [])`` without a reference.

        Raises:
            ValueError: a reference for a model without a reference encoder, a count other than 1 or ``n``,
                ``reference_guidance`` not finite or < 0, or != 1 for a twin trained without reference dropout, or what
                :func:`~diffusets_core.data.reference_ecg.load_reference_ecgs` refuses.
        """
        if reference is None:
            return None, []
        g = float(reference_guidance)
        if not (math.isfinite(g) and g >= 0):
            raise ValueError(f"reference_guidance must be a finite number >= 0, got {reference_guidance!r}")
        if not isinstance(self.unet, TwinUNet1D):
            raise ValueError(
                "reference: this model has no reference encoder; load a twin model (a twin run's directory, "
                "e.g. RUN/twin, trained by `diffusets train-twin`)"
            )
        if float(reference_guidance) != 1.0 and self.unet.reference_cfg.reference_dropout <= 0:
            raise ValueError("reference_guidance != 1 needs a twin trained with reference_dropout > 0")
        from ..data.reference_ecg import load_reference_ecgs, reference_names

        try:
            x = load_reference_ecgs(reference, fs=self.fs, length=PreprocessConfig.out_len, preprocess=self.preprocess)
        except RecordError as exc:  # an unreadable record is bad input like any other: one error type for callers
            raise ValueError(f"reference: {exc}") from None
        if len(x) not in (1, n):
            raise ValueError(f"reference: expected 1 ECG or one per generated ECG ({n}), got {len(x)}")
        chunks = [
            self.vae.encode(torch.from_numpy(x[i : i + 64]).to(self.device), sample=False)[0]
            for i in range(0, len(x), 64)  # bounded memory for a reference per ECG of a large request
        ]
        return torch.cat(chunks), reference_names(reference, len(x))

    # -- generation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        reports: str | Sequence[str],
        *,
        age: Any = 50,
        sex: Any = "M",
        hr: Any = 75,
        num_ecgs: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | Sequence[int] = 0,
        sampler: str | None = None,
        guidance_on: str | None = None,
        batch_size: int = 64,
        progress: bool = False,
        return_latents: bool = False,
        bf16: bool = False,
        reference: Any = None,
        reference_guidance: float = 1.0,
    ) -> GenerationOutput:
        """Generate one ECG per row of the broadcast conditions. ECG ``i`` uses seed ``seed + i``, so a
        sample does not depend on the batch it was generated in; ``seed`` may also be a sequence with one
        seed per ECG (what dataset generation uses: seeds follow the conditions file's rows, not the batch).

        Arguments left at None take the run's validated settings (``unet/sampling.json``, written by
        ``diffusets guidance-sweep --save`` from the validation split; see :attr:`sampling`), else
        DDIM, 50 steps, no guidance. sampler: ``ddim``, ``dpmsolver++`` (20 steps is enough) or ``ddpm`` (the
        paper: 1000 ancestral steps). guidance_scale 1.0 is plain conditional sampling; > 1 applies
        classifier-free guidance (needs a model trained with condition dropout). ``guidance_on="all"`` guides
        away from the null condition (report and patient values dropped, the paper's scheme); ``"text"``
        guides the report alone, keeping sex, age and HR in both branches (needs ``cond_dropout_mode=
        "separate"``). ``bf16`` runs the U-Net under bfloat16 autocast (on CUDA, or on CPUs with fast bf16
        matrix units); the sampler's arithmetic stays float32.

        ``reference`` (a twin model only, :mod:`~diffusets_core.models.twin`): the patient's own earlier ECG, one
        for all ECGs or one per ECG -- a WFDB record path (read and preprocessed as the run's records were), an
        array (12, L) or (N, 12, L) in mV already at the model's rate and length, or a list of these
        (:func:`~diffusets_core.data.reference_ecg.load_reference_ecgs`). ``reference_guidance`` s guides the
        reference on its own (1: plain conditioning; > 1 strengthens it, 0 ignores it; see
        :class:`~diffusets_core.models.twin.ReferenceConditioned`). The conditions table then also holds
        ``reference`` (what was given, per ECG) and ``reference_guidance``.

        Raises:
            ValueError: a bad condition, count, seed or sampling setting (named); a reference given to a model
                without a reference encoder, or one that is not 1 or one per ECG; a reference of the wrong shape,
                rate or leads (the loader's message names the file or field).
        """
        batch_size = positive_int("batch_size", batch_size)
        settings = self.sampling
        sampler = settings["sampler"] if sampler is None else sampler
        num_inference_steps = int(
            settings["num_inference_steps"] if num_inference_steps is None else num_inference_steps
        )
        guidance_scale = float(settings["guidance_scale"] if guidance_scale is None else guidance_scale)
        guidance_on = settings["guidance_on"] if guidance_on is None else guidance_on
        if guidance_on not in GUIDANCE_TARGETS:
            raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {guidance_on!r}")
        cond = self.conditions(reports, age, sex, hr, n=num_ecgs)
        if isinstance(seed, (int, np.integer)):
            seed_list = [int(seed) + i for i in range(len(cond))]
        else:
            seed_list = [int(s) for s in seed]
            if len(seed_list) != len(cond):
                raise ValueError(f"seed: expected one seed or {len(cond)} seeds, got {len(seed_list)}")
        diffusion = self.diffusion
        diffusion.check_guidance(self.unet.cfg, guidance_scale, guidance_on)
        text = torch.from_numpy(self.embed_reports(cond["report"].tolist())).to(self.device)
        patient = torch.from_numpy(
            encode_patient(
                cond["sex"].tolist(), cond["age"].to_numpy(float), cond["hr"].to_numpy(float), mode=self.patient_mode
            )
        ).to(self.device)
        patient = patient[:, : self.unet.cfg.cond_dim]  # a text-only model (cond_dim 0) ignores the patient
        ref_z, ref_names = self.reference_latents(reference, len(cond), reference_guidance)
        diffusion_sampler = diffusion.sampler(sampler)
        length = PreprocessConfig.out_len // self.vae.cfg.downsample_factor  # the models' 10 s at 102.4 Hz
        signals, latents = [], []
        for start in range(0, len(cond), batch_size):
            rows = slice(start, min(start + batch_size, len(cond)))
            unet = self.unet
            if ref_z is not None:
                unet = ReferenceConditioned(self.unet, ref_z if len(ref_z) == 1 else ref_z[rows], reference_guidance)
            z = diffusion.sample(
                unet,
                text[rows],
                patient[rows],
                (len(seed_list[rows]), self.unet.cfg.in_channels, length),
                sampler=diffusion_sampler,
                seed=seed_list[rows],
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                guidance_on=guidance_on,
                device=self.device,
                progress=progress,
                clip_sample=self.clip_sample,
                bf16=bf16,
            )
            signals.append(self.vae.decode(z).float().cpu().numpy())
            if return_latents:
                latents.append(z.float().cpu().numpy())
        cond["seed"] = seed_list
        cond["sampler"], cond["steps"], cond["guidance_scale"] = sampler, num_inference_steps, guidance_scale
        cond["guidance_on"] = guidance_on
        if ref_z is not None:
            cond["reference"] = ref_names if len(ref_names) == len(cond) else ref_names * len(cond)
            cond["reference_guidance"] = float(reference_guidance)
        return GenerationOutput(
            np.concatenate(signals).astype(np.float32),
            self.fs,
            CANONICAL_LEADS,
            cond,
            np.concatenate(latents) if return_latents else None,
            dict(self.identity),
        )

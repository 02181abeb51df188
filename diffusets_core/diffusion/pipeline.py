"""``DiffuSETSPipeline``: reports + patient info -> 12-lead ECGs, wiring a U-Net to a sampler and the VAE.

In the style of diffusers: the pipeline owns no maths. It embeds the ordered prompts (through the run's
embedding cache), encodes the patient values, runs a sampler with optional classifier-free guidance,
and decodes the latents to mV signals.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from ..data.leads import CANONICAL_LEADS
from ..models.unet import ConditionalUNet1D, UNetConfig, build_unet
from ..models.vae import VAE
from ..text.patient import encode_patient
from ..train.checkpoint import CheckpointError, load_checkpoint
from ..train.distributed import resolve_device
from .samplers import get_sampler
from .schedules import NoiseSchedule

log = logging.getLogger(__name__)

Scalar = Union[float, int, str]

#: Where a run keeps its validated sampling settings, beside the U-Net's ``model.pt``.
SAMPLING_FILE = "sampling.json"
GUIDANCE_TARGETS = ("all", "text")
DEFAULT_SAMPLING = {"sampler": "ddim", "num_inference_steps": 50, "guidance_scale": 1.0}


def save_sampling_settings(run_dir: str | os.PathLike, settings: dict, *, unet_dir: str = "unet") -> Path:
    """Write the sampling settings every consumer of the run uses unless told otherwise (``sampler``,
    ``num_inference_steps``, ``guidance_scale``, ``guidance_on`` and how they were chosen) to
    ``run_dir/<unet_dir>/sampling.json``, atomically. Raises ValueError on an unknown sampler/target or a
    negative scale."""
    import json

    from .samplers import get_sampler

    s = {**DEFAULT_SAMPLING, **settings}
    get_sampler(s["sampler"], NoiseSchedule.paper())  # raises on an unknown sampler name
    if s.get("guidance_on", "all") not in GUIDANCE_TARGETS:
        raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {s.get('guidance_on')!r}")
    if not float(s["guidance_scale"]) >= 0:
        raise ValueError(f"guidance_scale must be >= 0, got {s['guidance_scale']}")
    path = Path(run_dir) / unet_dir / SAMPLING_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(s, indent=2, default=str))
    os.replace(tmp, path)
    return path


def load_sampling_settings(run_dir: str | os.PathLike, *, unet_dir: str = "unet") -> dict:
    """The run's saved sampling settings (:func:`save_sampling_settings`), or ``{}`` when none were saved."""
    import json

    path = Path(run_dir) / unet_dir / SAMPLING_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it or re-run `diffusets guidance-sweep --save`") from None


@dataclass
class GenerationOutput:
    """Generated signals ``(B, 12, L)`` in mV with their sampling rate, lead names and conditions."""

    signals: np.ndarray
    fs: float
    leads: tuple[str, ...]
    conditions: pd.DataFrame  # report, sex, age, hr, seed, sampler, steps, guidance_scale
    latents: Optional[np.ndarray] = None
    model: dict[str, Any] = field(default_factory=dict)


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
    """Text + patient conditioned ECG generation. Build with :meth:`from_pretrained` (a run directory)."""

    def __init__(self, unet: ConditionalUNet1D, vae: VAE, embedder: Any, *, patient_mode: str = "normalized",
                 schedule: Optional[NoiseSchedule] = None, fs: float = 102.4, device: str | torch.device = "cpu",
                 cache_dir: Optional[Path] = None, identity: Optional[dict] = None, clip_sample: Any = None,
                 sampling: Optional[dict] = None):
        self.device = torch.device(device)
        self.unet = unet.to(self.device).eval()
        self.vae = vae.to(self.device).eval()
        self.embedder = embedder
        self.patient_mode = patient_mode
        self.schedule = schedule or NoiseSchedule.paper()
        self.fs = fs
        self.cache_dir = cache_dir
        self.identity = identity or {}
        self.clip_sample = clip_sample
        # what __call__ uses for arguments left at None: the run's validated settings, else the defaults
        separate = getattr(unet.cfg, "cond_dropout_mode", "joint") == "separate"
        self.sampling = {**DEFAULT_SAMPLING, "guidance_on": "text" if separate else "all", **(sampling or {})}
        dim = getattr(embedder, "dim", None)
        if dim is not None and int(dim) != unet.cfg.text_dim:
            raise ValueError(f"embedder {getattr(embedder, 'identity', embedder)} gives {dim}-d vectors but the U-Net "
                             f"was trained on {unet.cfg.text_dim}-d text embeddings; use the embedder it was trained with")

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, run_dir: str | os.PathLike, *, device: str = "auto", embedder: Any = None,
                        unet_dir: str = "unet", **embedder_kwargs: Any) -> "DiffuSETSPipeline":
        """Load ``run_dir/<unet_dir>/model.pt`` and ``run_dir/vae/model.pt`` and the embedder they were trained
        with. ``unet_dir="unet_noc"`` loads the text-only ablation trained beside the main model."""
        from ..text.embed import default_cache_dir
        from ..text.embedders import make_embedder
        from ..train.stages import load_vae

        run_dir = Path(run_dir)
        dev = resolve_device(device)
        path = run_dir / unet_dir / "model.pt"
        ck = load_checkpoint(path, map_location=dev)
        if ck.get("kind") != "diffusets.unet":
            raise CheckpointError(f"{path}: not a DiffuSETS U-Net artifact (kind={ck.get('kind')!r})")
        cfg = UNetConfig.from_dict(ck["config"])
        unet = build_unet(cfg)
        try:
            unet.load_state_dict(ck["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the stored config: {exc}") from None
        meta = ck["meta"]
        ident = meta["embedder"]
        if embedder is None:
            embedder = make_embedder(ident["backend"], model=ident.get("model"), base_url=ident.get("base_url"),
                                     prompt_mode=ident.get("prompt_mode", "paper"), **embedder_kwargs)
        vae = load_vae(run_dir, dev)
        schedule = NoiseSchedule.from_config(meta["schedule"]) if "schedule" in meta else NoiseSchedule.paper()
        fs = 102.4
        try:
            from ..data.store import SignalStore

            fs = SignalStore(run_dir).fs
        except FileNotFoundError:
            pass
        sampling = load_sampling_settings(run_dir, unet_dir=unet_dir)
        model_id = {"run_dir": str(run_dir.resolve()), "unet_dir": unet_dir, "unet_steps": meta.get("steps"),
                    "embedder": ident, "arch": cfg.arch, "sampling": sampling or "defaults (no validated settings saved)",
                    "patient_mode": meta.get("patient_mode", "normalized"), "weights": "trained in this run"}
        return cls(unet, vae, embedder, patient_mode=meta.get("patient_mode", "normalized"), schedule=schedule,
                   fs=fs, device=dev, cache_dir=default_cache_dir(run_dir), identity=model_id, sampling=sampling)

    @classmethod
    def from_reference(cls, unet_path: str | os.PathLike, vae_path: str | os.PathLike, *, embedder: Any = "openai",
                       device: str = "auto", cache_dir: Optional[str | os.PathLike] = None,
                       **embedder_kwargs: Any) -> "DiffuSETSPipeline":
        """The authors' released model (``unet_all.pth`` + ``vae_model.pth``) in paper mode.

        Paper mode: ordered prompts in the reference's exact template, raw patient values (sex 1 = M,
        age in years, HR in bpm), latent constant 0.18215, predicted x0 clipped to [-1, 1]. The released
        U-Net was trained on OpenAI ``text-embedding-ada-002`` vectors (1536-d; the key is read from
        ``OPENAI_API_KEY``); any other embedder must have the checkpoint's text width, which is checked
        before generation. Use ``sampler="ddpm", num_inference_steps=1000`` for the paper's sampler.
        """
        from ..models.reference import check_embedder_compat, load_reference_unet, load_reference_vae
        from ..text.embedders import make_embedder

        dev = resolve_device(device)
        unet = load_reference_unet(unet_path)
        vae = load_reference_vae(vae_path)
        if isinstance(embedder, str):
            model = embedder_kwargs.pop("model", "text-embedding-ada-002" if embedder == "openai" else None)
            embedder = make_embedder(embedder, model=model, prompt_mode="paper", **embedder_kwargs)
        if getattr(embedder, "prompt_mode", "paper") != "paper":
            raise ValueError("the released model was conditioned on paper-mode ordered prompts; "
                             f"got an embedder with prompt_mode={embedder.prompt_mode!r}")
        if getattr(embedder, "dim", None) is not None:
            check_embedder_compat(unet, embedder)
        cache = Path(cache_dir) if cache_dir else Path(os.environ.get("DIFFUSETS_CACHE",
                                                                      Path.home() / ".cache" / "diffusets" / "embeddings"))
        identity = {"weights": "authors' released DiffuSETS checkpoint (paper mode)",
                    "unet_path": str(Path(unet_path).resolve()), "vae_path": str(Path(vae_path).resolve()),
                    "text_dim": unet.cfg.text_dim, "embedder": embedder.identity.to_dict(), "patient_mode": "paper"}
        return cls(unet, vae, embedder, patient_mode="paper", schedule=NoiseSchedule.paper(), fs=102.4, device=dev,
                   cache_dir=cache, identity=identity, clip_sample=1.0)

    # -- conditioning --------------------------------------------------------------------------------
    def embed_reports(self, reports: Sequence[str]) -> np.ndarray:
        """The text condition of ``reports`` (``|``-joined statements), embedded through the run's cache: the
        ordered-prompt vectors (N, D), or for a U-Net with statement tokens (``text_tokens = K``) the token
        matrix (N, 1 + K, D) of :func:`~diffusets_core.text.tokens.report_tokens`."""
        from ..text.cache import EmbeddingCache
        from ..text.embed import embed_texts
        from ..text.prompts import ordered_prompt
        from ..text.tokens import report_tokens

        prompts = [ordered_prompt(r, self.embedder.prompt_mode) for r in reports]
        distinct = list(dict.fromkeys(prompts))
        cache = EmbeddingCache(self.cache_dir, self.embedder.identity) if self.cache_dir else None
        matrix, _ = embed_texts(distinct, self.embedder, cache, progress=False)
        if matrix.shape[1] != self.unet.cfg.text_dim:
            raise ValueError(f"the embedder returned {matrix.shape[1]}-d vectors; this U-Net expects "
                             f"{self.unet.cfg.text_dim}-d (text_dim of the checkpoint)")
        index = {p: i for i, p in enumerate(distinct)}
        vectors = matrix[[index[p] for p in prompts]]
        k = getattr(self.unet.cfg, "text_tokens", 0)
        if not k:
            return vectors
        tokens, _ = report_tokens(list(reports), vectors,
                                  lambda st: embed_texts(st, self.embedder, cache, progress=False)[0], k)
        return tokens

    def conditions(self, reports: Union[str, Sequence[str]], age: Any, sex: Any, hr: Any,
                   n: Optional[int] = None) -> pd.DataFrame:
        """Validated, broadcast conditions as a table (one row per ECG to generate)."""
        if isinstance(reports, str):
            reports = [reports]
        reports = list(reports)
        n = n or max(len(reports), *(len(v) if isinstance(v, (list, tuple, np.ndarray)) else 1 for v in (age, sex, hr)))
        frame = pd.DataFrame({"report": _broadcast("reports", reports, n), "sex": _broadcast("sex", sex, n),
                              "age": _broadcast("age", age, n), "hr": _broadcast("hr", hr, n)})
        if frame["report"].map(lambda r: not isinstance(r, str) or not r.strip()).any():
            raise ValueError("reports: every report must be a non-empty string (statements joined with '|')")
        # encode_patient validates ranges and sex values with messages that name the field
        encode_patient(frame["sex"].tolist(), frame["age"].to_numpy(float), frame["hr"].to_numpy(float), mode="paper")
        frame["sex"] = frame["sex"].map(lambda s: str(s).strip().upper()[:1])
        return frame

    # -- generation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, reports: Union[str, Sequence[str]], *, age: Any = 50, sex: Any = "M", hr: Any = 75,
                 num_ecgs: Optional[int] = None, num_inference_steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None, seed: Union[int, Sequence[int]] = 0, sampler: Optional[str] = None,
                 guidance_on: Optional[str] = None, batch_size: int = 64, progress: bool = False,
                 return_latents: bool = False, bf16: bool = False) -> GenerationOutput:
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
        """
        cfg_s = self.sampling
        sampler = cfg_s["sampler"] if sampler is None else sampler
        num_inference_steps = int(cfg_s["num_inference_steps"] if num_inference_steps is None else num_inference_steps)
        guidance_scale = float(cfg_s["guidance_scale"] if guidance_scale is None else guidance_scale)
        guidance_on = cfg_s["guidance_on"] if guidance_on is None else guidance_on
        if guidance_on not in GUIDANCE_TARGETS:
            raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS}, got {guidance_on!r}")
        cond = self.conditions(reports, age, sex, hr, n=num_ecgs)
        if isinstance(seed, (int, np.integer)):
            seed_list = [int(seed) + i for i in range(len(cond))]
        else:
            seed_list = [int(s) for s in seed]
            if len(seed_list) != len(cond):
                raise ValueError(f"seed: expected one seed or {len(cond)} seeds, got {len(seed_list)}")
        if guidance_scale != 1.0 and self.unet.cfg.cond_dropout <= 0:
            raise ValueError("guidance_scale != 1 needs a U-Net trained with condition dropout (cfg.cond_dropout > 0)")
        if guidance_scale != 1.0 and guidance_on == "text" and getattr(self.unet.cfg, "cond_dropout_mode", "joint") != "separate":
            raise ValueError("guidance_on='text' needs a U-Net trained with cond_dropout_mode='separate' (it never saw "
                             "the report dropped with the patient values kept); use guidance_on='all'")
        text = torch.from_numpy(self.embed_reports(cond["report"].tolist())).to(self.device)
        patient = torch.from_numpy(encode_patient(cond["sex"].tolist(), cond["age"].to_numpy(float),
                                                  cond["hr"].to_numpy(float), mode=self.patient_mode)).to(self.device)
        patient = patient[:, :self.unet.cfg.cond_dim]  # a text-only model (cond_dim 0) ignores the patient
        smp = get_sampler(sampler, self.schedule)
        cfg = self.unet.cfg
        length = 1024 // self.vae.cfg.downsample_factor
        sigs, lats = [], []
        for start in range(0, len(cond), batch_size):
            sl = slice(start, min(start + batch_size, len(cond)))
            tb, pb = text[sl], patient[sl]
            b = tb.shape[0]

            def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                    return _eps(x_t, t).float()

            def _eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                if guidance_scale == 1.0:
                    return self.unet(x_t, t, tb, pb)
                keep, drop = torch.zeros(b, 2, dtype=torch.bool), torch.ones(b, 2, dtype=torch.bool)
                if guidance_on == "text":
                    drop[:, 1] = False  # the unconditional branch keeps sex, age and HR
                both = self.unet(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([tb, tb]), torch.cat([pb, pb]),
                                 torch.cat([keep, drop]).to(self.device))
                eps_c, eps_u = both.chunk(2)
                return eps_u + guidance_scale * (eps_c - eps_u)

            seeds = seed_list[sl]
            z = smp.sample(model_fn, (b, cfg.in_channels, length), seed=seeds, num_inference_steps=num_inference_steps,
                           device=self.device, progress=progress, clip_sample=self.clip_sample)
            sigs.append(self.vae.decode(z).float().cpu().numpy())
            if return_latents:
                lats.append(z.float().cpu().numpy())
        cond["seed"] = seed_list
        cond["sampler"], cond["steps"], cond["guidance_scale"] = sampler, num_inference_steps, guidance_scale
        cond["guidance_on"] = guidance_on
        return GenerationOutput(np.concatenate(sigs).astype(np.float32), self.fs, CANONICAL_LEADS, cond,
                                np.concatenate(lats) if return_latents else None, dict(self.identity))

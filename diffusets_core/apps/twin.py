"""The digital twin's data: a *twin run* beside a trained run, whose subjects have several records.

A twin run is a run directory of its own (default ``<run_dir>/twin``) so that every stage that reads a run
(prepare, encode, embed, the pairs of :mod:`diffusets_core.data.pairs`) works on it unchanged: the cohort is built
in the twin layout (``records_per_subject``: several records per subject from one morphology template, findings
and heart rate drawn per record) or a real dataset is prepared with its own subject ids; the records are encoded
with a copy of the base run's VAE (``twin/vae/model.pt``, byte-identical) and embedded with the base run's embedder
and prompt cache, so the twin's U-Net, fine-tuned from the base run's (:func:`~diffusets_core.train.twin.
train_twin_unet`), reads latents and report vectors exactly as the base U-Net did.

The twin cohort uses its own seed (``seed + TWIN_SEED_OFFSET`` by default): its subjects and their templates are
not those of the base run's cohort, so the twin's test subjects are new to both U-Nets. A twin run's source must be
the base run's (a U-Net trained on MIMIC-IV-ECG is not fine-tuned on the synthetic cohort). For a real dataset the
twin run re-prepares that dataset's records with the twin run's split seed, so its test subjects may be among the
base run's training subjects; a real run whose subjects already have several records can instead train the twin in
the run itself (``train_twin_unet(run, run/unet/model.pt, out_name="unet_twin")``), keeping the run's split.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data.cohort import source_data_dir
from ..data.pairs import run_pairs
from ..data.prepare import PrepareConfig, prepare_dataset
from ..data.store import SignalStore
from ..fileio import atomic_write_text
from ..layout import vae_model
from ..text.embed import EmbedConfig, default_cache_dir, embed_run, load_run_embeddings
from ..text.embedders import embedder_from_identity
from ..train.latents import encode_latents

log = logging.getLogger(__name__)

__all__ = ["TWIN_DIR", "TWIN_SEED_OFFSET", "TwinRunConfig", "prepare_twin_run", "twin_overview"]

#: the twin run's folder inside its base run
TWIN_DIR = "twin"
#: the twin cohort's seed is the base run's plus this (other subjects, other templates)
TWIN_SEED_OFFSET = 1000


@dataclass
class TwinRunConfig:
    """What the twin run holds: ``n`` records (a cohort of ``records_per_subject`` = K or "LO-HI" records per
    subject, or the first ``n`` records of a real ``source`` in ``data_dir``), ``seed`` (None: the base run's seed +
    :data:`TWIN_SEED_OFFSET`), ``workers`` for building and preparing.

    Raises:
        ValueError: ``n`` not a positive whole number, or ``records_per_subject`` with a real source.
    """

    n: int = 1200
    records_per_subject: int | str | tuple[int, int] | None = "3-5"
    source: str = "cohort"
    data_dir: str | None = None
    seed: int | None = None
    workers: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"twin run n must be a whole number >= 1, got {self.n!r}")
        if self.source != "cohort" and self.records_per_subject is not None:
            raise ValueError(
                f"records_per_subject applies to the cohort only; source {self.source!r} has its own subjects "
                "(set records_per_subject to None)"
            )


def _copy_vae(run_dir: Path, twin_dir: Path) -> None:
    """The base run's VAE artifact into the twin run (copied only when missing or different)."""
    src, dst = vae_model(run_dir), vae_model(twin_dir)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: the base run has no trained VAE")
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def prepare_twin_run(
    run_dir: str | os.PathLike,
    config: TwinRunConfig | None = None,
    *,
    twin_dir: str | os.PathLike | None = None,
    base_seed: int = 0,
    progress: bool = False,
) -> dict:
    """Build (or reuse) the twin run of ``run_dir`` (module docstring): data, latents with the base run's VAE,
    embeddings with its embedder. Each step reuses what an earlier call already wrote for the same settings.

    Returns ``{"twin_dir", "prepared", "latents", "embedded"}`` with each stage's summary.

    Raises:
        FileNotFoundError: the base run has no VAE or no embeddings.
        ValueError: a bad :class:`TwinRunConfig`.
    """
    config = config or TwinRunConfig()
    run_dir = Path(run_dir)
    base_source = SignalStore(run_dir).info.get("source")
    if base_source is not None and base_source != config.source:
        raise ValueError(
            f"{run_dir} was trained on source {base_source!r}; a twin run of source {config.source!r} would fine-tune "
            f"its U-Net on other data. Give TwinRunConfig(source={base_source!r}, data_dir=..., "
            "records_per_subject=None) (its subjects' own records), or train the twin in the run itself: "
            "train_twin_unet(run_dir, run_dir/unet/model.pt, out_name='unet_twin')"
        )
    twin_dir = Path(twin_dir) if twin_dir is not None else run_dir / TWIN_DIR
    twin_dir.mkdir(parents=True, exist_ok=True)
    _, _, identity = load_run_embeddings(run_dir)
    seed = base_seed + TWIN_SEED_OFFSET if config.seed is None else config.seed
    data_dir, cohort = source_data_dir(
        config.source,
        config.data_dir,
        twin_dir,
        n=config.n,
        seed=seed,
        workers=config.workers,
        records_per_subject=config.records_per_subject,
    )
    prepared = prepare_dataset(
        config.source,
        data_dir,
        twin_dir,
        PrepareConfig(n=config.n, seed=seed),
        workers=config.workers,
        progress=progress,
    )
    _copy_vae(run_dir, twin_dir)
    latents = encode_latents(twin_dir)
    embedder = embedder_from_identity(identity)
    embedded = embed_run(
        twin_dir,
        EmbedConfig(prompt_mode=identity.get("prompt_mode", "paper")),
        embedder=embedder,
        cache_dir=default_cache_dir(run_dir),
        progress=progress,
    )
    atomic_write_text(twin_dir / "BASE_RUN", str(run_dir.resolve()) + "\n")
    return {
        "twin_dir": str(twin_dir),
        "cohort": None if cohort is None else cohort.message,
        "prepared": str(prepared),
        "latents": latents,
        "embedded": {k: v for k, v in embedded.items() if k != "identity"},
    }


def twin_overview(twin_dir: str | os.PathLike) -> pd.DataFrame:
    """Per split of a prepared twin run: ``records``, ``subjects``, records per subject (``mean``, ``min``,
    ``max``), ``subjects_with_pairs`` (two records or more) and ``adjacent_pairs`` (the requests
    :func:`~diffusets_core.apps.twin_eval.twin_requests` can make)."""
    records = SignalStore(twin_dir).records()
    pairs = run_pairs(twin_dir, consecutive=True)
    rows = []
    for split in ("train", "val", "test"):
        r = records[records["split"] == split]
        per = r.groupby("subject_id").size()
        rows.append(
            {
                "split": split,
                "records": len(r),
                "subjects": len(per),
                "records_per_subject_mean": round(float(per.mean()), 2) if len(per) else float("nan"),
                "min": int(per.min()) if len(per) else 0,
                "max": int(per.max()) if len(per) else 0,
                "subjects_with_pairs": int((per >= 2).sum()),
                "adjacent_pairs": int((pairs["split"] == split).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("split")

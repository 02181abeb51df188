"""The sets of ECGs the benchmark compares (the ``source`` column of every table), generated or gathered for the
evaluated test conditions (row i of each set for condition i):

* ``real`` — the real test ECGs; ``vae`` — the same through the run's autoencoder (posterior mean, decode);
* ``model`` — the run's pipeline; ``reworded`` — the same with every statement in a held-out wording of the
  cohort's wording bank; ``paraphrased`` — with the paraphrases of ``paraphrases.yaml`` (:mod:`.requests`);
* ``nn`` — nearest-neighbour retrieval of a TRAINING ECG (:func:`.baselines.nearest_neighbour`);
* ``deepfake`` — deepfake-ecg, an external unconditional generator (:func:`.baselines.deepfake_generate`);
* ``ddpm`` — the paper's DDPM sampler on the first ``n_ddpm`` conditions;
* ``noc`` — the text-only ablation U-Net (``run/unet_noc``), same reports, sampler and seeds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..diffusion.pipeline import DiffuSETSPipeline
from ..layout import NOC_DIR
from . import baselines as bl
from .conditions import EvaluatedConditions
from .config import EvalConfig
from .reconstruction import reconstruct
from .requests import paraphrased_records, reworded_records
from .splits import EvalSplits
from .timing import StageTimer

__all__ = ["SetGenerator", "paraphrase_conditions", "nearest_neighbour_set", "text_only_set", "generate_sets"]


class SetGenerator:
    """ECGs from a pipeline for a frame of conditions, with the evaluation's guidance, batch size and progress
    settings: ``generator(frame, sampler, steps, first_seed)`` -> (len(frame), 12, L) float32 mV, ECG i of the
    frame's row i (columns report, age, sex, hr) with seed ``first_seed + i``."""

    def __init__(
        self,
        pipe: DiffuSETSPipeline,
        *,
        guidance_scale: float | None = None,
        guidance_on: str | None = None,
        batch_size: int = 64,
        progress: bool = False,
    ):
        self.pipe = pipe
        self.guidance_scale, self.guidance_on = guidance_scale, guidance_on
        self.batch_size, self.progress = batch_size, progress

    def __call__(self, frame: pd.DataFrame, sampler: str, num_steps: int, first_seed: int) -> np.ndarray:
        return self.pipe(
            frame["report"].tolist(),
            age=frame["age"].to_numpy(float),
            sex=frame["sex"].tolist(),
            hr=frame["hr"].to_numpy(float),
            num_inference_steps=num_steps,
            sampler=sampler,
            seed=first_seed,
            guidance_scale=self.guidance_scale,
            guidance_on=self.guidance_on,
            batch_size=self.batch_size,
            progress=self.progress,
        ).signals


def paraphrase_conditions(records: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``records`` with every report statement reworded by the remaining paraphrases of ``paraphrases.yaml``
    (:func:`.requests.paraphrased_records`)."""
    return paraphrased_records(records, seed)


def nearest_neighbour_set(conditions: EvaluatedConditions, data: EvalSplits) -> tuple[np.ndarray, np.ndarray]:
    """For each condition the training ECG whose report vector is closest (ties: closest HR): returns its signals
    (M, 12, L) and record ids (M,)."""
    idx = bl.nearest_neighbour(
        conditions.vectors, conditions.requested_hr, data.vectors["train"], data.records["train"]["hr"].to_numpy(float)
    )
    return data.signals["train"][idx], data.records["train"]["record_id"].to_numpy()[idx]


def text_only_set(
    run_dir: str | os.PathLike,
    records: pd.DataFrame,
    *,
    sampler: str,
    steps: int,
    seed: int,
    guidance_scale: float | None,
    batch_size: int,
    progress: bool,
    embedder_kwargs: dict | None = None,
) -> np.ndarray:
    """The paper's ablation: ECGs of the text-only U-Net (``run_dir/unet_noc``, no sex / age / HR) for the
    same reports and seeds (guidance, if any, on everything it has: the report)."""
    noc = DiffuSETSPipeline.from_pretrained(run_dir, device="cpu", unet_dir=NOC_DIR, **(embedder_kwargs or {}))
    return SetGenerator(
        noc, guidance_scale=guidance_scale, guidance_on="all", batch_size=batch_size, progress=progress
    )(records, sampler, steps, seed)


def _reworded_or_none(records: pd.DataFrame, seed: int) -> pd.DataFrame | None:
    try:
        return reworded_records(records, seed)
    except ValueError:
        return None


def generate_sets(
    generate: SetGenerator,
    conditions: EvaluatedConditions,
    data: EvalSplits,
    timer: StageTimer,
    config: EvalConfig,
    *,
    run_dir: str | os.PathLike,
    embedder_kwargs: dict | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Every set the evaluation compares, in table order (real, vae, model, reworded, paraphrased, nn, deepfake,
    ddpm, noc), each timed by ``timer``; which ones, and how they are sampled, come from ``config``
    (``vae_ceiling``, ``paraphrase``, ``baselines``, ``sampler``, ``steps``, ``seed``, ``n_ddpm``,
    ``ddpm_steps``). The model and its variants sample with ``sampler`` / ``steps`` from seed ``seed``
    (condition i: ``seed + i``). Adds the columns ``paraphrased_report`` and ``nn_record_id`` to
    ``conditions.table`` when those sets are made (and ``reworded_report``; the share of statements reworded per
    kind goes to ``conditions.reworded_shares``). ``run_dir`` holds the text-only U-Net of the ``noc`` baseline,
    loaded with ``embedder_kwargs``. Returns ``(sets, n_ddpm_used)``, the ``ddpm`` set covering the first
    ``n_ddpm_used`` conditions (0: not made)."""
    baselines, sampler, steps, seed = config.baselines, config.sampler, config.steps, config.seed
    test, table = conditions.records, conditions.table
    sets: dict[str, np.ndarray] = {"real": conditions.signals}
    if config.vae_ceiling:
        sets["vae"] = reconstruct(generate.pipe.vae, conditions.signals, batch=generate.batch_size)
        timer.lap("vae_reconstruct", len(test))
    sets["model"] = generate(test, sampler, steps, seed)
    timer.lap("generate_model", len(test))
    if config.paraphrase:
        shares = {}
        reworded = _reworded_or_none(test, seed)
        if reworded is not None:  # a real dataset's statements are not in the wording bank: no held-out wordings
            table["reworded_report"] = reworded["report"].to_numpy()
            shares["reworded"] = float(reworded["reworded_share"].mean())
            sets["reworded"] = generate(reworded, sampler, steps, seed)
            timer.lap("generate_reworded", len(test))
        para = paraphrase_conditions(test, seed)
        table["paraphrased_report"] = para["report"].to_numpy()
        shares["paraphrased"] = float(para["reworded_share"].mean())
        sets["paraphrased"] = generate(para, sampler, steps, seed)
        timer.lap("generate_paraphrased", len(test))
        conditions.reworded_shares = shares
    if "nn" in baselines:
        sets["nn"], table["nn_record_id"] = nearest_neighbour_set(conditions, data)
        timer.lap("nn", len(test))
    if "deepfake" in baselines:
        sets["deepfake"] = bl.deepfake_generate(len(test), seed=seed)
        timer.lap("deepfake", len(test))
    n_ddpm_used = min(int(config.n_ddpm), len(test)) if "ddpm" in baselines else 0
    if n_ddpm_used > 0:
        sets["ddpm"] = generate(test.iloc[:n_ddpm_used], "ddpm", config.ddpm_steps, seed)
        timer.lap("generate_ddpm", n_ddpm_used)
    if "noc" in baselines:  # the paper's ablation: same reports and seeds, no sex/age/HR
        sets["noc"] = text_only_set(
            Path(run_dir),
            test,
            sampler=sampler,
            steps=steps,
            seed=seed,
            guidance_scale=generate.guidance_scale,
            batch_size=generate.batch_size,
            progress=generate.progress,
            embedder_kwargs=embedder_kwargs,
        )
        timer.lap("generate_noc", len(test))
    return sets, n_ddpm_used

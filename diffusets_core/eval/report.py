"""The benchmark suite: one call, :func:`evaluate_run`, evaluates a trained run at the signal, feature and
diagnostic level against baselines, and writes CSV + JSON tables and PNG figures to ``run/eval/``.

Sets compared (``source`` column of every table):

* ``model`` — the run's pipeline (``sampler``, ``steps``) for the conditions (report, age, sex, HR) of the
  evaluated TEST records (ECG ``i`` uses seed ``seed + i``);
* ``real`` — the real test ECGs themselves (the floor: what a perfect generator would score);
* ``nn`` — nearest-neighbour retrieval from the TRAINING split (:func:`~.baselines.nearest_neighbour`);
* ``deepfake`` — deepfake-ecg, an external unconditional generator (:func:`~.baselines.deepfake_generate`);
* ``noc`` — the paper's text-only ablation: a U-Net trained without sex, age and HR (``cond_dim: 0``, in
  ``run/unet_noc/``), same reports, sampler and seeds;
* ``ddpm`` / ``model_subset`` — the paper's 1000-step DDPM against the fast sampler on the first ``n_ddpm``
  conditions (same conditions, same seeds).

Metrics:

* signal level, on the 64-d ECG features of an ECG-text CLIP trained on the TRAINING split only (best on
  validation): FID / rFID, precision / recall (k=3), density / coverage (k=5) and the CLIP score. Every set is
  compared with the real TEST features at the same ``n``; the real-vs-real floor compares the real
  VALIDATION split with the same test features (``floor_*`` columns; the ``real`` row is that floor, with the
  CLIP score of the real test ECGs and their own reports). Retrieval accuracy of the CLIP on test.
* feature level (:func:`~.features.measure_features`): HR error against the requested HR (all records and
  requested HR in 50-150 bpm), QRS / PR / QTc errors against the measurements of the reference test record,
  overall and per condition class;
* diagnostic level: a multi-label classifier (classes = report statements, :data:`EVAL_CLASSES`) trained on
  the real TRAINING split, thresholds chosen on validation, reads every set; recall of each requested class,
  macro recall, a confusion matrix (single-class conditions); TSTR vs TRTR macro AUROC (generated vs real ECGs
  for the same ``n_tstr`` training conditions, tested on real test).

Deterministic for a given ``seed`` (seeded subsets, seeded training, per-ECG sampling seeds).

Where each part lives: the settings in :mod:`.config` (:class:`~.config.EvalConfig`), the class taxonomy in
:mod:`.taxonomy`, the data in :mod:`.splits`, the evaluated
conditions in :mod:`.conditions`, the sets in :mod:`.sets`, the judges in :mod:`.fit_judges`, the three levels in
:mod:`.signal_level`, :mod:`.feature_level` and :mod:`.diagnostic_level`, the targets in :mod:`.targets`, the
files in :mod:`.output` and :mod:`.figures`, the chapter's sentences and views in :mod:`.summaries` and
:mod:`.views`, the ``diffusets evaluate`` command in :mod:`.commands`. This module holds :func:`evaluate_run`,
which runs them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..diffusion.pipeline import DiffuSETSPipeline
from ..layout import EVAL_DIR, NOC_DIR
from .classifiers import predict_proba
from .conditions import EvaluatedConditions, select_conditions
from .config import BASELINES, DEFAULT_BASELINES, EvalConfig
from .diagnostic_level import TSTR_COLUMNS, diagnostic_tables, tstr_table
from .feature_level import feature_tables, rhythm_table
from .figures import write_figures
from .fit_judges import fit_classifier, fit_clip
from .output import write_json, write_table
from .reconstruction import reconstruct
from .request_level import combination_table, request_reads, request_tables
from .requests import combination_set
from .sets import SetGenerator, generate_sets
from .signal_level import clip_reference, physical_table, retrieval_table, signal_table
from .splits import EvalSplits, load_eval_splits
from .targets import targets_table
from .timing import StageTimer

__all__ = ["benchmark_baselines", "check_baselines", "evaluate_run"]


def benchmark_baselines(noc: bool = False) -> tuple[str, ...]:
    """The baselines of the benchmark chapter: :data:`~.config.DEFAULT_BASELINES`, plus the text-only ablation
    ``noc`` when asked for (it needs the U-Net trained by ``diffusets train-unet RUN_DIR --text-only``)."""
    return DEFAULT_BASELINES + (("noc",) if noc else ())


def check_baselines(run_dir: Path, baselines: Sequence[str]) -> None:
    """Raise ValueError for a baseline not in :data:`~.config.BASELINES`, FileNotFoundError when ``noc`` is asked
    for and the run has no text-only U-Net."""
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from {', '.join(BASELINES)}")
    if "noc" in baselines and not (run_dir / NOC_DIR / "model.pt").is_file():
        raise FileNotFoundError(
            f"baseline 'noc' needs the text-only U-Net {run_dir / NOC_DIR / 'model.pt'}; train it "
            f"with `diffusets train-unet {run_dir} --text-only`"
        )


@dataclass
class _Benchmark:
    """What every step of :func:`evaluate_run` reads: the run, where it writes, the settings, the stage timer, the
    run's data and the evaluated conditions."""

    run_dir: Path
    out: Path
    config: EvalConfig
    timer: StageTimer
    data: EvalSplits
    cond: EvaluatedConditions


@dataclass
class _Judge:
    """The multi-label classifier trained on the real training split: model, thresholds (n_classes,) and the
    classes it could learn (n_classes,) bool."""

    model: object
    thresholds: np.ndarray
    valid: np.ndarray


def evaluate_run(
    run_dir,
    config: EvalConfig | None = None,
    *,
    out_dir=None,
    embedder_kwargs: dict | None = None,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Benchmark a trained run with the settings of ``config`` (default :class:`~.config.EvalConfig`); returns
    the tables (also written as CSV + JSON, with PNG figures and ``benchmark.json``, to ``out_dir``, default
    ``run_dir/eval``).

    What the settings mean is documented on :class:`~.config.EvalConfig`: the sizes, the judges' training steps
    and batch, the sampler, the baselines, the guidance (None = the run's validated setting, chosen on validation
    by :func:`~.guidance.guidance_sweep`), ``vae_ceiling`` (the source ``vae``: the real test ECGs through the
    run's VAE, posterior mean then decode, what any generator on this autoencoder can reach at best) and
    ``paraphrase`` (the four kinds of request of :mod:`.requests` side by side: the sources ``reworded``,
    held-out wordings of the bank, and ``paraphrased``, ``paraphrases.yaml``, for the same conditions and seeds,
    and ``per_combination`` requests for each held-out combination of findings with their reference ECGs; tables
    ``requests``, ``requests_summary`` and ``combinations``). ``embedder_kwargs`` go to
    ``DiffuSETSPipeline.from_pretrained`` (e.g. ``{"dim": 32}`` for the hash embedder of the tests);
    ``progress`` shows the samplers' progress bars.

    Tables: ``conditions``, ``signal``, ``retrieval``, ``features``, ``hr_pairs``, ``diagnostic`` (per-class
    recall with a 95 % Wilson interval), ``diagnostic_summary`` (macro recall, all classes and morphology
    classes), ``confusion``, ``physical`` (frontal-lead identity error, share beyond ±10 mV), ``rhythm`` (RR
    variability of sinus and AF requests), ``tstr``, ``requests``, ``requests_summary``, ``combinations``,
    ``targets`` (with the ``vae`` ceiling), ``timings``.

    Raises ValueError for an unknown baseline, FileNotFoundError for ``noc`` without a text-only U-Net
    (:func:`check_baselines`), both before any work.
    """
    config = EvalConfig() if config is None else config
    bench = _start(Path(run_dir), config, out_dir)
    generate = _set_generator(bench, embedder_kwargs, progress)
    sets, n_subset = generate_sets(
        generate, bench.cond, bench.data, bench.timer, config, run_dir=bench.run_dir, embedder_kwargs=embedder_kwargs
    )
    signal = _signal_tables(bench, sets, n_subset)
    meas, features, hr_pairs = feature_tables(
        sets, bench.cond, fs=generate.pipe.fs, workers=config.workers, n_subset=n_subset
    )
    bench.timer.lap("features", sum(len(x) for x in sets.values()))
    judge, diagnostic = _diagnostic_tables(bench, sets, n_subset)
    requests = _request_tables(bench, generate, sets, features, judge)
    tstr = _tstr_table(bench, generate, judge)
    tables = {
        "conditions": bench.cond.table,
        **signal,
        "features": features,
        "hr_pairs": hr_pairs,
        **diagnostic,
        "physical": physical_table(sets, bench.cond, generate.pipe.fs),
        "rhythm": rhythm_table(meas, bench.cond),
        "tstr": tstr,
        **requests,
    }
    tables["targets"] = targets_table(tables)
    tables["timings"] = bench.timer.table()
    _write_outputs(bench, tables, generate.pipe)
    return tables


def _start(run_dir: Path, config: EvalConfig, out_dir) -> _Benchmark:
    """Check the baselines, make the output folder, load the run's splits and select the evaluated test
    conditions (stage ``load``)."""
    check_baselines(run_dir, config.baselines)
    out = Path(out_dir) if out_dir is not None else run_dir / EVAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    timer = StageTimer("evaluate_run")
    data = load_eval_splits(run_dir, min_records=2)
    cond = select_conditions(
        data, n_eval=config.n_eval, n_per_class=config.n_per_class, min_per_class=config.min_per_class, seed=config.seed
    )
    timer.lap("load", len(data.store.records()))
    return _Benchmark(run_dir, out, config, timer, data, cond)


def _set_generator(bench: _Benchmark, embedder_kwargs: dict | None, progress: bool) -> SetGenerator:
    """The run's pipeline (loaded after seeding torch with ``config.seed``) with the benchmark's guidance, batch
    size and progress settings."""
    c = bench.config
    torch.manual_seed(c.seed)
    pipe = DiffuSETSPipeline.from_pretrained(bench.run_dir, device="cpu", **(embedder_kwargs or {}))
    return SetGenerator(
        pipe, guidance_scale=c.guidance_scale, guidance_on=c.guidance_on, batch_size=c.batch_size, progress=progress
    )


def _signal_tables(bench: _Benchmark, sets: dict[str, np.ndarray], n_subset: int) -> dict[str, pd.DataFrame]:
    """The CLIP trained on the training split, its retrieval accuracy on test and the set metrics on its features
    (tables ``signal`` and ``retrieval``; stages ``clip`` and ``signal_metrics``)."""
    c, data = bench.config, bench.data
    featurizer = fit_clip(
        bench.run_dir, bench.out, data.signals, data.vectors, seed=c.seed, steps=c.clip_steps, train_batch=c.train_batch
    )
    clip = clip_reference(featurizer, data, bench.cond)
    retrieval = retrieval_table(clip, data)
    bench.timer.lap("clip", len(data.signals["train"]))
    signal = signal_table(clip, sets, seed=c.seed, n_boot=c.n_boot, n_subset=n_subset)
    bench.timer.lap("signal_metrics")
    return {"signal": signal, "retrieval": retrieval}


def _diagnostic_tables(
    bench: _Benchmark, sets: dict[str, np.ndarray], n_subset: int
) -> tuple[_Judge, dict[str, pd.DataFrame]]:
    """The classifier trained on the real training split and its reading of every set (tables ``diagnostic``,
    ``diagnostic_summary``, ``confusion``; stage ``classifier``)."""
    c, data = bench.config, bench.data
    judge = _Judge(
        *fit_classifier(
            bench.run_dir,
            bench.out,
            data.signals,
            data.labels,
            data.classes,
            seed=c.seed,
            steps=c.clf_steps,
            train_batch=c.train_batch,
        )
    )
    diagnostic, summary, confusion = diagnostic_tables(
        sets, bench.cond, judge.model, judge.thresholds, judge.valid, n_subset=n_subset
    )
    bench.timer.lap("classifier", len(data.signals["train"]))
    return judge, {"diagnostic": diagnostic, "diagnostic_summary": summary, "confusion": confusion}


def _tstr_table(bench: _Benchmark, generate: SetGenerator, judge: _Judge) -> pd.DataFrame:
    """TSTR vs TRTR on ``config.n_tstr`` training conditions (stage ``tstr``); an empty table when it is 0."""
    c = bench.config
    if c.n_tstr is not None and c.n_tstr <= 0:
        return pd.DataFrame([], columns=TSTR_COLUMNS)
    tstr, n_train = tstr_table(
        generate,
        bench.data,
        judge.valid,
        n_tstr=c.n_tstr,
        seed=c.seed,
        sampler=c.sampler,
        steps=c.steps,
        clf_steps=c.clf_steps,
        train_batch=c.train_batch,
        out=bench.out,
    )
    bench.timer.lap("tstr", n_train)
    return tstr


def _write_outputs(bench: _Benchmark, tables: dict[str, pd.DataFrame], pipe: DiffuSETSPipeline) -> None:
    """Every table as CSV + JSON, then the figures and ``benchmark.json`` (the settings, the guidance the
    pipeline applied, the conditions and classes, the figure files and the pipeline's identity)."""
    for name, df in tables.items():
        write_table(bench.out, name, df)
    c = bench.config
    params = {
        "run_dir": str(bench.run_dir),
        "n_eval": c.n_eval,
        "n_per_class": c.n_per_class,
        "min_per_class": c.min_per_class,
        "seed": c.seed,
        "clip_steps": c.clip_steps,
        "clf_steps": c.clf_steps,
        "sampler": c.sampler,
        "steps": c.steps,
        "guidance_scale": pipe.sampling["guidance_scale"] if c.guidance_scale is None else c.guidance_scale,
        "guidance_on": pipe.sampling["guidance_on"] if c.guidance_on is None else c.guidance_on,
        "baselines": list(c.baselines),
        "n_ddpm": c.n_ddpm,
        "ddpm_steps": c.ddpm_steps,
        "n_tstr": c.n_tstr,
        "n_boot": c.n_boot,
        "train_batch": c.train_batch,
        "n_conditions": len(bench.cond.records),
        "classes": bench.data.classes,
        "figures": write_figures(bench.out, tables),
        "pipeline": pipe.identity,
    }
    write_json(bench.out / "benchmark.json", params)


def _request_tables(
    bench: _Benchmark, generate: SetGenerator, sets: dict[str, np.ndarray], features: pd.DataFrame, judge: _Judge
) -> dict[str, pd.DataFrame]:
    """With ``config.paraphrase``: the held-out combinations generated and every kind of request read by the
    classifier (tables ``requests``, ``requests_summary``, ``combinations``; stages ``combination_references``,
    ``generate_combinations``, ``requests``). Without it, the three tables are empty."""
    from .features import measure_features

    c, data, cond, timer = bench.config, bench.data, bench.cond, bench.timer
    if not c.paraphrase:
        return {"requests": pd.DataFrame(), "requests_summary": pd.DataFrame(), "combinations": pd.DataFrame()}
    combos = combination_set(
        c.per_combination, c.seed, preprocess=data.store.info.get("preprocess"), workers=c.workers,
        cache_dir=bench.out / "combinations",
    )  # fmt: skip
    timer.lap("combination_references", len(combos.conditions))
    x_c = generate(combos.conditions, c.sampler, c.steps, c.seed + 2 * 10**6)
    timer.lap("generate_combinations", len(x_c))
    vae_c = reconstruct(generate.pipe.vae, combos.signals, batch=generate.batch_size) if c.vae_ceiling else None
    hr_c = measure_features(x_c, fs=generate.pipe.fs, workers=c.workers)["hr_nk"].to_numpy(float)
    reads = request_reads(
        sets, cond, features, lambda x: predict_proba(judge.model, x), combinations=combos, combination_x=x_c,
        combination_vae=vae_c, combination_hr=hr_c, shares=cond.reworded_shares,
    )  # fmt: skip
    requests, summary = request_tables(reads, judge.thresholds, judge.valid, data.classes)
    combinations = combination_table(combos, reads["combinations"], judge.thresholds, judge.valid, data.classes)
    timer.lap("requests", sum(len(r.proba) for r in reads.values()))
    return {"requests": requests, "requests_summary": summary, "combinations": combinations}

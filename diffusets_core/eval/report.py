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

Where each part lives: the class taxonomy in :mod:`.taxonomy`, the data in :mod:`.splits`, the evaluated
conditions in :mod:`.conditions`, the sets in :mod:`.sets`, the judges in :mod:`.fit_judges`, the three levels in
:mod:`.signal_level`, :mod:`.feature_level` and :mod:`.diagnostic_level`, the targets in :mod:`.targets`, the
files in :mod:`.output` and :mod:`.figures`, the chapter's sentences and views in :mod:`.summaries` and
:mod:`.views`, the ``diffusets evaluate`` command in :mod:`.commands`. This module holds :func:`evaluate_run`,
which runs them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from ..diffusion.pipeline import DiffuSETSPipeline
from ..layout import EVAL_DIR, NOC_DIR
from .classifiers import predict_proba
from .conditions import select_conditions
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
from .splits import load_eval_splits
from .targets import targets_table
from .timing import StageTimer

#: Every baseline :func:`evaluate_run` knows; :data:`DEFAULT_BASELINES` is what it runs unless told otherwise.
BASELINES = ("nn", "deepfake", "ddpm", "noc")
DEFAULT_BASELINES = ("nn", "deepfake", "ddpm")

__all__ = ["BASELINES", "DEFAULT_BASELINES", "benchmark_baselines", "check_baselines", "evaluate_run"]


def benchmark_baselines(noc: bool = False) -> tuple[str, ...]:
    """The baselines of the benchmark chapter: :data:`DEFAULT_BASELINES`, plus the text-only ablation ``noc``
    when asked for (it needs the U-Net trained by ``diffusets train-unet RUN_DIR --text-only``)."""
    return DEFAULT_BASELINES + (("noc",) if noc else ())


def check_baselines(run_dir: Path, baselines: Sequence[str]) -> None:
    """Raise ValueError for a baseline not in :data:`BASELINES`, FileNotFoundError when ``noc`` is asked for and
    the run has no text-only U-Net."""
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from {', '.join(BASELINES)}")
    if "noc" in baselines and not (run_dir / NOC_DIR / "model.pt").is_file():
        raise FileNotFoundError(
            f"baseline 'noc' needs the text-only U-Net {run_dir / NOC_DIR / 'model.pt'}; train it "
            f"with `diffusets train-unet {run_dir} --text-only`"
        )


def evaluate_run(
    run_dir,
    *,
    n_eval: int | None = None,
    n_per_class: int | None = None,
    min_per_class: int = 0,
    seed: int = 0,
    clip_steps: int = 300,
    clf_steps: int = 300,
    sampler: str = "ddim",
    steps: int = 50,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    n_ddpm: int = 8,
    ddpm_steps: int = 1000,
    n_tstr: int | None = 0,
    n_boot: int = 100,
    batch_size: int = 64,
    train_batch: int = 64,
    workers: int = 0,
    guidance_scale: float | None = None,
    guidance_on: str | None = None,
    vae_ceiling: bool = True,
    paraphrase: bool = False,
    per_combination: int = 8,
    out_dir=None,
    embedder_kwargs: dict | None = None,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Benchmark a trained run; returns the tables (also written as CSV + JSON, with PNG figures, to
    ``out_dir``, default ``run_dir/eval``).

    Sizes: ``n_eval`` test conditions (None: all test records), optionally stratified with up to
    ``n_per_class`` records per class, then topped up with repeats of a class's own conditions (new seeds) until
    every class has ``min_per_class`` conditions (real and ``vae`` rows count each real ECG once); ``clip_steps`` / ``clf_steps`` training steps of the CLIP and the
    classifier; ``n_ddpm`` conditions generated with ``ddpm_steps`` DDPM steps (``"ddpm"`` in ``baselines``);
    ``n_tstr`` training conditions generated for TSTR vs TRTR (0 skips it, None = all training records).
    ``train_batch`` is the batch size of the CLIP / classifier training, ``n_boot`` the bootstrap replicates of
    the confidence intervals. ``workers`` > 1 measures features in a process pool. ``guidance_scale`` is the
    classifier-free guidance of every generated set (model, ddpm, noc, TSTR; 1.0 = plain conditional sampling;
    None = the run's validated setting, chosen on validation by :func:`~.guidance.guidance_sweep`), and
    ``guidance_on`` what it guides (``all`` / ``text``, None = the run's). ``vae_ceiling`` adds the source
    ``vae``: the real test ECGs through the run's VAE (posterior mean, then decode), what any generator on this
    autoencoder can reach at best. ``paraphrase`` adds the four kinds of request of :mod:`.requests` side by side:
    the sources ``reworded`` (held-out wordings of the bank) and ``paraphrased`` (``paraphrases.yaml``) for the
    same conditions and seeds, and ``per_combination`` requests for each held-out combination of findings with
    their reference ECGs; tables ``requests`` (per kind and class, with the judge's recall on the references and
    their reconstructions), ``requests_summary`` and ``combinations``. ``embedder_kwargs`` go to
    ``DiffuSETSPipeline.from_pretrained`` (e.g. ``{"dim": 32}`` for the hash embedder of the tests).

    Tables: ``conditions``, ``signal``, ``retrieval``, ``features``, ``hr_pairs``, ``diagnostic`` (per-class
    recall with a 95 % Wilson interval), ``diagnostic_summary`` (macro recall, all classes and morphology
    classes), ``confusion``, ``physical`` (frontal-lead identity error, share beyond ±10 mV), ``rhythm`` (RR
    variability of sinus and AF requests), ``tstr``, ``targets`` (with the ``vae`` ceiling), ``timings``.
    """
    run_dir = Path(run_dir)
    check_baselines(run_dir, baselines)
    out = Path(out_dir) if out_dir is not None else run_dir / EVAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    timer = StageTimer("evaluate_run")

    data = load_eval_splits(run_dir, min_records=2)
    cond = select_conditions(data, n_eval=n_eval, n_per_class=n_per_class, min_per_class=min_per_class, seed=seed)
    timer.lap("load", len(data.store.records()))

    torch.manual_seed(seed)
    pipe = DiffuSETSPipeline.from_pretrained(run_dir, device="cpu", **(embedder_kwargs or {}))
    generate = SetGenerator(
        pipe, guidance_scale=guidance_scale, guidance_on=guidance_on, batch_size=batch_size, progress=progress
    )
    sets, n_ddpm_used = generate_sets(
        generate,
        cond,
        data,
        timer,
        run_dir=run_dir,
        baselines=baselines,
        vae_ceiling=vae_ceiling,
        paraphrase=paraphrase,
        sampler=sampler,
        steps=steps,
        seed=seed,
        n_ddpm=n_ddpm,
        ddpm_steps=ddpm_steps,
        embedder_kwargs=embedder_kwargs,
    )

    clip = clip_reference(
        fit_clip(run_dir, out, data.signals, data.vectors, seed=seed, steps=clip_steps, train_batch=train_batch),
        data,
        cond,
    )
    retrieval = retrieval_table(clip, data)
    timer.lap("clip", len(data.signals["train"]))
    signal = signal_table(clip, sets, seed=seed, n_boot=n_boot, n_subset=n_ddpm_used)
    timer.lap("signal_metrics")

    meas, features, hr_pairs = feature_tables(sets, cond, fs=pipe.fs, workers=workers, n_subset=n_ddpm_used)
    timer.lap("features", sum(len(x) for x in sets.values()))

    model, th, valid = fit_classifier(
        run_dir, out, data.signals, data.labels, data.classes, seed=seed, steps=clf_steps, train_batch=train_batch
    )
    diagnostic, diagnostic_summary, confusion = diagnostic_tables(sets, cond, model, th, valid, n_subset=n_ddpm_used)
    timer.lap("classifier", len(data.signals["train"]))
    requests = requests_summary = combinations = pd.DataFrame()
    if paraphrase:
        requests, requests_summary, combinations = _request_tables(
            generate, sets, cond, features, model, th, valid, data, timer,
            out=out, per_combination=per_combination, seed=seed, sampler=sampler, steps=steps,
            vae_ceiling=vae_ceiling, fs=pipe.fs, workers=workers,
        )  # fmt: skip
    tstr = pd.DataFrame([], columns=TSTR_COLUMNS)
    if n_tstr is None or n_tstr > 0:
        tstr, n_train = tstr_table(
            generate,
            data,
            valid,
            n_tstr=n_tstr,
            seed=seed,
            sampler=sampler,
            steps=steps,
            clf_steps=clf_steps,
            train_batch=train_batch,
            out=out,
        )
        timer.lap("tstr", n_train)

    tables = {
        "conditions": cond.table,
        "signal": signal,
        "retrieval": retrieval,
        "features": features,
        "hr_pairs": hr_pairs,
        "diagnostic": diagnostic,
        "diagnostic_summary": diagnostic_summary,
        "confusion": confusion,
        "physical": physical_table(sets, cond, pipe.fs),
        "rhythm": rhythm_table(meas, cond),
        "tstr": tstr,
        "requests": requests,
        "requests_summary": requests_summary,
        "combinations": combinations,
    }
    tables["targets"] = targets_table(tables)
    tables["timings"] = timer.table()
    for name, df in tables.items():
        write_table(out, name, df)
    params = {
        "run_dir": str(run_dir),
        "n_eval": n_eval,
        "n_per_class": n_per_class,
        "min_per_class": min_per_class,
        "seed": seed,
        "clip_steps": clip_steps,
        "clf_steps": clf_steps,
        "sampler": sampler,
        "steps": steps,
        "guidance_scale": pipe.sampling["guidance_scale"] if guidance_scale is None else guidance_scale,
        "guidance_on": pipe.sampling["guidance_on"] if guidance_on is None else guidance_on,
        "baselines": list(baselines),
        "n_ddpm": n_ddpm,
        "ddpm_steps": ddpm_steps,
        "n_tstr": n_tstr,
        "n_boot": n_boot,
        "train_batch": train_batch,
        "n_conditions": len(cond.records),
        "classes": data.classes,
        "figures": write_figures(out, tables),
        "pipeline": pipe.identity,
    }
    write_json(out / "benchmark.json", params)
    return tables


def _request_tables(generate, sets, cond, features, model, th, valid, data, timer, *, out, per_combination, seed,
                    sampler, steps, vae_ceiling, fs, workers):  # fmt: skip
    """The held-out combinations generated and every kind of request read by the classifier (tables
    ``requests``, ``requests_summary``, ``combinations``)."""
    from .features import measure_features

    combos = combination_set(
        per_combination, seed, preprocess=data.store.info.get("preprocess"), workers=workers,
        cache_dir=out / "combinations",
    )  # fmt: skip
    timer.lap("combination_references", len(combos.conditions))
    x_c = generate(combos.conditions, sampler, steps, seed + 2 * 10**6)
    timer.lap("generate_combinations", len(x_c))
    vae_c = reconstruct(generate.pipe.vae, combos.signals, batch=generate.batch_size) if vae_ceiling else None
    hr_c = measure_features(x_c, fs=fs, workers=workers)["hr_nk"].to_numpy(float)
    reads = request_reads(
        sets, cond, features, lambda x: predict_proba(model, x), combinations=combos, combination_x=x_c,
        combination_vae=vae_c, combination_hr=hr_c, shares=cond.reworded_shares,
    )  # fmt: skip
    requests, summary = request_tables(reads, th, valid, data.classes)
    combinations = combination_table(combos, reads["combinations"], th, valid, data.classes)
    timer.lap("requests", sum(len(r.proba) for r in reads.values()))
    return requests, summary, combinations

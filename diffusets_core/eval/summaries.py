"""The findings of the chapters as sentences, every number read from the tables (no number typed by hand).

* chapter 6 (benchmark): :func:`summarize_benchmark` (targets met / missed, baselines; every threshold read from
  the targets table, :mod:`.targets`), :func:`summarize_evaluation` (what was evaluated),
  :func:`summarize_noc_training`, :func:`profile_caveat` and :func:`build_gaps` (text true only of some builds),
  and :func:`show_markdown`, which displays such text only when there is some;
* chapter 3 (autoencoder): :func:`summarize_vae`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from ..models.vae import PAPER_SCALE_FACTOR
from .reconstruction import AMPLITUDE_LIMIT_MV
from .targets import REQUEST_TARGETS, TARGETS
from .taxonomy import KEY_CLASSES

__all__ = [
    "format_number",
    "summarize_benchmark",
    "summarize_evaluation",
    "summarize_noc_training",
    "profile_caveat",
    "build_gaps",
    "show_markdown",
    "summarize_vae",
]

#: Profiles whose models are toys trained for seconds (their numbers only show that every path runs).
TOY_PROFILES = ("smoke",)


def format_number(x: Any, p: int = 2, spec: str | None = None) -> str:
    """``x`` with ``p`` decimals (or formatted with the format ``spec``, e.g. ``"+.1f"`` or ``".0%"``, when given);
    ``n/a`` when it is missing, not a number or not finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if not np.isfinite(x):
        return "n/a"
    return format(x, spec) if spec is not None else f"{x:.{p}f}"


_fmt = format_number

#: How a target's direction reads in a sentence.
_SYMBOLS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}


def _plain(x: float, p: int) -> str:
    """``x`` with ``p`` decimals, or with as many as it needs when ``p`` would round it (``n/a`` when missing)."""
    s = format_number(x, p)
    return f"{float(x):g}" if s != "n/a" and float(s) != float(x) else s


def _needed(targets: pd.DataFrame, key: str, p: int, unit: str = "") -> str:
    """``≥ 0.80`` for the target ``key``: its direction and threshold from ``targets`` (the targets table indexed
    by target), from :data:`~.targets.TARGETS` / :data:`~.targets.REQUEST_TARGETS` when the table has no such
    row; ``p`` decimals (more when the threshold needs them), then ``unit``."""
    if key in targets.index:
        op, thr = targets.loc[key, "direction"], targets.loc[key, "threshold"]
    else:
        _, thr, op = {**TARGETS, **REQUEST_TARGETS}[key]
    return f"{_SYMBOLS.get(op, op)} {_plain(thr, p)}{unit}"


def _verdict(targets: pd.DataFrame, key: str) -> str:
    """``**met** (value v; needed >= t; VAE ceiling c)`` for the target ``key`` of ``targets`` (indexed by target)."""
    if key not in targets.index:
        return "n/a"
    r = targets.loc[key]
    ceil = f"; VAE ceiling {_fmt(r['vae_ceiling'])}" if "vae_ceiling" in r and np.isfinite(r["vae_ceiling"]) else ""
    return (
        f"**{'met' if r['met'] else 'missed'}** (value {_fmt(r['value'])}; needed {r['direction']} "
        f"{_fmt(r['threshold'])}{ceil})"
    )


def _source_value(frame: pd.DataFrame, source: str, column: str) -> str:
    """``frame.loc[source, column]`` formatted, ``n/a`` when ``frame`` (indexed by source) has no such row."""
    return _fmt(frame.loc[source, column]) if source in frame.index else "n/a"


def _hr_row(features: pd.DataFrame, source: str) -> pd.DataFrame:
    return features[(features["source"] == source) & (features["class"] == "all") & (features["metric"] == "hr_50_150")]


def summarize_benchmark(
    tables: dict[str, pd.DataFrame], *, profile: str = "", sampler: str = "", steps: Any = "", guidance: str = ""
) -> list[str]:
    """The benchmark chapter's findings as Markdown bullet lines, every number read from ``tables`` (the output
    of :func:`~.report.evaluate_run`): each target met or missed with its value and the ``vae`` ceiling that
    bounds it (thresholds and directions from the targets table), the real ECGs' own values, and the baselines.
    A toy profile's caveat is :func:`profile_caveat`, shown once at the top of the chapter."""
    targets = tables["targets"].set_index("target")
    diagnostic = tables["diagnostic_summary"].set_index("source")
    signal = tables["signal"].set_index("source")
    features = tables["features"]
    hr = _hr_row(features, "model")
    hr_n = int(hr["n_valid"].iloc[0]) if len(hr) else 0
    n_model = int(signal.loc["model", "n"]) if "model" in signal.index and np.isfinite(signal.loc["model", "n"]) else 0
    need = partial(_needed, targets)
    per_class = {c: need(f"recall_{c}", 2) for c in KEY_CLASSES}
    if len(set(per_class.values())) == 1:  # one threshold for every class: said once
        recall_lines = f"- Per-class recall {per_class[KEY_CLASSES[0]]}: " + "; ".join(
            f"{c} {_verdict(targets, f'recall_{c}')}" for c in KEY_CLASSES
        )
    else:
        recall_lines = "- Per-class recall: " + "; ".join(
            f"{c} {per_class[c]} {_verdict(targets, f'recall_{c}')}" for c in KEY_CLASSES
        )
    lines = [
        f"- Profile `{profile}`: {len(tables['conditions'])} test conditions, sampler `{sampler}` with {steps} steps, "
        f"guidance {guidance}; the model's signal metrics use n = {n_model} per side.",
        f"- Macro recall over the morphology classes {need('macro_recall_morphology', 2)}: "
        f"{_verdict(targets, 'macro_recall_morphology')}; real test ECGs "
        f"{_source_value(diagnostic, 'real', 'macro_recall_morphology')}.",
        recall_lines + ".",
        f"- All-class macro recall {need('macro_recall_vs_real', 2, ' ×')} the real ECGs' "
        f"({_source_value(diagnostic, 'real', 'macro_recall')}): {_verdict(targets, 'macro_recall_vs_real')}.",
        f"- HR MAE {need('hr_mae_50_150', 0, ' bpm')} for requested HR 50–150 ({hr_n} measurable ECGs): "
        f"{_verdict(targets, 'hr_mae_50_150')}.",
        f"- rFID {need('rfid', 0)}: {_verdict(targets, 'rfid')}; precision {need('precision', 1)}: "
        f"{_verdict(targets, 'precision')}; recall {need('recall', 1)}: {_verdict(targets, 'recall')}.",
        f"- Physical consistency: frontal-lead identity error {need('identity_uv', 0, ' µV')} "
        f"{_verdict(targets, 'identity_uv')}; share beyond ±{_plain(AMPLITUDE_LIMIT_MV, 0)} mV "
        f"{_verdict(targets, 'beyond_10mv')}.",
        f"- Rhythm: sinus RR variability {need('sinus_rr_cv_vs_real', 0, ' ×')} the real sinus records' "
        f"{_verdict(targets, 'sinus_rr_cv_vs_real')}; atrial fibrillation {need('af_rr_cv_vs_sinus', 0, ' ×')} "
        f"generated sinus {_verdict(targets, 'af_rr_cv_vs_sinus')}.",
        f"- Beats the nearest-neighbour baseline on macro recall: {_verdict(targets, 'beats_nn_macro_recall')}; on coverage: "
        f"{_verdict(targets, 'beats_nn_coverage')}.",
    ]
    rs = tables.get("requests_summary")
    if rs is not None and len(rs):
        k = rs.set_index("kind")

        def kv(kind: str, col: str, digits: int = 2) -> str:
            return _fmt(k.loc[kind, col], digits) if kind in k.index else "n/a"

        lines.append(
            f"- Four kinds of request, morphology macro recall: (a) training wordings {kv('seen', 'macro_recall_morphology')}"
            f", (b) held-out wordings {kv('reworded', 'macro_recall_morphology')}, (c) held-out combinations "
            f"{kv('combinations', 'macro_recall_morphology')}, (d) paraphrases.yaml "
            f"{kv('paraphrased', 'macro_recall_morphology')}."
        )
        for key in ("seen_min_recall_morphology", "reworded_morphology_gap", "reworded_hr_mae_50_150",
                    "combinations_min_recall", "combinations_all_requested", "paraphrase_morphology_gap"):  # fmt: skip
            if key in targets.index:
                lines.append(f"- {REQUEST_TARGETS[key][0]} {need(key, 2)}: {_verdict(targets, key)}.")
        if "combinations" in k.index:
            lines.append(
                f"- The judge on the held-out combinations' own reference ECGs (its ceiling there): every requested "
                f"class found in {kv('combinations', 'reference_all_requested')}, morphology macro recall "
                f"{kv('combinations', 'reference_macro_recall_morphology')}."
            )
    if "deepfake" in signal.index:
        lines.append(
            f"- deepfake-ecg (unconditional): rFID {_fmt(signal.loc['deepfake', 'rfid'])}, coverage "
            f"{_fmt(signal.loc['deepfake', 'coverage'])}, macro recall {_source_value(diagnostic, 'deepfake', 'macro_recall')}."
        )
    if "ddpm" in diagnostic.index and "model_subset" in diagnostic.index:
        lines.append(
            f"- DDPM vs the fast sampler on the same {int(diagnostic.loc['ddpm', 'n'])} conditions: macro recall "
            f"{_source_value(diagnostic, 'ddpm', 'macro_recall')} vs {_source_value(diagnostic, 'model_subset', 'macro_recall')}."
        )
    if "noc" in diagnostic.index:
        hr_noc = _hr_row(features, "noc")
        lines.append(
            f"- Text-only ablation (noc) vs the model: HR MAE "
            f"{_fmt(hr_noc['mae'].iloc[0] if len(hr_noc) else np.nan, 1)} vs "
            f"{_fmt(hr['mae'].iloc[0] if len(hr) else np.nan, 1)} bpm, rFID {_fmt(signal.loc['noc', 'rfid'])} vs "
            f"{_fmt(signal.loc['model', 'rfid'])}, macro recall {_source_value(diagnostic, 'noc', 'macro_recall')} vs "
            f"{_source_value(diagnostic, 'model', 'macro_recall')}."
        )
    if len(tables.get("tstr", [])):
        t = tables["tstr"].set_index("setting")["macro_auroc"]
        lines.append(
            f"- TSTR macro AUROC {_fmt(t['tstr'])} vs TRTR {_fmt(t['trtr'])} (ratio {_fmt(t['tstr_over_trtr'])})."
        )
    return lines


def summarize_evaluation(tables: dict[str, pd.DataFrame]) -> str:
    """What :func:`~.report.evaluate_run` evaluated and how long it took (the sum of its ``timings``), where its
    files are, and what the ``vae`` row is (when the tables have one)."""
    seconds = float(tables["timings"]["seconds"].sum()) if len(tables.get("timings", [])) else 0.0
    text = (
        f"Evaluated **{len(tables['conditions'])}** test conditions in {seconds:.0f} s; tables and figures are in "
        f"the run's `eval/` folder."
    )
    if "vae" in set(tables["signal"]["source"]):
        text += (
            " Beside the baselines, the `vae` row is the real test ECGs passed through the run's autoencoder: "
            "what any generator built on it can reach at best."
        )
    return text


def summarize_noc_training(summary: dict) -> str:
    """One sentence on the text-only (noc) U-Net's training, from the summary its trainer returns (``steps``,
    ``seconds``, ``best_val_loss``)."""
    return (
        f"Text-only (noc) U-Net: {summary['steps']} steps in {summary['seconds'] / 60:.1f} min, "
        f"best validation loss {_fmt(summary.get('best_val_loss'), 4)}."
    )


def profile_caveat(profile: str) -> str:
    """The warning a toy profile's numbers need (:data:`TOY_PROFILES`); empty for every other profile."""
    if profile in TOY_PROFILES:
        return (
            f"On the `{profile}` profile the models are toys and every number is meaningless: the chapter only "
            "proves that the pipeline runs."
        )
    return ""


def build_gaps(*, noc: bool = True, paraphrase: bool = True) -> list[str]:
    """The parts of the benchmark chapter this build skipped, as Markdown paragraphs (empty when none): the
    text-only ablation (``noc``) and the paraphrase evaluation (``paraphrase``), with how to run them."""
    gaps = []
    if not paraphrase:
        gaps.append(
            "**Not in this build: the paraphrase evaluation** (`paraphrase = False`). Run it with "
            "`diffusets evaluate RUN_DIR --paraphrase`, or set `paraphrase: true` for this notebook in the "
            "profile."
        )
    if not noc:
        gaps.append(
            "**Not in this build: the text-only ablation (`noc`).** This profile does not train the second "
            "U-Net it needs (it would double the U-Net training time). Run it with "
            "`diffusets train-unet RUN_DIR --text-only` and "
            "`diffusets evaluate RUN_DIR --baselines nn,deepfake,ddpm,noc`, or set `noc: true` for "
            "this notebook in the profile."
        )
    return gaps


def show_markdown(text: str | Sequence[str], sep: str = "\n\n") -> None:
    """Display ``text`` (or its non-empty parts joined by ``sep``) as Markdown in a notebook; display nothing when
    there is nothing to say (an empty ``Markdown`` would show as its repr in the built book)."""
    parts = [text] if isinstance(text, str) else list(text)
    joined = sep.join(p for p in parts if p and p.strip())
    if joined:
        from IPython.display import Markdown, display

        display(Markdown(joined))


def summarize_vae(
    summary: dict, metrics: dict, latents: dict, *, channels: Sequence[int], derived_leads: bool
) -> list[str]:
    """Chapter 3's findings as Markdown bullet lines: the VAE's size and training (``summary`` of
    ``train_vae``: params, steps, seconds, samples_per_s), its held-out reconstruction (``metrics`` of
    :func:`.reconstruction.reconstruction_metrics` with physiology) and the measured latent scale (``latents``,
    the summary of ``encode_latents``: latent_scale and per-split mean / std)."""
    rec, train = metrics, latents["splits"]["train"]
    derived = ", eight independent leads, limb leads derived" if derived_leads else ""
    return [
        f"- VAE with widths {list(channels)} ({summary['params'] / 1e6:.2f} M parameters{derived}) trained for "
        f"{summary['steps']} steps in {summary['seconds'] / 60:.1f} min ({summary['samples_per_s']:.0f} samples/s).",
        f"- Held-out reconstruction ({rec['n']} ECGs): RMSE {rec['rmse_uv']:.1f} µV overall, median per-lead "
        f"correlation {rec['corr_median']:.3f}; worst lead {rec['worst_lead']} ({rec['worst_lead_corr']:.3f}).",
        f"- P-wave amplitude kept at {rec['p_amp_ratio']:.2f} × the original's (median {rec['p_amp_real_mv']:.3f} mV), "
        f"QRS width at {rec['qrs_ratio']:.2f} × ({rec['qrs_real_ms']:.0f} ms); frontal-lead identity error "
        f"{rec['identity_uv_median']:.1f} µV (median).",
        f"- Measured latent scale {latents['latent_scale']:.3f} (the paper's constant is {PAPER_SCALE_FACTOR}); scaled "
        f"training latents have mean {train['mean']:.3f} and standard deviation {train['std']:.3f}.",
    ]

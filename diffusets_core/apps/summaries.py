"""The chapters' findings as sentences, computed from their tables (no number is typed by hand; a value that can
be missing prints as ``n/a``, :func:`~diffusets_core.eval.summaries.format_number`).

Each ``summarize_*`` takes what a chapter computed and returns Markdown (a bullet list, one finding a line) for
``display(Markdown(...))``; the sentences are tested in ``tests/test_apps_summaries.py``. Also the small tables of
the methods chapter (:func:`count_parameters`, :func:`model_size_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.leads import CANONICAL_LEADS
from ..data.overview import skipped_records, statements, subjects_in_several_splits
from ..data.preprocess import PreprocessConfig
from ..data.splits import SPLITS
from ..eval.summaries import format_number
from ..text.patient import COLUMNS as PATIENT_COLUMNS
from .rare_disease import overall_verdict

__all__ = [
    "count_parameters",
    "model_size_table",
    "summarize_methods",
    "describe_reports",
    "skipped_view",
    "summarize_data",
    "summarize_cohort_world",
    "summarize_text",
    "summarize_diffusion",
    "summarize_generation",
    "summarize_rare_disease",
    "summarize_knowledge",
    "summarize_gallery",
    "summarize_explorer",
]


# -- 00 methods ------------------------------------------------------------------------------------------------------
def count_parameters(module: Any) -> int:
    """Number of parameters of a torch module (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def model_size_table(
    vae: Any, unet: Any, text_dim: int, paper_vae: Any, paper_unet: Any, paper_text_dim: int
) -> pd.DataFrame:
    """Parameters of the VAE encoder / decoder and the U-Net and the text width, this build against the paper's
    (values formatted with thousands separators)."""
    sizes = pd.DataFrame(
        {
            "this build": [
                count_parameters(vae.encoder),
                count_parameters(vae.decoder),
                count_parameters(unet),
                text_dim,
            ],
            "paper": [
                count_parameters(paper_vae.encoder),
                count_parameters(paper_vae.decoder),
                count_parameters(paper_unet),
                paper_text_dim,
            ],
        },
        index=["VAE encoder parameters", "VAE decoder parameters", "U-Net parameters", "text condition width"],
    )
    return sizes.map(lambda v: f"{v:,}")


def summarize_methods(
    vae: Any, unet: Any, paper_vae: Any, paper_unet: Any, vae_cfg: Any, unet_cfg: Any, text_dim: int
) -> str:
    """Model sizes against the paper's, the latent compression (an ECG of :data:`~diffusets_core.data.leads.
    CANONICAL_LEADS` × ``PreprocessConfig().out_len`` samples), and the U-Net's architecture and condition (the text
    vector plus one value per :data:`~diffusets_core.text.patient.COLUMNS`)."""
    n_leads, n_samples = len(CANONICAL_LEADS), PreprocessConfig().out_len
    latent_len = n_samples // vae_cfg.downsample_factor
    return (
        f"- This build's VAE has {count_parameters(vae) / 1e6:.2f} M parameters (paper {count_parameters(paper_vae) / 1e6:.2f} M) and compresses "
        f"{n_leads} × {n_samples} values to {vae_cfg.latent_channels} × {latent_len} "
        f"({n_leads * n_samples // (vae_cfg.latent_channels * latent_len)}× fewer).\n"
        f"- Its U-Net (`{unet_cfg.arch}`) has {count_parameters(unet) / 1e6:.2f} M parameters (paper {count_parameters(paper_unet) / 1e6:.2f} M), "
        f"conditioned on a {text_dim}-d text vector plus {len(PATIENT_COLUMNS)} patient values."
    )


# -- 01 data ---------------------------------------------------------------------------------------------------------
def describe_reports(records: pd.DataFrame) -> str:
    """Distinct reports and statements, and the median number of statements per report."""

    st = statements(records)
    return (
        f"{records['report'].nunique()} distinct reports among {len(records)} records; "
        f"{st.nunique()} distinct statements; "
        f"median {records['report'].str.count('[|]').median() + 1:.0f} statements per report"
    )


def skipped_view(reasons: Any, manifest: pd.DataFrame, head: int = 20) -> list:
    """What the data chapter shows about skipped records: the reasons and the first ``head`` skipped rows, or a
    sentence saying none was skipped (objects for ``display(*...)``)."""
    from IPython.display import Markdown

    skipped = skipped_records(manifest)
    if len(skipped):
        return [reasons, skipped.head(head)]
    return [Markdown(f"No record was skipped: all {len(manifest)} records of the source were usable.")]


def summarize_data(
    source: str,
    manifest: pd.DataFrame,
    records: pd.DataFrame,
    statement_table: pd.DataFrame,
    records_per_s: float,
    workers: int,
) -> str:
    """Records read / prepared / skipped, the split by subject, reports, patients, and the preparation speed."""

    hr_lo, hr_hi = np.percentile(records["hr"], [5, 95])
    per_split = records.groupby("split")["record_id"].size().reindex(SPLITS).dropna()
    lines = [
        f"- Source `{source}`: {len(manifest)} records, {len(records)} prepared, {len(manifest) - len(records)} skipped with a reason.",
        "- Split by subject: "
        + ", ".join(f"{s} {int(c)}" for s, c in per_split.items())
        + f"; subjects in more than one split: {subjects_in_several_splits(records)}.",
        f"- {records['report'].nunique()} distinct reports; the most frequent statement is “{statement_table.index[0]}” "
        f"({statement_table['share of records'].iloc[0]:.0%} of records).",
        f"- Heart rate {hr_lo:.0f}–{hr_hi:.0f} bpm (5th–95th percentile); age {records['age'].min():.0f}–{records['age'].max():.0f} years; "
        f"{(records['sex'] == 'F').mean():.0%} women.",
        f"- Preparation: {records_per_s:.0f} records/s with {workers} worker(s).",
    ]
    return "\n".join(lines)


def summarize_cohort_world(world: Any, target: float = 0.90) -> str:
    """The cohort's world in a few lines, from the data chapter's tables (a
    :class:`~diffusets_core.data.cohort.overview.CohortWorld`): findings said, records with two or more morphology
    findings, wordings, the held-out combinations' counts and the per-finding agreement against ``target``."""
    split_counts, per_record, wording, held_out, agreement = (
        world.counts,
        world.per_record,
        world.wording,
        world.held_out,
        world.agreement,
    )
    from ..data.cohort.findings import finding

    drawn = [f for f in split_counts.index if finding(f).drawn]
    multi = per_record.loc[["2", "3+"], "share (said)"].sum()
    multi_i = per_record.loc[["2", "3+"], "share (intended)"].sum() if "share (intended)" in per_record else None
    w = wording["value"]
    absent = int(held_out.to_numpy().sum()) == 0
    below = agreement[agreement["agreement"] < target]
    lines = [
        f"- {len(drawn)} findings are said in the reports ({len(split_counts)} statements with the overall "
        "Normal / Borderline / Abnormal ones).",
        f"- {multi:.0%} of records carry two or more morphology findings in their report"
        + (f" ({multi_i:.0%} as drawn by the planner)." if multi_i is not None else "."),
        f"- The wording bank words {int(w['canonical statements in the bank'])} statements with at least "
        f"{int(w['bank wordings per statement, train part (min)'])} training and "
        f"{int(w['bank wordings per statement, held-out part (min)'])} held-out wordings each; the reports use "
        f"{int(w['distinct statement wordings used'])} distinct wordings in {int(w['distinct full reports'])} distinct "
        f"reports, and {int(w['statements that are held-out wordings'])} held-out wordings.",
        f"- {world.pairs.loc['allowed pairs built (intended)', 'value']} of the "
        f"{world.pairs.loc['allowed pairs', 'value']} pairs of morphology findings the rules allow in one record were "
        "built into some record.",
        f"- Held-out combinations: {len(held_out)}, "
        + ("absent from every split (said and intended)." if absent else "**present in the data** (see the table)."),
        f"- Interpreter agreement with the intended findings: lowest {agreement['agreement'].min():.2f} "
        f"({agreement['agreement'].idxmin()}); "
        + (
            f"every finding meets {target:.2f}."
            if below.empty
            else f"below {target:.2f}: " + ", ".join(f"{i} {v:.2f}" for i, v in below["agreement"].items()) + "."
        ),
    ]
    return "\n".join(lines)


# -- 02 text ---------------------------------------------------------------------------------------------------------
def summarize_text(first: Mapping[str, Any], second: Mapping[str, Any], probe: Mapping[str, float]) -> str:
    """De-duplication, the embedder, the cache's behaviour over two calls of ``embed_run`` (``first``/``second``:
    its summaries), whether report vectors carry heart rate (``probe``: k, mae, mae_shuffled, mae_mean, r; the
    verdict says they do when the k-NN error is below 0.8 x the shuffled-label error) and, when ``first`` has
    them, how many prompts exceed the embedder's window."""
    identity = first["identity"]
    hit_rate_second = second["cache_hits"] / max(1, second["distinct_prompts"])
    k, mae, mae_shuf, mae_mean, r = (probe[key] for key in ("k", "mae", "mae_shuffled", "mae_mean", "r"))
    verdict = "do carry heart-rate information" if mae < 0.8 * mae_shuf else "carry little heart-rate information"
    lines = [
        f"- {first['records']} records have {first['distinct_prompts']} distinct ordered prompts "
        f"({first['prompts_saved_by_dedup']} embeddings saved by de-duplication).",
        f"- Embedder `{identity['backend']}` / `{identity['model']}`, {identity['dim']}-d, prompt mode `{identity['prompt_mode']}`.",
        f"- Cache: the first call embedded {first['newly_embedded']} prompts ({first['cache_hits']} already cached); "
        f"the second call found {hit_rate_second:.0%} of the prompts in the cache and embedded {second['newly_embedded']}.",
        f"- Report vectors {verdict}: a {k}-NN regressor predicts heart rate with MAE {format_number(mae, 1)} bpm, "
        f"against {format_number(mae_shuf, 1)} bpm on shuffled labels and {format_number(mae_mean, 1)} bpm for the "
        f"mean (correlation {format_number(r)}). "
        "The reports name the rhythm (bradycardia, tachycardia), so this is the expected route for heart rate to reach the text.",
    ]
    if "window" in first:
        lines.append(_window_line(first))
    return "\n".join(lines)


def _window_line(summary: Mapping[str, Any]) -> str:
    """How the prompts met the embedder's window (``embed_run``'s ``window``, ``max_prompt_tokens``,
    ``long_records``, ``long_prompts``)."""
    if summary["window"] is None:
        return "- The embedder reads texts of any length: every prompt is embedded whole."
    head = (
        f"- The embedder reads at most {summary['window']} tokens of one text; the longest prompt has "
        f"{summary['max_prompt_tokens']}."
    )
    if not summary["long_records"]:
        return f"{head} No prompt exceeds the window: every one is embedded whole."
    return (
        f"{head} {summary['long_records']} record(s) ({summary['long_prompts']} distinct prompts) exceed it; each is "
        "embedded in chunks of whole statements (the token-weighted mean of the chunk vectors), so no statement is "
        "cut off."
    )


# -- 04 diffusion ----------------------------------------------------------------------------------------------------
def summarize_diffusion(summary: Mapping[str, Any], samplers: pd.DataFrame, ddpm_steps: int, n_test: int) -> str:
    """The U-Net's training (``summary`` of ``train_unet``) and the sampler comparison (table of
    :func:`~diffusets_core.apps.sampling.compare_samplers`: rows ddpm, ddim, and the fast samplers, each with its
    ``steps``). An HR MAE that could not be measured prints as ``n/a``."""
    fast = samplers.drop(index="ddpm")
    best = fast["speed-up vs DDPM"].idxmax()
    hr_mae = samplers["HR MAE (bpm)"].map(lambda v: format_number(v, 1))
    lines = [
        f"- U-Net ({summary['params'] / 1e6:.2f} M parameters, {summary['text_dim']}-d text condition) trained for "
        f"{summary['steps']} steps in {summary['seconds'] / 60:.1f} min ({summary['samples_per_s']:.0f} samples/s); "
        f"best validation loss {format_number(summary.get('best_val_loss'), 4)}.",
        f"- DDPM-{ddpm_steps}: {samplers.loc['ddpm', 'seconds per ECG']:.2f} s per ECG, HR MAE "
        f"{hr_mae['ddpm']} bpm on {n_test} test conditions.",
        f"- {best} ({int(fast.loc[best, 'steps'])} steps) is {fast.loc[best, 'speed-up vs DDPM']:.0f}× faster with HR MAE "
        f"{hr_mae[best]} bpm; DDIM-{int(fast.loc['ddim', 'steps'])}: {fast.loc['ddim', 'speed-up vs DDPM']:.0f}× "
        f"faster, HR MAE {hr_mae['ddim']} bpm.",
    ]
    return "\n".join(lines)


# -- 05 generation ---------------------------------------------------------------------------------------------------
def summarize_generation(
    grid: pd.DataFrame,
    n_reports: int,
    n_patients: int,
    hr_sweep: Sequence[float],
    n_per_condition: int,
    errors: Mapping[str, Mapping[str, float]],
) -> str:
    """The gallery written and the heart-rate sweep's error per series (``errors``: series -> ``hr_error``)."""
    m = errors.get("rate-matched report", {})
    fx = errors.get("fixed report", {})
    lines = [
        f"- {len(grid)} gallery ECGs for {n_reports} reports × {n_patients} patients were written to "
        f"`samples/gallery/` as WFDB, `.npy` and PNG (conditions and seed in each header).",
        f"- Heart-rate sweep over {min(hr_sweep)}–{max(hr_sweep)} bpm ({n_per_condition} ECGs per rate and series): "
        f"with a rate-matched report the measured HR is off by {format_number(m.get('mae'), 1)} bpm on average "
        f"(bias {format_number(m.get('bias'), spec='+.1f')} bpm, {format_number(m.get('frac_within_5'), spec='.0%')} "
        f"within 5 bpm, {format_number(m.get('frac_valid'), spec='.0%')} measurable); with a fixed sinus-rhythm "
        f"report, by {format_number(fx.get('mae'), 1)} bpm (bias {format_number(fx.get('bias'), spec='+.1f')}).",
    ]
    return "\n".join(lines)


# -- 07 rare disease -------------------------------------------------------------------------------------------------
def summarize_rare_disease(
    descriptions: Sequence[Any],
    signatures: pd.DataFrame,
    *,
    sex: str,
    age: Any,
    hr: Any,
    n: int,
    control_report: str,
    sampler: str,
    steps: int,
    source: str,
    table_path: str,
) -> str:
    """The experiment's setting, then per condition the overall verdict and each signature feature's test."""

    lines = [
        f"- Patient: {sex}, {age} y, {hr} bpm; {n} ECGs per condition and {n} controls from `{control_report}`; "
        f"{sampler} sampler, {steps} steps; descriptions from the {'LLM' if source == 'llm' else 'cited table'}."
    ]
    for d in descriptions:
        t = signatures[signatures["condition"] == d.name]
        lines.append(f"- **{d.name}**: {overall_verdict(t)}.")
        for _, r in t.iterrows():
            lines.append(
                f"  - `{r.feature}` (expected {r.expected}): {format_number(r.mean_case, spec='.3g')} vs "
                f"{format_number(r.mean_control, spec='.3g')}, g = {format_number(r.effect)} [95% CI "
                f"{format_number(r.ci_lo)}, {format_number(r.ci_hi)}], p = {format_number(r.p, spec='.2g')}, "
                f"n = {r.n_case}/{r.n_control} — {r.verdict}."
            )
    lines.append(f"- Tables written to `{table_path}` in the run directory.")
    return "\n".join(lines)


# -- 08 knowledge discovery ------------------------------------------------------------------------------------------
def summarize_knowledge(
    experiments: Sequence[Any],
    table: pd.DataFrame,
    view: Any,
    *,
    n: int,
    sampler: str,
    steps: int,
    base_report: str,
    base_sex: str,
    base_age: Any,
    base_hr: Any,
    table_path: str,
) -> str:
    """Per experiment the features that shifted (95 % CI excluding 0) or that none did, then the embedding view
    (``view.points``: pc1, pc2, hr, report; ``view.explained``)."""
    pts = view.points
    rho = pts[["pc1", "pc2", "hr"]].corr(method="spearman")["hr"]
    lines = [
        f"- {len(experiments)} experiments × {n} seed-matched pairs ({sampler}, {steps} steps), base report "
        f"`{base_report}`, base patient {base_sex}, {base_age} y, {base_hr} bpm."
    ]
    for e in experiments:
        t = table[table["experiment"] == e.name]
        shifts = t[t["verdict"].str.startswith("shift")]
        if len(shifts):
            desc = "; ".join(
                f"`{r.feature}` {r['diff']:+.3g} (d_z {r.effect:.2f} [{r.ci_lo:.2f}, {r.ci_hi:.2f}])"
                for _, r in shifts.iterrows()
            )
            lines.append(f"- **{e.label}**: shifts with a 95% CI excluding 0 — {desc}.")
        else:
            lines.append(
                f"- **{e.label}**: no feature shift detected (each 95% CI includes 0, or the feature was not measurable or had too few valid pairs to judge)."
            )
    lines.append(
        f"- Embedding space: {len(pts)} records, {pts['report'].nunique()} distinct reports; PC1 and PC2 explain "
        f"{view.explained[0]:.0%} and {view.explained[1]:.0%} of the variance; Spearman correlation with HR: "
        f"PC1 {format_number(rho['pc1'])}, PC2 {format_number(rho['pc2'])}."
    )
    lines.append(f"- Shift table written to `{table_path}`.")
    return "\n".join(lines)


# -- 09 gallery ------------------------------------------------------------------------------------------------------
def summarize_gallery(
    classes: pd.DataFrame,
    n_test: int,
    quiz: pd.DataFrame,
    *,
    max_classes: int,
    n_generated: int,
    sampler: str,
    steps: int,
    seed: int,
) -> str:
    """The gallery's classes and the quiz's mix of real and generated ECGs."""
    n_real = int((quiz["source"] == "real").sum())
    return "\n".join(
        [
            f"- Gallery: {len(classes)} classes of the {n_test} test records (at most {max_classes}), each with one real "
            f"ECG and {n_generated} generated for its report and patient ({sampler}, {steps} steps, seeds from {seed}).",
            f"- Quiz: {len(quiz)} ECGs, {n_real} real and {len(quiz) - n_real} generated, order shuffled with seed {seed}.",
        ]
    )


# -- 10 explorer -----------------------------------------------------------------------------------------------------
def summarize_explorer(
    latency: Mapping[str, float],
    n_latency: int,
    *,
    sampler: str,
    steps: int,
    example: dict,
    result: Any,
    bad_inputs: pd.DataFrame,
    table: pd.DataFrame,
    n_classes: int,
    grid_seconds: float,
) -> str:
    """The widget back-end's latency (median seconds per phase), what the interpreter read for the example, the bad
    inputs (``bad_inputs``: :func:`~.explorer.bad_input_messages`' ``input, message`` table, ``(accepted)`` where an
    input was not refused), and the pre-rendered explorer (``table``: one row per ECG with ``agree``)."""
    accepted = bad_inputs.loc[bad_inputs["message"] == "(accepted)", "input"].tolist()
    lines = [
        f"- Widget back-end: one ECG generated, measured, read and compared in {pd.Series(latency).sum():.2f} s "
        f"(median of {n_latency} calls: generation {latency['generate']:.2f} s, measurements and reading "
        f"{latency['measure']:.2f} s, closest real report {latency['compare']:.2f} s; {sampler}, {steps} steps).",
        f"- For *{example['report'].replace('|', ' / ')}* the interpreter read *{' / '.join(result.reading)}*: "
        + ("it names the requested classes." if result.matched() else "it differs from the request."),
        f"- {len(bad_inputs) - len(accepted)} of {len(bad_inputs)} kinds of bad input refused with a message naming "
        "the field" + (f"; accepted without a message: {', '.join(accepted)}." if accepted else "."),
        f"- Pre-rendered explorer: {len(table)} ECGs ({n_classes} classes) written to `explorer/` in "
        f"{grid_seconds:.1f} s; the interpreter's reading names the requested classes for "
        f"{format_number(table['agree'].mean(), spec='.0%')} of them.",
    ]
    return "\n".join(lines)

"""Stage 2 of rare-disease generation: embed a condition's description, generate ECGs for a chosen patient,
generate matched controls from the run's most frequent normal report, and test the expected signature.

Typical use (notebook 07)::

    desc = describe_condition("Brugada syndrome")                # stage 1 (descriptions.py)
    res = generate_condition(pipe, desc.description, n=32, age=24, sex="M", hr=90, seed=0,
                             control_report=normal_report(store.records("train")))
    table = signature_table(res.features, desc.signature)         # one row per signature feature

Controls have the same patient values but their own seeds (``seed + control_seed_offset``), so the groups are
independent and compared with Hedges' g (bootstrap CI) and a Mann–Whitney test; ``paired=True`` instead gives
controls the cases' seeds (one factor changed: the text) and uses paired statistics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..data.leads import CANONICAL_LEADS
from ..data.preprocess import MODEL_FS
from ..eval.features import hr_neurokit, measure_features
from ..fileio import l2_normalize
from .stats import NOT_MEASURABLE, OPPOSITE, PRESENT, compare

__all__ = [
    "ConditionResult",
    "normal_report",
    "t_wave_shape",
    "measure",
    "generate_condition",
    "signature_table",
    "overall_verdict",
    "T_LEADS",
    "description_source",
    "novelty_table",
    "expected_signatures_markdown",
    "llm_cache_markdown",
    "run_signature_tests",
    "signature_values",
]

T_LEADS = ("II", "V2", "V3", "V4", "V5")
_NORMAL = re.compile(r"^normal ecg\.?$", re.I)
_ABNORMAL = re.compile(r"abnormal|borderline", re.I)


def normal_report(records: pd.DataFrame) -> str:
    """The most frequent report of ``records`` with a statement "Normal ECG"; else the most frequent without
    "abnormal"/"borderline"; else the most frequent report."""
    reports = records["report"].astype(str)
    counts = reports.value_counts()
    if counts.empty:
        raise ValueError("no reports to choose a control from")
    is_normal = counts.index.map(lambda r: any(_NORMAL.match(s.strip()) for s in r.split("|")))
    if is_normal.any():
        return str(counts.index[np.asarray(is_normal)][0])
    plain = counts.index.map(lambda r: not _ABNORMAL.search(r))
    if plain.any():
        return str(counts.index[np.asarray(plain)][0])
    return str(counts.index[0])


# -- T-wave shape (peakedness) ------------------------------------------------------------------------------------
def _t_shape_one(sig: np.ndarray, fs: float, leads: Sequence[str]) -> dict[str, float]:
    from scipy.signal import resample_poly

    row = {f"t_{k}_{ld}": math.nan for ld in leads for k in ("fwhm_ms", "peak")}
    peaks = None
    for name in ("II", "V5", "I", "V6"):
        _, p, why = hr_neurokit(sig[CANONICAL_LEADS.index(name)], fs)
        if not why and len(p) >= 3:
            peaks = p
            break
    if peaks is None:
        return row
    up = 5  # ~512 Hz: half-height crossings are interpolated, not quantised to the source's 9.8 ms
    x = resample_poly(np.asarray(sig, float), up, 1, axis=-1)
    fsu = fs * up
    pk = np.round(peaks * up).astype(int)
    rr = float(np.median(np.diff(peaks)) / fs)
    pre, post = int(0.25 * fsu), int(min(0.75 * rr, 0.7) * fsu)
    ok = [p for p in pk if p - pre >= 0 and p + post <= x.shape[-1]]
    if len(ok) < 2:
        return row
    mb = np.median(np.stack([x[:, p - pre : p + post] for p in ok]), axis=0)
    r = pre
    base = np.median(mb[:, r - int(0.10 * fsu) : r - int(0.05 * fsu)], axis=1)  # PR segment
    lo, hi = r + int(0.14 * fsu), r + int(min(0.65 * rr, 0.55) * fsu)
    if hi - lo < int(0.06 * fsu):
        return row
    for ld in leads:
        y = mb[CANONICAL_LEADS.index(ld)] - base[CANONICAL_LEADS.index(ld)]
        seg = y[lo:hi]
        i = lo + int(np.argmax(np.abs(seg)))
        amp = float(y[i])
        if abs(amp) < 0.02:
            continue
        half = abs(amp) / 2.0
        s = np.sign(amp) * y
        a = i
        while a > lo - int(0.06 * fsu) and s[a] >= half:
            a -= 1
        b = i
        while b < len(y) - 1 and s[b] >= half:
            b += 1
        if s[a] >= half or s[b] >= half:
            continue
        # linear interpolation of the half-height crossings
        ta = a + (half - s[a]) / (s[a + 1] - s[a])
        tb = b - 1 + (s[b - 1] - half) / (s[b - 1] - s[b])
        width_s = (tb - ta) / fsu
        if width_s <= 0:
            continue
        row[f"t_fwhm_ms_{ld}"] = width_s * 1000.0
        row[f"t_peak_{ld}"] = amp / width_s
    return row


def t_wave_shape(signals: np.ndarray, fs: float = MODEL_FS, leads: Sequence[str] = T_LEADS) -> pd.DataFrame:
    """T-wave width at half height (``t_fwhm_ms_<lead>``) and peakedness ``t_peak_<lead>`` = signed T amplitude /
    width at half height (mV/s) per record, from a median beat (R-peaks by neurokit2, PR-segment baseline).
    NaN where no T wave >= 0.02 mV or no clean half-height crossing is found."""
    signals = np.asarray(signals)
    if signals.ndim == 2:
        signals = signals[None]
    rows = []
    for s in signals:
        try:
            rows.append(_t_shape_one(s, fs, leads))
        except Exception:  # noqa: BLE001 - NaN on failure, like measure_features
            rows.append({})
    cols = [f"t_{k}_{ld}" for ld in leads for k in ("fwhm_ms", "peak")]
    return pd.DataFrame(rows, columns=cols)


def measure(signals: np.ndarray, fs: float = MODEL_FS, t_leads: Sequence[str] = T_LEADS) -> pd.DataFrame:
    """``measure_features`` (with T amplitudes in ``t_leads``) plus :func:`t_wave_shape` columns."""

    try:
        f = measure_features(signals, fs, t_leads=tuple(t_leads))
    except TypeError:  # an implementation without t_leads
        f = measure_features(signals, fs)
    shape = t_wave_shape(signals, fs, t_leads)
    return pd.concat([f.reset_index(drop=True), shape], axis=1)


# -- generation ---------------------------------------------------------------------------------------------------
@dataclass
class ConditionResult:
    """Generated cases and controls with their features.

    ``features``: one row per ECG — ``group`` ("condition"/"control"), ``report``, ``seed``, patient values and
    the measured features. ``case_signals``/``control_signals``: ``(n, 12, L)`` mV.
    """

    description: str
    control_report: str
    case_signals: np.ndarray
    control_signals: np.ndarray
    fs: float
    features: pd.DataFrame
    paired: bool


def generate_condition(
    pipe: Any,
    description: str,
    n: int,
    age: Any = 24,
    sex: Any = "M",
    hr: Any = 90,
    seed: int = 0,
    *,
    control_report: str | None = None,
    records: pd.DataFrame | None = None,
    steps: int = 50,
    sampler: str = "ddim",
    paired: bool = False,
    control_seed_offset: int = 100_000,
    t_leads: Sequence[str] = T_LEADS,
    **pipe_kwargs: Any,
) -> ConditionResult:
    """Generate ``n`` ECGs from ``description`` and ``n`` controls from ``control_report`` (or the most frequent
    normal report of ``records``), same patient values; measure both.

    Cases use seeds ``seed .. seed+n-1``; controls ``seed + control_seed_offset ..`` (independent) or, when
    ``paired``, the cases' seeds.
    """
    if control_report is None:
        if records is None:
            raise ValueError("give control_report or records (to find the run's most frequent normal report)")
        control_report = normal_report(records)
    kw = dict(age=age, sex=sex, hr=hr, num_ecgs=n, num_inference_steps=steps, sampler=sampler, **pipe_kwargs)
    case = pipe([description] * n, seed=seed, **kw)
    cseed = seed if paired else seed + control_seed_offset
    ctrl = pipe([control_report] * n, seed=cseed, **kw)
    fs = float(getattr(case, "fs", MODEL_FS))
    frames = []
    for group, out in (("condition", case), ("control", ctrl)):
        f = measure(out.signals, fs, t_leads)
        cond = out.conditions.reset_index(drop=True)
        meta = pd.DataFrame(
            {
                "group": group,
                "report": cond["report"],
                "seed": cond["seed"],
                "age": cond["age"],
                "sex": cond["sex"],
                "hr_requested": cond["hr"],
            }
        )
        frames.append(pd.concat([meta, f], axis=1))
    feats = pd.concat(frames, ignore_index=True)
    return ConditionResult(description, control_report, case.signals, ctrl.signals, fs, feats, paired)


def signature_table(
    features: pd.DataFrame,
    signature: Sequence[dict],
    *,
    paired: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    condition: str = "",
) -> pd.DataFrame:
    """One row per signature feature: condition vs control (see :func:`diffusets_core.apps.stats.compare`).

    ``features`` is :attr:`ConditionResult.features` (a ``group`` column with "condition"/"control"); with
    ``paired`` rows are matched on ``seed``.
    """
    case = features[features["group"] == "condition"]
    ctrl = features[features["group"] == "control"]
    if paired:
        case, ctrl = case.sort_values("seed"), ctrl.sort_values("seed")
        if case["seed"].tolist() != ctrl["seed"].tolist():
            raise ValueError("paired comparison needs the same seeds in both groups")
    rows = []
    for i, item in enumerate(signature):
        feat, direction = item["feature"], item.get("direction")
        if feat not in features.columns:
            a = b = np.full(max(len(case), 1), np.nan)
        else:
            a, b = case[feat].to_numpy(float), ctrl[feat].to_numpy(float)
        r = compare(a, b, expected=direction, paired=paired, n_boot=n_boot, seed=seed + i)
        rows.append({"condition": condition, "feature": feat, **r})
    return pd.DataFrame(rows)


def overall_verdict(table: pd.DataFrame) -> str:
    """A sentence from a :func:`signature_table`: how many signature features were found, computed, not chosen."""

    n = len(table)
    if n == 0:
        return "no signature to test"
    k = int((table["verdict"] == PRESENT).sum())
    opp = int((table["verdict"] == OPPOSITE).sum())
    nm = int((table["verdict"] == NOT_MEASURABLE).sum())
    few = int(table["verdict"].str.startswith("too few").sum())
    extra = []
    if opp:
        extra.append(f"{opp} shifted the opposite way")
    if nm:
        extra.append(f"{nm} not measurable")
    if few:
        extra.append(f"{few} with too few valid values to judge")
    if few + nm == n:
        return f"no verdict: of {n} signature features, " + ", ".join(extra)
    head = "signature present" if k == n else "signature partly present" if k else "signature not found"
    return f"{head}: {k} of {n} features shifted in the expected direction (95% CI excludes 0)" + (
        f"; {', '.join(extra)}" if extra else ""
    )


# -- the chapter's steps (rare-disease chapter and any script that repeats the experiment) --------------------------
def description_source(source: str) -> str:
    """The description source that can be used here: ``"llm"`` only when ``OPENAI_API_KEY`` is set, else the cited
    ``"table"`` (so a build without a key still runs; the chapter says which one was used)."""
    import os

    return "table" if source == "llm" and not os.environ.get("OPENAI_API_KEY") else source


def novelty_table(descriptions: Sequence[Any], records: pd.DataFrame, pipe: Any) -> pd.DataFrame:
    """How new each description is to the model: which of its statements occur verbatim (case-insensitive) in the
    training reports of ``records``, and the training report whose embedding (``pipe.embed_reports``) is nearest
    by cosine. One row per description (``ConditionDescription``)."""

    train_statements = records["report"].str.split("|").explode().str.strip().str.lower().value_counts()
    distinct = records["report"].value_counts().index.tolist()
    emb_train = pipe.embed_reports(distinct)
    emb_desc = pipe.embed_reports([d.description for d in descriptions])
    cos = l2_normalize(emb_desc) @ l2_normalize(emb_train).T
    rows = []
    for i, d in enumerate(descriptions):
        seen = [s for s in d.statements if s.lower() in train_statements.index]
        j = int(np.argmax(cos[i]))
        rows.append(
            {
                "condition": d.name,
                "source": d.source,
                "description": d.description.replace("|", " | "),
                "statements seen in training": f"{len(seen)}/{len(d.statements)}"
                + (f" ({'; '.join(seen)})" if seen else ""),
                "nearest training report": distinct[j],
                "cosine": round(float(cos[i, j]), 3),
            }
        )
    return pd.DataFrame(rows)


def expected_signatures_markdown(descriptions: Sequence[Any]) -> str:
    """A Markdown list: each condition's expected ECG picture and its source."""
    return "\n".join(f"- **{d.name}** — expected: {d.expected} *Source:* {d.citation}" for d in descriptions)


def llm_cache_markdown(descriptions: Sequence[Any]) -> str:
    """A Markdown list of where each LLM-written description's answer is cached (``""`` when none came from an
    LLM)."""
    return "\n".join(
        f"- {d.name}: LLM `{d.model}` answer cached at `{d.cache_path}`" + (" (from the cache)" if d.cached else "")
        for d in descriptions
        if d.source == "llm"
    )


def run_signature_tests(
    pipe: Any,
    descriptions: Sequence[Any],
    n: int,
    *,
    age: Any,
    sex: Any,
    hr: Any,
    seed: int,
    control_report: str,
    steps: int,
    sampler: str,
    n_boot: int,
) -> tuple[dict[str, ConditionResult], pd.DataFrame]:
    """For each description ``k``: :func:`generate_condition` (seeds from ``seed + 1000 k``) and its
    :func:`signature_table`. Returns the results by condition name and the concatenated signature table."""
    results, tables = {}, []
    for k, d in enumerate(descriptions):
        res = generate_condition(
            pipe,
            d.description,
            n,
            age=age,
            sex=sex,
            hr=hr,
            seed=seed + 1000 * k,
            control_report=control_report,
            steps=steps,
            sampler=sampler,
        )
        results[d.name] = res
        tables.append(signature_table(res.features, d.signature, n_boot=n_boot, seed=seed, condition=d.name))
    return results, pd.concat(tables, ignore_index=True)


def signature_values(results: dict[str, ConditionResult], descriptions: Sequence[Any]) -> pd.DataFrame:
    """Long table of every signature feature's values: ``group``, ``feature``, ``value``, ``condition``."""
    long = []
    for name, res in results.items():
        feats = [s["feature"] for s in next(d for d in descriptions if d.name == name).signature]
        m = res.features.melt(id_vars=["group"], value_vars=feats, var_name="feature", value_name="value")
        m["condition"] = name
        long.append(m)
    return pd.concat(long, ignore_index=True)

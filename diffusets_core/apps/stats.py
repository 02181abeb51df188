"""Two-group statistics for "does the generated group differ from its control?".

Everything here is plain numpy/scipy and deterministic given ``seed``:

* :func:`hedges_g` / :func:`cohens_d` — standardised mean difference (``case - control``) with the pooled SD;
  Hedges' g applies the small-sample correction ``J = 1 - 3 / (4 (n1 + n2) - 9)``.
* :func:`paired_d` — ``d_z = mean(case - control) / sd(case - control)`` for paired samples (same seeds).
* :func:`bootstrap_ci` — percentile bootstrap CI of any two-sample statistic (resampling each group, or
  the pairs when ``paired``).
* :func:`compare` — one row: means, difference, effect size + CI, Mann–Whitney (unpaired) or Wilcoxon
  signed-rank (paired) p-value, n per group and a :func:`verdict` computed from the CI (none below
  ``MIN_N_VERDICT`` valid values per group: a percentile bootstrap of 4 same-sign pairs always excludes 0).

NaN values (features that could not be measured) are dropped: per group when unpaired, per pair when paired.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "cohens_d",
    "hedges_g",
    "paired_d",
    "bootstrap_ci",
    "compare",
    "verdict",
    "PRESENT",
    "OPPOSITE",
    "NOT_FOUND",
    "NOT_MEASURABLE",
    "TOO_FEW",
    "SHIFT",
    "NO_SHIFT",
    "MIN_N_VERDICT",
]

PRESENT = "signature present: CI excludes 0 in the expected direction"
OPPOSITE = "not found: CI excludes 0 but in the opposite direction"
NOT_FOUND = "not found: CI includes 0"
NOT_MEASURABLE = "not measurable: fewer than 2 valid values per group"
TOO_FEW = "too few to judge: fewer than {min_n} valid values per group"
SHIFT = "shift: CI excludes 0"
NO_SHIFT = "no shift detected: CI includes 0"

MIN_N = 2
MIN_N_VERDICT = 5  # below this a percentile-bootstrap CI is meaningless (n=4 same-sign pairs -> CI excludes 0)


def _clean(a) -> np.ndarray:
    a = np.asarray(a, dtype=float).ravel()
    return a[np.isfinite(a)]


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = len(a), len(b)
    if na + nb <= 2:
        return math.nan
    va = np.var(a, ddof=1) if na > 1 else 0.0
    vb = np.var(b, ddof=1) if nb > 1 else 0.0
    return math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))


def cohens_d(case, control) -> float:
    """``(mean(case) - mean(control)) / pooled SD``; NaN if a group has < 2 values; 0 if both are constant and equal."""
    a, b = _clean(case), _clean(control)
    if len(a) < MIN_N or len(b) < MIN_N:
        return math.nan
    diff = float(a.mean() - b.mean())
    sd = _pooled_sd(a, b)
    if not sd:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / sd


def hedges_g(case, control) -> float:
    """Cohen's d times the small-sample correction ``1 - 3 / (4 (n1 + n2) - 9)``."""
    a, b = _clean(case), _clean(control)
    d = cohens_d(a, b)
    if not math.isfinite(d):
        return d
    return d * (1.0 - 3.0 / (4.0 * (len(a) + len(b)) - 9.0))


def paired_d(case, control) -> float:
    """``d_z``: mean of the pairwise differences over their SD (pairs with a NaN are dropped)."""
    a, b = np.asarray(case, float).ravel(), np.asarray(control, float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if len(d) < MIN_N:
        return math.nan
    sd = float(np.std(d, ddof=1))
    m = float(d.mean())
    if not sd:
        return 0.0 if m == 0 else math.copysign(math.inf, m)
    return m / sd


def bootstrap_ci(
    case,
    control,
    stat: Callable[[np.ndarray, np.ndarray], float] = hedges_g,
    *,
    paired: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat(case, control)``.

    Unpaired: each group is resampled with replacement on its own. Paired: the pairs are resampled together.
    Resamples where the statistic is not finite (e.g. a constant resample) are ignored.
    """
    rng = np.random.default_rng(seed)
    if paired:
        a, b = np.asarray(case, float).ravel(), np.asarray(control, float).ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        if len(a) < MIN_N:
            return math.nan, math.nan
        idx = rng.integers(0, len(a), size=(n_boot, len(a)))
        vals = np.array([stat(a[i], b[i]) for i in idx])
    else:
        a, b = _clean(case), _clean(control)
        if len(a) < MIN_N or len(b) < MIN_N:
            return math.nan, math.nan
        ia = rng.integers(0, len(a), size=(n_boot, len(a)))
        ib = rng.integers(0, len(b), size=(n_boot, len(b)))
        vals = np.array([stat(a[i], b[j]) for i, j in zip(ia, ib)])
    vals = vals[np.isfinite(vals)]
    if len(vals) < max(10, n_boot // 10):
        return math.nan, math.nan
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(vals, [q, 1.0 - q])
    return float(lo), float(hi)


def verdict(
    ci_lo: float, ci_hi: float, expected: str | None = None, *, n: int | None = None, min_n: int = MIN_N_VERDICT
) -> str:
    """Verdict from a CI of ``case - control``.

    ``expected`` is ``"increase"``, ``"decrease"`` or ``None`` (no hypothesis: just "shift"/"no shift").
    ``n`` (the smaller group size, or the number of pairs) below ``min_n`` gives "too few to judge".
    """
    if expected not in (None, "increase", "decrease"):
        raise ValueError(f"expected must be 'increase', 'decrease' or None, got {expected!r}")
    if not (math.isfinite(ci_lo) and math.isfinite(ci_hi)):
        return NOT_MEASURABLE
    if n is not None and n < min_n:
        return TOO_FEW.format(min_n=min_n)
    above, below = ci_lo > 0, ci_hi < 0
    if expected is None:
        if above:
            return SHIFT + " (increase)"
        if below:
            return SHIFT + " (decrease)"
        return NO_SHIFT
    if (expected == "increase" and above) or (expected == "decrease" and below):
        return PRESENT
    if above or below:
        return OPPOSITE
    return NOT_FOUND


def compare(
    case,
    control,
    *,
    expected: str | None = None,
    paired: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    min_n: int = MIN_N_VERDICT,
) -> dict:
    """One comparison row (see the module docstring). Keys:

    ``n_case, n_control, mean_case, mean_control, diff, effect_name, effect, ci_lo, ci_hi, test, p, expected,
    verdict``. ``diff`` is ``mean(case) - mean(control)`` (the mean pairwise difference when paired).
    """
    from scipy import stats as st

    a_raw, b_raw = np.asarray(case, float).ravel(), np.asarray(control, float).ravel()
    if paired:
        if a_raw.shape != b_raw.shape:
            raise ValueError("paired comparison needs equal-length samples")
        ok = np.isfinite(a_raw) & np.isfinite(b_raw)
        a, b = a_raw[ok], b_raw[ok]
        effect_name, fn, test = "d_z (paired)", paired_d, "Wilcoxon signed-rank"
    else:
        a, b = _clean(a_raw), _clean(b_raw)
        effect_name, fn, test = "Hedges' g", hedges_g, "Mann-Whitney U"
    row = {
        "n_case": len(a),
        "n_control": len(b),
        "mean_case": float(a.mean()) if len(a) else math.nan,
        "mean_control": float(b.mean()) if len(b) else math.nan,
    }
    row["diff"] = float((a - b).mean()) if paired and len(a) else row["mean_case"] - row["mean_control"]
    row["effect_name"] = effect_name
    row["effect"] = fn(a, b)
    row["ci_lo"], row["ci_hi"] = bootstrap_ci(a, b, fn, paired=paired, n_boot=n_boot, level=level, seed=seed)
    row["test"] = test
    p = math.nan
    if len(a) >= MIN_N and len(b) >= MIN_N:
        try:
            if paired:
                p = float(st.wilcoxon(a, b).pvalue) if np.any(a != b) else 1.0
            else:
                p = float(st.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        except ValueError:
            p = math.nan
    row["p"] = p
    row["expected"] = expected or ""
    row["verdict"] = verdict(row["ci_lo"], row["ci_hi"], expected, n=min(len(a), len(b)), min_n=min_n)
    return row

"""Counterpart records: a requested report at a requested heart rate on a given subject's morphology template.

For a test subject S whose target record has findings F at heart rate h, the *counterpart* is the same report on
another subject S': F at h built on S''s template. Comparing a generated ECG with its own target and with the
counterpart isolates what is personal (the morphology) from what the report and the rate fix.

A counterpart is built like a cohort record (:func:`.build.make_record`, :func:`.build.make_combination_record`):
the template of a GAN seed (:func:`.build.subject_template`), the edit planned for the findings
(:func:`.plan.plan_edit`), synthesised, noised, derived to 12 leads and read by the interpreter
(:func:`.interpreter.interpret`). The edit is drawn again (up to :data:`~.build.MAX_REDRAWS` times, from the
generator ``default_rng([seed, COUNTERPART_STREAM, index])``) until the interpreter says exactly the requested
findings and measures the requested rate within :data:`HR_TOLERANCE_BPM`; the best draw is kept (exact findings and
rate, else exact findings, else the nearest rate) and ``complete`` tells whether both held. The generator does not
depend on the template: counterparts of one ``(seed, index)`` on two templates share their rhythm timing and noise
(a paired comparison of the morphologies).

The heart rate is the ventricular rate the interpreter measures (``measurements["hr"]``: 60 / mean RR of the normal
beats), which a cohort record's ``machine_measurements.csv`` holds as ``rr_interval`` and a prepared manifest as
``hr``. The planned rate is replaced by it (:func:`.plan.plan_edit` ``hr=``) except where the rate comes from other
edit fields or a planner caps it; ``rate_note`` records what was done:

* atrial flutter (ventricular rate = F-wave rate / conduction ratio): the conduction ratio (2, 3 or 4:1; the planned
  one when it fits) and the F-wave rate ``hr x ratio`` kept within the planner's 250-320 /min when a ratio allows;
  otherwise the F-wave rate is clipped to that range and the rate will miss;
* 2nd-degree AV block Mobitz I: the edit's rate is the sinus (P-wave) rate; a group of n P waves conducts n - 1, so
  over whole groups the ventricular rate is ``P rate x (n - 1) / n``; the P rate is set to ``hr x n / (n - 1)`` with
  the group size (3-5; the planned one when it fits) that keeps it within the planner's limits (the blocked P wave
  must clear the T wave; the sinus rate statement must stay the intended one), or the nearest when none does;
* a planner's cap (1st degree AV block <= 82 /min, T flattening with U waves <= 85 /min, premature atrial complexes
  and pre-excitation <= 120 /min: their P or U waves stay readable below it) is kept when the requested rate lies at
  most :data:`CAP_SLACK_BPM` above it (a cohort record planned at the cap measures a little above it), and otherwise
  overridden by the requested rate; whether the finding is still read is then the interpreter's to say
  (``complete``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .build import MAX_REDRAWS, WORDING_STREAM, check_wording, subject_template
from .conditions import Edit, add_noise, derive_12, synthesize
from .findings import NEVER_IN_TRAINING, compatible, finding, finding_of_statement
from .interpreter import interpret
from .morphology import Template
from .plan import FINDING_PLANNERS, PlanContext, plan_edit

__all__ = ["COUNTERPART_STREAM", "HR_TOLERANCE_BPM", "make_counterpart_record"]

#: Seed word of the counterpart records' generators: a stream no cohort or combination record uses.
COUNTERPART_STREAM = 43
#: A counterpart is complete when its measured heart rate is within this many bpm of the requested one (the
#: benchmark's heart-rate tolerance).
HR_TOLERANCE_BPM = 5.0
#: a request at most this far (bpm) above a planner's rate cap is planned at the cap (its measured rate still lies
#: within :data:`HR_TOLERANCE_BPM`): a cohort record planned at a cap measures a little above it
CAP_SLACK_BPM = HR_TOLERANCE_BPM / 2
#: F-wave rates (/min) of the flutter planner (:func:`.plan._flutter`)
FLUTTER_PLAN_RATE = (250.0, 320.0)
#: group sizes (P waves per group) of the Wenckebach planner (:func:`.plan._wenckebach`)
WENCKEBACH_GROUPS = (3, 4, 5)


def _check_findings(findings: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(requested, planned)``: the requested finding ids without the overall statements (Normal / Borderline /
    Abnormal ECG, which the interpreter derives), and those plus sinus rhythm when no rhythm is given.

    Raises:
        ValueError: unknown ids, ids that cannot be synthesised (overall unreadable, not implemented, never in
            training), more than one rhythm or an incompatible set; the message names them.
    """
    if isinstance(findings, str):
        raise ValueError(f"findings must be a sequence of finding ids, got the string {findings!r}")
    ids = list(dict.fromkeys(findings))
    unknown = [f for f in ids if f in NEVER_IN_TRAINING or _catalogue(f) is None]
    if unknown:
        raise ValueError(f"unknown or unbuildable findings {unknown}: buildable ids are {sorted(FINDING_PLANNERS)}")
    requested = [f for f in ids if finding(f).family != "overall" or f == "unreadable_ecg"]
    unbuildable = [f for f in requested if f not in FINDING_PLANNERS]
    if unbuildable:
        raise ValueError(f"findings {unbuildable} cannot be synthesised: buildable ids are {sorted(FINDING_PLANNERS)}")
    ok, why = compatible(requested)
    if not ok:
        raise ValueError(f"findings {requested} cannot share a record: {why}")
    planned = list(requested)
    if not any(finding(f).family == "rhythm" for f in planned):
        planned.insert(0, "sinus_rhythm")
    return requested, planned


def _catalogue(fid: str):
    try:
        return finding(fid)
    except KeyError:
        return None


def _core(fids: Sequence[str]) -> set[str]:
    """The finding ids of a report without its overall statement."""
    return {f for f in fids if finding(f).family != "overall"}


def _flutter_rate(e: Edit, hr: float) -> str:
    """Set flutter's conduction ratio and F-wave rate for a ventricular rate ``hr`` (module docstring)."""
    lo, hi = FLUTTER_PLAN_RATE
    ratios = [e.flutter_conduction] + [k for k in (2, 3, 4) if k != e.flutter_conduction]
    fitting = [k for k in ratios if lo <= hr * k <= hi]
    k = fitting[0] if fitting else min(ratios, key=lambda k: abs(float(np.clip(hr * k, lo, hi)) - hr * k))
    e.flutter_conduction = int(k)
    e.flutter_rate = float(np.clip(hr * k, lo, hi))
    e.hr = e.flutter_rate / k
    note = f"atrial flutter: F waves {e.flutter_rate:.0f}/min, {k}:1 conduction"
    return note if fitting else note + f" (no ratio puts {hr:.0f} bpm x ratio in {lo:.0f}-{hi:.0f}/min)"


def _wenckebach_limits(e: Edit, ctx: PlanContext) -> tuple[float, float]:
    """The Wenckebach planner's P-rate limits for this template and findings: the planner run on copies of the edit
    at a very low and a very high rate (a throwaway generator: its group-size draw is not used)."""
    plan = FINDING_PLANNERS["av_block_2_mobitz1"]
    bounds = []
    for rate in (1.0, 1000.0):
        probe = dataclasses.replace(e, hr=rate)
        plan(probe, dataclasses.replace(ctx, rng=np.random.default_rng(0)))
        bounds.append(probe.hr)
    return bounds[0], bounds[1]


def _wenckebach_rate(e: Edit, hr: float, ctx: PlanContext) -> str:
    """Set the Wenckebach P rate and group size for a ventricular rate ``hr`` (module docstring)."""
    lo, hi = _wenckebach_limits(e, ctx)
    groups = [e.wenckebach] + [n for n in WENCKEBACH_GROUPS if n != e.wenckebach]

    def miss(n: int) -> float:  # how far the P rate of group size n lies outside the limits (0: inside)
        p = hr * n / (n - 1)
        # the planner's rule: groups short enough that 10 s hold two blocked P waves
        too_long = max(0, n - max(3, int(4.0 * p / 60)))
        return max(lo - p, p - hi, 0.0) + 100.0 * too_long

    n = min(groups, key=miss)  # the planned size first among equals (min keeps the first)
    e.wenckebach = int(n)
    e.hr = hr * n / (n - 1)
    note = f"Wenckebach: P waves {e.hr:.0f}/min, {n}:{n - 1} conduction"
    return note if miss(n) == 0 else note + f" (outside the planner's P-rate limits {lo:.0f}-{hi:.0f}/min)"


def _set_rate(e: Edit, hr: float, planned: Sequence[str], ctx: PlanContext) -> str:
    """Give the planned edit ``e`` the ventricular rate ``hr`` (bpm); returns what was done ("" when the rate is
    simply the edit's rate)."""
    if "atrial_flutter" in planned:
        return _flutter_rate(e, hr)
    if "av_block_2_mobitz1" in planned:
        return _wenckebach_rate(e, hr, ctx)
    if e.hr < hr - 1e-9:
        cap = e.hr
        if hr - cap <= CAP_SLACK_BPM:  # the cap still meets the request: the finding stays readable
            return f"planned at the planners' cap of {cap:.1f} bpm for {', '.join(planned)} (requested {hr:.1f})"
        e.hr = hr
        return f"rate above the planners' cap of {cap:.0f} bpm for {', '.join(planned)}"
    return ""


def _draw(
    tpl: Template, planned: list[str], rng: np.random.Generator, patient: tuple[float, str], hr: float
) -> dict[str, Any]:
    """One draw: plan, set the rate, synthesise and interpret. Returns the signal, edit, interpretation, said
    findings, measured rate and note."""
    age, sex = patient
    guess = hr * 4 / 3 if "av_block_2_mobitz1" in planned else hr  # a P rate for the planner to size groups with
    edit = plan_edit(planned, tpl, rng, age, sex, hr=guess)
    note = _set_rate(edit, hr, planned, PlanContext(tpl, rng, age, sex, frozenset(planned)))
    sig = derive_12(add_noise(synthesize(tpl, edit, rng), edit, rng))
    interp = interpret(sig, sex=sex)
    measured = interp.measurements.get("hr")
    return {
        "signal": sig,
        "edit": edit,
        "interp": interp,
        "said": [finding_of_statement(s) for s in interp.statements],
        "measured_hr": float(measured) if measured is not None else math.nan,
        "note": note,
    }


def make_counterpart_record(
    seed: int,
    index: int,
    *,
    template_seed: int,
    findings: Sequence[str],
    hr: float,
    age: float,
    sex: str,
    wording: str = "bank",
) -> dict[str, Any]:
    """The requested findings at the requested heart rate on the morphology template of GAN seed ``template_seed``
    (a twin-layout subject's ``template`` in ``cohort_labels.csv``), for a patient of ``age`` (years) and ``sex``
    ("M" / "F"); built and redrawn as the module docstring says.

    ``findings``: finding ids (:mod:`.findings`); sinus rhythm is added when no rhythm is given; the overall ids
    (normal / borderline / abnormal ECG) may be given (a cohort record's ``findings`` label holds one) and are
    neither planned nor compared. ``hr``: the ventricular rate (bpm) the record's measurements should read.

    Returns the keys of :func:`.build.make_combination_record` (``index``, ``signal`` (12, 5000) float32 mV at
    500 Hz in canonical lead order, ``requested``, ``intended``, ``findings`` (said), ``target_hr`` (the edit's
    rate: the P rate of a Wenckebach record), ``age``, ``sex``, ``statements``, ``measurements``) plus
    ``template`` (``template_seed``), ``requested_hr``, ``measured_hr`` (NaN when the record could not be read),
    ``findings_match`` (the interpreter says exactly the requested findings), ``hr_match`` (within
    :data:`HR_TOLERANCE_BPM`), ``complete`` (both), ``rate_note`` and ``draws`` (how many edits were drawn).

    Raises:
        ValueError: bad findings (:func:`_check_findings`, naming them), ``hr`` not a positive finite number,
            ``sex`` not "M" / "F", or ``wording`` not one of the cohort's wordings.
    """
    check_wording(wording)
    requested, planned = _check_findings(findings)
    if not (isinstance(hr, (int, float, np.floating)) and math.isfinite(hr) and hr > 0):
        raise ValueError(f"hr must be a positive number of beats per minute, got {hr!r}")
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")
    hr = float(hr)
    rng = np.random.default_rng([seed, COUNTERPART_STREAM, index])
    tpl = subject_template(int(template_seed), None, f"counterpart record {index} (template {template_seed})")
    best, best_key, draws = None, None, 0
    for _ in range(MAX_REDRAWS):
        d = _draw(tpl, planned, rng, (float(age), sex), hr)
        draws += 1
        d["findings_match"] = _core(d["said"]) == set(planned)
        d["hr_match"] = bool(abs(d["measured_hr"] - hr) <= HR_TOLERANCE_BPM)  # NaN: False
        key = (
            d["findings_match"] and d["hr_match"],
            d["findings_match"],
            -np.nan_to_num(abs(d["measured_hr"] - hr), nan=1e9),
        )
        if best_key is None or key > best_key:
            best, best_key = d, key
        if d["findings_match"] and d["hr_match"]:
            break
    statements = best["interp"].statements
    if wording == "bank":
        from .wordings import word_statement

        wrng = np.random.default_rng([seed, COUNTERPART_STREAM, index, WORDING_STREAM])
        statements = [word_statement(s, wrng, "train") for s in statements]
    return {
        "index": index,
        "signal": best["signal"].astype(np.float32),
        "requested": requested,
        "intended": planned,
        "findings": best["said"],
        "complete": bool(best["findings_match"] and best["hr_match"]),
        "findings_match": bool(best["findings_match"]),
        "hr_match": bool(best["hr_match"]),
        "target_hr": round(float(best["edit"].hr), 1),
        "requested_hr": hr,
        "measured_hr": best["measured_hr"],
        "template": int(template_seed),
        "age": float(age),
        "sex": sex,
        "statements": statements,
        "measurements": best["interp"].measurements,
        "rate_note": best["note"],
        "draws": draws,
    }

"""The pre-rendered explorer for the static book: a grid of conditions (class × heart rate × sex), each generated
ECG as a PNG with its measurements, and one self-contained HTML page with plain JS controls to pick a condition.

The page needs no server, no network and no CDN: the condition table is inlined as JSON, the images are files
next to it (``img/ecg_000.png``), and the script only swaps the image source and the text. Layout written by
:func:`write_explorer`::

    out_dir/index.html      the page
    out_dir/conditions.json one row per condition: index, class, statement, report, hr (requested), sex, age, seed,
                            image, measured_hr/pr/qrs/qt/qtc/axis, reason, reading, agree, guidance_scale, steps, sampler
    out_dir/img/ecg_NNN.png the ECG of condition NNN on standard paper (25 mm/s, 10 mm/mV)
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..eval.classifiers import labels_for_reports
from ..eval.taxonomy import EVAL_CLASSES, class_statement
from ..fileio import atomic_write_text
from ..viz.ecgplot import plot_12lead
from .explorer import FAST_SAMPLER, FAST_STEPS, MEASUREMENTS, Explorer, agreement, measure_ecg, read_ecg

__all__ = ["grid_conditions", "render_grid", "write_explorer_html", "write_explorer"]


def grid_conditions(
    records: pd.DataFrame,
    *,
    max_classes: int = 13,
    hr_quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    sexes: Sequence[str] = ("F", "M"),
    hr_round: float = 5.0,
) -> pd.DataFrame:
    """The grid: for each benchmark class (:data:`~diffusets_core.eval.taxonomy.EVAL_CLASSES`) present in
    ``records``, most frequent first (at most ``max_classes``): the most frequent report that names this class
    and no other (else the most frequent that names it), the heart rates of those records at ``hr_quantiles``
    (rounded to ``hr_round`` bpm, duplicates dropped, so a class has 1–3 rates), each sex, and their median age
    (years, rounded).

    Returns ``index, class, statement, report, hr, sex, age`` (``index`` 0..N-1, the row's position;
    ``statement`` the class's statement as the cohort interpreter writes it)."""

    if records is None or not len(records):
        raise ValueError("grid_conditions: no records to take classes, reports and heart rates from")
    recs = records.reset_index(drop=True)
    findings = recs["findings"].tolist() if "findings" in recs.columns else None
    lab, names = labels_for_reports(recs["report"].astype(str).tolist(), findings, EVAL_CLASSES)
    lab = np.nan_to_num(lab).astype(bool)
    order = np.argsort(-lab.sum(axis=0), kind="stable")
    rows = []
    for j in [j for j in order if lab[:, j].any()][:max_classes]:
        cls = names[j]
        only = lab[:, j] & (lab.sum(axis=1) == 1)
        part = recs[only] if only.any() else recs[lab[:, j]]
        report = str(part["report"].value_counts().index[0])
        same = part[part["report"] == report]
        hrs = sorted(
            dict.fromkeys(
                float(hr_round * round(q / hr_round))
                for q in same["hr"].astype(float).quantile(list(hr_quantiles)).to_numpy()
            )
        )
        age = float(round(same["age"].astype(float).median()))
        for hr in hrs:
            for sex in sexes:
                rows.append(
                    {
                        "class": cls,
                        "statement": class_statement(cls),
                        "report": report,
                        "hr": hr,
                        "sex": sex,
                        "age": age,
                    }
                )
    grid = pd.DataFrame(rows, columns=["class", "statement", "report", "hr", "sex", "age"])
    grid.insert(0, "index", np.arange(len(grid)))
    return grid


def render_grid(
    explorer: Explorer,
    grid: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    steps: int = FAST_STEPS,
    sampler: str = FAST_SAMPLER,
    guidance_scale: float | None = None,
    batch_size: int = 32,
    dpi: int = 80,
) -> pd.DataFrame:
    """Generate one ECG per grid row (seed ``seed + index``, in batches), write ``img/ecg_NNN.png``, and return
    the grid (``hr`` is the requested rate) with ``seed, image``, the measurements as ``measured_<key>`` for each
    :data:`~diffusets_core.apps.explorer.MEASUREMENTS` key (``measured_hr`` in bpm, intervals in ms, axis in degrees),
    ``reason``, ``reading`` (the interpreter's statements, `` / ``-joined) and ``agree`` (the reading names the
    requested classes and no other)."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    (out_dir / "img").mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "img").glob("ecg_*.png"):  # a smaller grid than last time must not leave stale images
        old.unlink()
    grid = grid.reset_index(drop=True)
    if not np.array_equal(grid["index"].to_numpy(), np.arange(len(grid))):
        raise ValueError("grid['index'] must be 0..N-1 in row order (grid_conditions writes it)")
    rows = []
    t_gen = t_rest = 0.0
    for start in range(0, len(grid), batch_size):
        part = grid.iloc[start : start + batch_size]
        t0 = time.perf_counter()
        out = explorer.pipe(
            part["report"].tolist(),
            age=part["age"].astype(float).tolist(),
            sex=part["sex"].tolist(),
            hr=part["hr"].astype(float).tolist(),
            seed=seed + start,
            num_inference_steps=steps,
            sampler=sampler,
            guidance_scale=guidance_scale,
            batch_size=batch_size,
        )
        t1 = time.perf_counter()
        for k, (_, g) in enumerate(part.iterrows()):
            sig = np.asarray(out.signals[k])
            meas = measure_ecg(sig, out.fs)
            reading = read_ecg(sig, out.fs)
            agree = agreement(g["report"].split("|"), reading)
            image = f"img/ecg_{int(g['index']):03d}.png"
            title = (
                f"generated | {g['report'].replace('|', ' / ')} | {g['sex']}, {g['age']:.0f} y, HR {g['hr']:.0f} "
                f"| seed {seed + int(g['index'])}"
            )
            fig = plot_12lead(sig, out.fs, title=title, dpi=dpi)
            fig.savefig(out_dir / image, dpi=dpi)
            plt.close(fig)
            rows.append(
                {
                    **g.to_dict(),
                    "seed": seed + int(g["index"]),
                    "image": image,
                    **{f"measured_{k}": v for k, v in meas.items() if k in MEASUREMENTS},
                    "reason": meas["reason"],
                    "reading": " / ".join(reading),
                    "agree": bool(len(agree)) and bool(agree["agree"].all()),
                    "guidance_scale": float(out.conditions["guidance_scale"].iloc[k])
                    if "guidance_scale" in out.conditions
                    else guidance_scale,
                    "steps": steps,
                    "sampler": sampler,
                }
            )
        t_rest += time.perf_counter() - t1
        t_gen += t1 - t0
    table = pd.DataFrame(rows)
    table.attrs["seconds"] = {"generate": t_gen, "measure_and_draw": t_rest}
    return table


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1rem; color: #222; }
fieldset { display: inline-block; border: 1px solid #ccc; margin: 0 .5rem .5rem 0; padding: .3rem .6rem; }
label { margin-right: .6rem; }
#ecg { max-width: 100%; border: 1px solid #ddd; display: block; margin: .5rem 0; }
table { border-collapse: collapse; margin: .4rem 0; }
td, th { border: 1px solid #ccc; padding: .15rem .5rem; text-align: right; }
.ok { color: #176f2c; } .no { color: #a31515; }
small { color: #555; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<p>__INTRO__</p>
<form id="controls" onsubmit="return false">
<fieldset><legend>Class (report)</legend><select id="cls"></select></fieldset>
<fieldset><legend>Heart rate (bpm)</legend><select id="hr"></select></fieldset>
<fieldset><legend>Sex</legend><select id="sex"></select></fieldset>
</form>
<p id="report"></p>
<img id="ecg" alt="generated 12-lead ECG" src="">
<table id="measurements"><thead><tr></tr></thead><tbody><tr></tr></tbody></table>
<p id="reading"></p>
<p><small id="provenance"></small></p>
<script id="explorer-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("explorer-data").textContent);
  var rows = data.rows, cols = data.measurements;
  var sel = {cls: document.getElementById("cls"), hr: document.getElementById("hr"), sex: document.getElementById("sex")};
  function uniq(xs) { var s = []; xs.forEach(function (x) { if (s.indexOf(x) < 0) s.push(x); }); return s; }
  function fill(el, values, fmt) {
    var keep = el.value; el.innerHTML = "";
    values.forEach(function (v) { var o = document.createElement("option"); o.value = String(v); o.textContent = fmt ? fmt(v) : String(v); el.appendChild(o); });
    if (values.map(String).indexOf(keep) >= 0) el.value = keep;
  }
  function fmt(v, d) { return (v === null || v === undefined || !isFinite(v)) ? "\\u2013" : Number(v).toFixed(d || 0); }
  function esc(s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
  var head = document.querySelector("#measurements thead tr"), body = document.querySelector("#measurements tbody tr");
  cols.forEach(function (c) { var th = document.createElement("th"); th.textContent = c.label + " (" + c.unit + ")"; head.appendChild(th);
                              var td = document.createElement("td"); td.id = "m-" + c.key; body.appendChild(td); });
  var names = {}; rows.forEach(function (r) { names[r["class"]] = r.statement || r["class"]; });
  fill(sel.cls, uniq(rows.map(function (r) { return r["class"]; })), function (v) { return names[v]; });
  function update() {
    var inCls = rows.filter(function (r) { return r["class"] === sel.cls.value; });
    fill(sel.hr, uniq(inCls.map(function (r) { return r.hr; })), function (v) { return fmt(v); });
    var inHr = inCls.filter(function (r) { return String(r.hr) === sel.hr.value; });
    fill(sel.sex, uniq(inHr.map(function (r) { return r.sex; })));
    var r = inHr.filter(function (x) { return x.sex === sel.sex.value; })[0];
    if (!r) return;
    var img = document.getElementById("ecg");
    img.src = r.image; img.alt = "generated 12-lead ECG: " + r.report; img.dataset.index = r.index;
    document.getElementById("report").innerHTML = "<b>Requested report:</b> " + esc(r.report.split("|").join(" / ")) +
      " &mdash; " + esc(r.sex) + ", " + fmt(r.age) + " y, HR " + fmt(r.hr) + " bpm requested, seed " + r.seed;
    cols.forEach(function (c) { document.getElementById("m-" + c.key).textContent = fmt(r["measured_" + c.key]); });
    document.getElementById("measurements").dataset.index = r.index;
    document.getElementById("reading").innerHTML = "<b>Interpreter's reading of this ECG:</b> <i>" + esc(r.reading) + "</i> " +
      (r.agree ? "<span class='ok'>(names the requested classes)</span>" : "<span class='no'>(differs from the request)</span>");
    document.getElementById("provenance").textContent = r.sampler + ", " + r.steps + " steps, guidance " + fmt(r.guidance_scale, 1) +
      (r.reason ? "; measurement notes: " + r.reason : "");
  }
  ["cls", "hr", "sex"].forEach(function (k) { sel[k].addEventListener("change", update); });
  update();
}());
</script>
</body>
</html>
"""


def _clean(v: Any) -> Any:
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


def write_explorer_html(
    table: pd.DataFrame, out_dir: str | os.PathLike, *, title: str = "ECG explorer", intro: str = ""
) -> Path:
    """``out_dir/index.html`` (controls, image, measurements, reading) and ``out_dir/conditions.json`` from a
    :func:`render_grid` table. Image paths in ``table['image']`` are relative to ``out_dir`` and must exist."""
    out_dir = Path(out_dir)
    missing = [p for p in table["image"] if not (out_dir / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images of the table are not in {out_dir}, e.g. {missing[0]}")
    rows = [{k: _clean(v) for k, v in r.items()} for r in table.to_dict("records")]
    atomic_write_text(out_dir / "conditions.json", json.dumps(rows, indent=1))
    data = {
        "rows": rows,
        "measurements": [{"key": k, "label": lab, "unit": unit} for k, (lab, unit) in MEASUREMENTS.items()],
    }
    # inline JSON inside <script>: "</" must not close the tag early
    blob = json.dumps(data).replace("</", "<\\/")
    page = (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__INTRO__", html.escape(intro))
        .replace("__DATA__", blob)
    )
    path = out_dir / "index.html"
    atomic_write_text(path, page)
    return path


def write_explorer(
    explorer: Explorer,
    grid: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    title: str = "ECG explorer",
    intro: str = "",
    **render_kw: Any,
) -> pd.DataFrame:
    """:func:`render_grid` then :func:`write_explorer_html`; returns the table (``attrs['seconds']`` timings)."""
    table = render_grid(explorer, grid, out_dir, **render_kw)
    write_explorer_html(table, out_dir, title=title, intro=intro)
    return table


def grid_intro(grid: pd.DataFrame, *, profile: str, sampler: str, steps: int) -> str:
    """The pre-rendered explorer's one-line introduction: how many ECGs, classes, and how they were made."""
    return (
        f"{len(grid)} generated ECGs: {grid['class'].nunique()} classes x heart rate x sex, "
        f"profile {profile}, {sampler} {steps} steps. Pick a condition."
    )


def per_class_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per statement of a rendered grid (:func:`write_explorer`'s table): ECGs, requested heart rates, median
    measured heart rate, and the share the interpreter read as requested."""
    return table.groupby("statement", sort=False).agg(
        ECGs=("index", "size"),
        requested_HR=("hr", lambda h: ", ".join(f"{x:.0f}" for x in sorted(set(h)))),
        measured_HR_median=("measured_hr", "median"),
        read_as_requested=("agree", "mean"),
    )

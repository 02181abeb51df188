"""Knowledge discovery by controlled generation, the embedding-space view, and education helpers.

*Controlled generation*: an :class:`Experiment` is a pair of conditions that differ in ONE factor (a report
statement added, the age, or the sex). Both arms are generated with the same seeds, so ECG ``i`` of the case
and ECG ``i`` of the control share their initial noise; the feature shifts are then tested with paired
statistics (``d_z`` with a bootstrap CI over pairs, Wilcoxon signed-rank p).

*Embedding view*: PCA of the run's report embeddings (:func:`embedding_pca`), optionally with extra texts
(e.g. rare-disease descriptions) projected into the same plane.

*Education*: report classes for the gallery (:func:`report_class`, :func:`gallery_classes`) and the
"spot the synthetic" quiz (:func:`make_quiz`, :func:`quiz_answers_markdown`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.preprocess import MODEL_FS
from ..data.store import SignalStore
from ..text.embed import load_run_embeddings
from .rare_disease import measure
from .stats import compare

__all__ = [
    "Experiment",
    "DEFAULT_FEATURES",
    "add_statement",
    "default_experiments",
    "run_experiment",
    "run_experiments",
    "embedding_pca",
    "is_rhythm_statement",
    "report_class",
    "gallery_classes",
    "make_quiz",
    "quiz_answers_markdown",
    "experiments_table",
    "statements_seen",
    "generate_for_classes",
    "quiz_items",
]

DEFAULT_FEATURES = ("hr_nk", "qtc_bazett_ms", "t_amp_II", "t_amp_V2", "qrs_ms")


@dataclass
class Experiment:
    """Case vs control with one factor changed. ``case``/``control``: dicts with report, age, sex, hr."""

    name: str
    factor: str  # "statement", "age", "sex" (free text)
    case: dict
    control: dict
    label: str = ""  # e.g. "+Hyperkalemia", "age 75 vs 25"

    def changed(self) -> list[str]:
        return [k for k in ("report", "age", "sex", "hr") if self.case.get(k) != self.control.get(k)]


def add_statement(report: str, statement: str, position: int = 1) -> str:
    """Insert ``statement`` into the ``|``-joined ``report`` at ``position`` (1 = after the rhythm statement)."""
    parts = [p for p in report.split("|")]
    position = max(0, min(position, len(parts)))
    return "|".join(parts[:position] + [statement] + parts[position:])


def default_experiments(
    base_report: str,
    *,
    statements: Sequence[str] = ("Hyperkalemia", "Hypokalemia", "Hypocalcemia"),
    ages: tuple[float, float] = (25, 75),
    sexes: tuple[str, str] = ("M", "F"),
    age: float = 50,
    sex: str = "M",
    hr: float = 75,
    position: int = 1,
) -> list[Experiment]:
    """The notebook's experiment set around ``base_report`` (a normal report of the run):

    * each of ``statements`` added to the report (the control is the base report), fixed patient;
    * older vs younger (``ages[1]`` vs ``ages[0]``) at the base report, fixed sex and HR;
    * ``sexes[1]`` vs ``sexes[0]`` at the base report, fixed age and HR.
    """
    base = {"report": base_report, "age": age, "sex": sex, "hr": hr}
    exps = [
        Experiment(
            f"+{s}",
            "statement",
            {**base, "report": add_statement(base_report, s, position)},
            dict(base),
            f"'{s}' added to the report",
        )
        for s in statements
    ]
    exps.append(
        Experiment(
            f"age {ages[1]:g} vs {ages[0]:g}",
            "age",
            {**base, "age": ages[1]},
            {**base, "age": ages[0]},
            f"age {ages[1]:g} vs {ages[0]:g} y",
        )
    )
    exps.append(
        Experiment(
            f"sex {sexes[1]} vs {sexes[0]}",
            "sex",
            {**base, "sex": sexes[1]},
            {**base, "sex": sexes[0]},
            f"sex {sexes[1]} vs {sexes[0]}",
        )
    )
    return exps


def _generate(pipe: Any, cond: dict, n: int, seed: int, steps: int, sampler: str, **kw: Any):
    return pipe(
        [cond["report"]] * n,
        age=cond["age"],
        sex=cond["sex"],
        hr=cond["hr"],
        num_ecgs=n,
        seed=seed,
        num_inference_steps=steps,
        sampler=sampler,
        **kw,
    )


def run_experiment(
    pipe: Any,
    exp: Experiment,
    n: int,
    seed: int = 0,
    *,
    steps: int = 50,
    sampler: str = "ddim",
    features: Sequence[str] = DEFAULT_FEATURES,
    n_boot: int = 2000,
    **pipe_kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate both arms with seeds ``seed .. seed+n-1`` and compare ``features`` pairwise.

    Returns ``(table, measured)``: ``table`` one row per feature (experiment, factor, feature + the columns of
    :func:`~diffusets_core.apps.stats.compare`); ``measured`` one row per ECG (experiment, arm, seed, features).
    """

    frames = {}
    for arm, cond in (("case", exp.case), ("control", exp.control)):
        out = _generate(pipe, cond, n, seed, steps, sampler, **pipe_kwargs)
        f = measure(out.signals, float(getattr(out, "fs", MODEL_FS)))
        f.insert(0, "seed", out.conditions["seed"].to_numpy())
        f.insert(0, "arm", arm)
        f.insert(0, "experiment", exp.name)
        frames[arm] = f
    rows = []
    for i, feat in enumerate(features):
        a = frames["case"][feat].to_numpy(float) if feat in frames["case"] else np.full(n, np.nan)
        b = frames["control"][feat].to_numpy(float) if feat in frames["control"] else np.full(n, np.nan)
        rows.append(
            {
                "experiment": exp.name,
                "factor": exp.factor,
                "feature": feat,
                **compare(a, b, paired=True, n_boot=n_boot, seed=seed + i),
            }
        )
    return pd.DataFrame(rows), pd.concat(frames.values(), ignore_index=True)


def run_experiments(
    pipe: Any, experiments: Sequence[Experiment], n: int, seed: int = 0, **kw: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`run_experiment` for each experiment; the tables concatenated."""
    tables, measured = [], []
    for exp in experiments:
        t, m = run_experiment(pipe, exp, n, seed, **kw)
        tables.append(t)
        measured.append(m)
    return pd.concat(tables, ignore_index=True), pd.concat(measured, ignore_index=True)


# -- embedding space -----------------------------------------------------------------------------------------------
@dataclass
class PCAView:
    """``points``: record_id, report, hr, age, sex, split, pc1, pc2. ``explained``: variance ratio of PC1, PC2."""

    points: pd.DataFrame
    explained: tuple[float, float]
    mean: np.ndarray = field(repr=False)
    components: np.ndarray = field(repr=False)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """``(k, 2)`` coordinates of extra vectors in the same plane."""
        return (np.asarray(vectors, float) - self.mean) @ self.components.T


def embedding_pca(run_dir: Any) -> PCAView:
    """PCA (2 components, SVD of the centred matrix) of the run's report embeddings, one point per record."""

    ids, mat, _ = load_run_embeddings(run_dir)
    mat = np.asarray(mat, float)
    mean = mat.mean(axis=0)
    x = mat - mean
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    if comps.shape[0] < 2:
        comps = np.vstack([comps, np.zeros((2 - comps.shape[0], mat.shape[1]))])
    var = s**2
    tot = float(var.sum()) or 1.0
    ev = tuple(float(v / tot) for v in (list(var[:2]) + [0.0, 0.0])[:2])
    xy = x @ comps.T
    recs = SignalStore(run_dir).records().set_index("record_id")
    pts = pd.DataFrame({"record_id": ids, "pc1": xy[:, 0], "pc2": xy[:, 1]})
    pts = pts.join(recs[["report", "hr", "age", "sex", "split"]], on="record_id")
    return PCAView(pts, ev, mean, comps)


# -- education: classes and quiz ------------------------------------------------------------------------------------
_RHYTHM = re.compile(
    r"rhythm|sinus|fibrillation|flutter|tachycardia|bradycardia|paced|pacing|junctional|"
    r"arrhythmia|ectopic atrial|escape",
    re.I,
)


def is_rhythm_statement(statement: str) -> bool:
    return bool(_RHYTHM.search(statement))


def report_class(report: str) -> str:
    """The first non-rhythm statement of a ``|``-joined report, else its leading statement."""
    parts = [p.strip() for p in str(report).split("|") if p.strip()]
    if not parts:
        return ""
    for p in parts:
        if not is_rhythm_statement(p):
            return p
    return parts[0]


def gallery_classes(records: pd.DataFrame, max_classes: int = 8) -> pd.DataFrame:
    """Classes of ``records`` by :func:`report_class`, most frequent first (at most ``max_classes``):
    columns ``class, count, example_index`` (index into ``records`` of the first record of that class)."""
    cls = records["report"].map(report_class)
    counts = cls.value_counts()
    rows = []
    for c, k in counts.iloc[:max_classes].items():
        rows.append({"class": c, "count": int(k), "example_index": int(np.flatnonzero(cls.to_numpy() == c)[0])})
    return pd.DataFrame(rows, columns=["class", "count", "example_index"])


def make_quiz(n_real: int, n_generated: int, seed: int = 0, n_items: int = 6) -> pd.DataFrame:
    """A seeded quiz layout: ``n_items`` items mixing real and generated ECGs, shuffled, labelled A, B, ...

    Returns ``label, source ("real"/"generated"), index`` (index into the real or the generated pool). Half the
    items (rounded down) are real when both pools are large enough.
    """
    rng = np.random.default_rng(seed)
    k_real = min(n_real, n_items // 2)
    k_gen = min(n_generated, n_items - k_real)
    k_real = min(n_real, n_items - k_gen)
    items = [("real", int(i)) for i in rng.choice(n_real, size=k_real, replace=False)] + [
        ("generated", int(i)) for i in rng.choice(n_generated, size=k_gen, replace=False)
    ]
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    labels = [chr(ord("A") + i) for i in range(len(items))]
    return pd.DataFrame({"label": labels, "source": [s for s, _ in items], "index": [i for _, i in items]})


def quiz_answers_markdown(quiz: pd.DataFrame, notes: Sequence[str] | None = None, summary: str = "Answers") -> str:
    """The answers as an HTML ``<details>`` block (collapsed; renders in Jupyter and Jupyter Book without
    extensions)."""
    lines = []
    for i, r in quiz.reset_index(drop=True).iterrows():
        extra = f" — {notes[i]}" if notes is not None and i < len(notes) and notes[i] else ""
        lines.append(f"<li><b>{r['label']}</b>: {r['source']}{extra}</li>")
    return f"<details>\n<summary>{summary}</summary>\n\n<ul>\n" + "\n".join(lines) + "\n</ul>\n\n</details>\n"


def experiments_table(experiments: Sequence[Experiment]) -> pd.DataFrame:
    """One row per experiment: its name, the factors changed, and the case and control conditions as text."""
    return pd.DataFrame(
        [
            {
                "experiment": e.name,
                "changed": ", ".join(e.changed()),
                "case": f"{e.case['report']} | {e.case['sex']}, {e.case['age']} y, {e.case['hr']} bpm",
                "control": f"{e.control['report']} | {e.control['sex']}, {e.control['age']} y, {e.control['hr']} bpm",
            }
            for e in experiments
        ]
    )


def statements_seen(records: pd.DataFrame, statements: Sequence[str]) -> list[str]:
    """The ``statements`` that occur (case-insensitive, as a whole statement) in the reports of ``records``."""
    known = set(records["report"].str.split("|").explode().str.strip().str.lower())
    return [s for s in statements if s.lower() in known]


def generate_for_classes(
    pipe: Any, records: pd.DataFrame, classes: pd.DataFrame, n_generated: int, *, steps: int, sampler: str, seed: int
) -> Any:
    """``n_generated`` ECGs for the report and patient of each class's example record (``classes`` from
    :func:`gallery_classes`), in class order, one batch with seeds from ``seed``."""
    rows = [records.iloc[i] for i in classes["example_index"]]
    return pipe(
        [r["report"] for r in rows for _ in range(n_generated)],
        age=[float(r["age"]) for r in rows for _ in range(n_generated)],
        sex=[r["sex"] for r in rows for _ in range(n_generated)],
        hr=[float(r["hr"]) for r in rows for _ in range(n_generated)],
        num_inference_steps=steps,
        sampler=sampler,
        seed=seed,
    )


def quiz_items(
    pipe: Any,
    quiz: pd.DataFrame,
    records: pd.DataFrame,
    signals: Any,
    fs: float,
    *,
    steps: int,
    sampler: str,
    seed: int,
) -> list[tuple[np.ndarray, float, str]]:
    """The quiz's ECGs in order as ``(signal, fs, note)``: real items are ``signals[index]`` (note: the record id);
    generated ones are made in one batch for their records' report and patient with seeds from ``seed``
    (note: the seed)."""
    gen_idx = quiz.loc[quiz["source"] == "generated", "index"].tolist()
    qgen = None
    if gen_idx:
        g = records.iloc[gen_idx]
        qgen = pipe(
            g["report"].tolist(),
            age=g["age"].astype(float).tolist(),
            sex=g["sex"].tolist(),
            hr=g["hr"].astype(float).tolist(),
            num_inference_steps=steps,
            sampler=sampler,
            seed=seed,
        )
    items, k = [], 0
    for _, q in quiz.iterrows():
        r = records.iloc[int(q["index"])]
        if q["source"] == "real":
            items.append((np.asarray(signals[int(q["index"])]), fs, f"test record {r['record_id']}"))
        else:
            items.append((qgen.signals[k], qgen.fs, f"seed {int(qgen.conditions['seed'].iloc[k])}"))
            k += 1
    return items

"""rare_disease / knowledge on a fake pipeline (seeded synthetic ECGs whose T waves follow the report) and the
embedding PCA / gallery helpers on a tiny prepared run."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from diffusets_core.apps import knowledge as K
from diffusets_core.apps import rare_disease as R
from diffusets_core.apps import stats
from diffusets_core.apps.descriptions import describe_condition

FS = 102.4


def synth_ecg(seed: int, hr: float = 75.0, t_amp: float = 0.3, t_sigma: float = 0.045, n: int = 1024) -> np.ndarray:
    """(12, n) mV: Gaussian P, QRS and T waves on every lead (lead-scaled), seeded noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    rr = 60.0 / hr
    x = np.zeros(n)
    for r in np.arange(0.3 + rng.uniform(0, 0.1), t[-1], rr):
        x += 0.12 * np.exp(-0.5 * ((t - r + 0.16) / 0.02) ** 2)
        x += 1.2 * np.exp(-0.5 * ((t - r) / 0.012) ** 2)
        x += t_amp * np.exp(-0.5 * ((t - r - 0.26) / t_sigma) ** 2)
    gains = np.linspace(0.6, 1.2, 12)
    return (gains[:, None] * x[None] + rng.normal(0, 0.004, (12, n))).astype(np.float32)


class FakePipe:
    """Same call signature as DiffuSETSPipeline; reports mentioning peaked T waves/hyperkalemia get taller,
    narrower T waves. ECG i uses seed + i."""

    fs = FS

    def __call__(
        self, reports, *, age=50, sex="M", hr=75, num_ecgs=None, num_inference_steps=50, sampler="ddim", seed=0, **kw
    ):
        reports = [reports] if isinstance(reports, str) else list(reports)
        n = num_ecgs or len(reports)
        reports = reports * n if len(reports) == 1 else reports
        sigs = []
        for i, rep in enumerate(reports):
            jitter = np.random.default_rng(seed + i).normal(0, 0.03)
            peaked = "peaked" in rep.lower() or "hyperkalemia" in rep.lower()
            sigs.append(
                synth_ecg(
                    seed + i, hr=float(hr), t_amp=(0.6 if peaked else 0.3) + jitter, t_sigma=0.035 if peaked else 0.05
                )
            )
        cond = pd.DataFrame(
            {
                "report": reports,
                "sex": sex,
                "age": age,
                "hr": hr,
                "seed": [seed + i for i in range(n)],
                "sampler": sampler,
                "steps": num_inference_steps,
            }
        )
        return SimpleNamespace(signals=np.stack(sigs), fs=FS, conditions=cond)


def test_t_wave_shape_recovers_width_and_peakedness():
    sig = np.stack([synth_ecg(0, t_amp=0.3, t_sigma=0.05), synth_ecg(1, t_amp=0.6, t_sigma=0.035)])
    f = R.t_wave_shape(sig, FS, leads=("II", "V2"))
    fwhm_true = np.array([2.3548 * 0.05, 2.3548 * 0.035]) * 1000
    gain_ii = np.linspace(0.6, 1.2, 12)[1]
    np.testing.assert_allclose(f["t_fwhm_ms_II"], fwhm_true, rtol=0.12)
    peak_true = np.array([0.3, 0.6]) * gain_ii / (fwhm_true / 1000)
    np.testing.assert_allclose(f["t_peak_II"], peak_true, rtol=0.2)
    flat = R.t_wave_shape(np.zeros((1, 12, 1024)), FS)
    assert flat.isna().all(axis=None)


def test_normal_report_is_found_from_the_data():
    recs = pd.DataFrame(
        {
            "report": ["Sinus rhythm|Abnormal ECG"] * 5
            + ["Sinus tachycardia|Normal ECG"] * 2
            + ["Sinus rhythm|Normal ECG"] * 3
        }
    )
    assert R.normal_report(recs) == "Sinus rhythm|Normal ECG"
    assert (
        R.normal_report(pd.DataFrame({"report": ["A|Abnormal ECG"] * 3 + ["Sinus rhythm|Statement 1"]}))
        == "Sinus rhythm|Statement 1"
    )


def test_generate_condition_and_signature_table():
    desc = describe_condition("hyperkalemia")
    res = R.generate_condition(
        FakePipe(),
        desc.description,
        n=12,
        age=24,
        sex="M",
        hr=90,
        seed=0,
        control_report="Sinus rhythm|Normal ECG",
        steps=2,
    )
    f = res.features
    assert len(f) == 24 and set(f["group"]) == {"condition", "control"}
    assert f.loc[f.group == "control", "seed"].min() == 100_000 and not res.paired
    assert {"st_V1", "qtc_bazett_ms", "t_amp_V3", "t_peak_V3", "t_fwhm_ms_V3"} <= set(f.columns)
    assert res.case_signals.shape == (12, 12, 1024)
    table = R.signature_table(f, desc.signature, n_boot=300, condition=desc.name)
    cols = [
        "condition",
        "feature",
        "n_case",
        "n_control",
        "mean_case",
        "mean_control",
        "diff",
        "effect_name",
        "effect",
        "ci_lo",
        "ci_hi",
        "test",
        "p",
        "expected",
        "verdict",
    ]
    assert list(table.columns) == cols and len(table) == len(desc.signature)
    assert (table["verdict"] == stats.PRESENT).all(), table[["feature", "ci_lo", "ci_hi", "verdict"]]
    assert R.overall_verdict(table).startswith("signature present")
    # Brugada's ST signature is absent from the fake model: not found (never claimed)
    b = describe_condition("brugada")
    rb = R.generate_condition(
        FakePipe(), b.description, n=8, seed=0, control_report="Sinus rhythm|Normal ECG", paired=True
    )
    tb = R.signature_table(rb.features, b.signature, paired=True, n_boot=200)
    assert not (tb["verdict"] == stats.PRESENT).all()
    assert R.overall_verdict(tb).startswith("signature")


def test_knowledge_experiments_are_one_factor_and_paired():
    exps = K.default_experiments("Sinus rhythm|Normal ECG", statements=("Hyperkalemia",))
    assert [e.changed() for e in exps] == [["report"], ["age"], ["sex"]]
    assert exps[0].case["report"] == "Sinus rhythm|Hyperkalemia|Normal ECG"
    table, measured = K.run_experiments(
        FakePipe(), exps, n=8, seed=3, steps=2, n_boot=200, features=("t_amp_II", "hr_nk")
    )
    assert len(table) == 6 and set(table["experiment"]) == {e.name for e in exps}
    assert (table["test"] == "Wilcoxon signed-rank").all()
    assert measured.groupby(["experiment", "arm"])["seed"].apply(list).map(tuple).nunique() == 1  # same seeds
    hk = table[(table.experiment == "+Hyperkalemia") & (table.feature == "t_amp_II")].iloc[0]
    assert hk["ci_lo"] > 0
    age = table[(table.experiment == exps[1].name) & (table.feature == "t_amp_II")].iloc[0]
    assert age["diff"] == pytest.approx(0.0, abs=1e-6)  # the fake ignores age


def test_report_classes_and_quiz():
    assert (
        K.report_class("Sinus tachycardia|ST elevation, consider anterior injury|Abnormal ECG")
        == "ST elevation, consider anterior injury"
    )
    assert K.report_class("Sinus rhythm|Normal ECG") == "Normal ECG"
    assert K.report_class("Atrial fibrillation") == "Atrial fibrillation"
    recs = pd.DataFrame(
        {
            "report": [
                "Sinus rhythm|Normal ECG",
                "Sinus rhythm|Peaked T waves|Abnormal ECG",
                "Sinus tachycardia|Normal ECG",
            ]
        }
    )
    g = K.gallery_classes(recs, max_classes=8)
    assert g["class"].tolist() == ["Normal ECG", "Peaked T waves"] and g["example_index"].tolist() == [0, 1]
    q = K.make_quiz(10, 10, seed=0)
    assert q["label"].tolist() == list("ABCDEF") and (q["source"] == "real").sum() == 3
    assert q.equals(K.make_quiz(10, 10, seed=0)) and not q.equals(K.make_quiz(10, 10, seed=1))
    assert len(K.make_quiz(2, 10, seed=0)) == 6
    md = K.quiz_answers_markdown(q)
    assert md.startswith("<details>") and "<summary>Answers</summary>" in md and md.count("<li>") == 6


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from tests.data_trees import make_tiny_run, simple_mimic_records

    return make_tiny_run(tmp_path_factory.mktemp("apps"), simple_mimic_records(24, subjects=12))


def test_embedding_pca_on_a_run(tiny_run):
    view = K.embedding_pca(tiny_run)
    from diffusets_core.data.store import SignalStore

    n = len(SignalStore(tiny_run).records())
    assert len(view.points) == n and {"pc1", "pc2", "hr", "report"} <= set(view.points.columns)
    assert view.points["hr"].notna().all()
    assert 0 <= view.explained[1] <= view.explained[0] <= 1
    assert view.project(np.zeros((3, 32))).shape == (3, 2)


def test_overall_verdict_sentences():
    mk = lambda vs: pd.DataFrame({"verdict": vs})  # noqa: E731
    assert R.overall_verdict(mk([stats.PRESENT, stats.PRESENT])).startswith("signature present: 2 of 2")
    assert R.overall_verdict(mk([stats.PRESENT, stats.NOT_FOUND])).startswith("signature partly present: 1 of 2")
    assert R.overall_verdict(mk([stats.OPPOSITE, stats.NOT_FOUND])).startswith("signature not found: 0 of 2")
    few = stats.TOO_FEW.format(min_n=5)
    assert R.overall_verdict(mk([few, stats.NOT_MEASURABLE])).startswith("no verdict")
    assert R.overall_verdict(mk([])) == "no signature to test"

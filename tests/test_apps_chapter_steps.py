"""The chapters' steps that moved into the package: report pickers (05), sampler comparison and guidance step (04),
rare-disease novelty and signature steps (07), knowledge / gallery helpers (08, 09), explorer helpers (10)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from diffusets_core.apps import generation as G
from diffusets_core.apps import knowledge as K
from diffusets_core.apps import rare_disease as R
from diffusets_core.apps import sampling
from diffusets_core.apps.descriptions import describe_condition
from tests.test_apps_generation import FakePipe as _ScalarPipe
from tests.test_apps_generation import synth_ecg


class FakePipe(_ScalarPipe):
    """The rare-disease fake, also taking per-ECG lists of age / sex / heart rate (as the real pipeline does)."""

    def __call__(self, reports, *, age=50, sex="M", hr=75, num_ecgs=None, seed=0, **kw):
        if np.ndim(hr) == 0:
            return super().__call__(reports, age=age, sex=sex, hr=hr, num_ecgs=num_ecgs, seed=seed, **kw)
        sigs = np.stack([synth_ecg(seed + i, hr=float(h)) for i, h in enumerate(hr)])
        cond = pd.DataFrame(
            {"report": list(reports), "sex": sex, "age": age, "hr": hr, "seed": [seed + i for i in range(len(hr))]}
        )
        return SimpleNamespace(signals=sigs, fs=self.fs, conditions=cond)


def train_records():
    reps = (
        ["Sinus rhythm|Normal ECG"] * 4
        + ["Sinus bradycardia|Normal ECG"] * 2
        + ["Sinus bradycardia|LVH"]
        + ["Sinus rhythm|LVH"] * 2
    )
    return pd.DataFrame(
        {
            "report": reps,
            "hr": [70, 72, 74, 76, 50, 52, 54, 80, 90],
            "age": 50.0,
            "sex": "M",
            "record_id": [f"r{i}" for i in range(len(reps))],
        }
    )


def test_report_patient_grid_uses_the_median_rate_of_matching_training_records():
    test = pd.DataFrame(
        {"report": ["Sinus rhythm|LVH", "Sinus rhythm|LVH", "Unseen report", "Sinus rhythm|Normal ECG"]}
    )
    grid = G.report_patient_grid(test, train_records(), [("M", 63), ("F", 35)], n_reports=2)
    assert grid.to_dict("records") == [
        {"report": "Sinus rhythm|LVH", "sex": "M", "age": 63, "hr": 85},
        {"report": "Sinus rhythm|LVH", "sex": "F", "age": 35, "hr": 85},
        {"report": "Unseen report", "sex": "M", "age": 63, "hr": 72},  # no training record: median of all (72)
        {"report": "Unseen report", "sex": "F", "age": 35, "hr": 72},
    ]


def test_rate_reports_and_sweep_conditions():
    rr = G.rate_reports(train_records())
    assert G.most_frequent_report(train_records(), "sinus BRADYCARDIA") == "Sinus bradycardia|Normal ECG"
    assert rr.reports["tachy"] is None and rr.fixed == "Sinus rhythm|Normal ECG"
    assert [rr.matched(h) for h in (50, 60, 100, 101)] == [
        "Sinus bradycardia|Normal ECG",
        "Sinus rhythm|Normal ECG",
        "Sinus rhythm|Normal ECG",
        "Sinus rhythm|Normal ECG",
    ]  # no tachycardia report: the most frequent report
    sweep = G.hr_sweep_conditions(rr, [50, 150], 2)
    assert list(sweep.columns) == ["series", "requested HR", "report", "sex", "age"]
    assert sweep["series"].tolist() == ["rate-matched report"] * 4 + ["fixed report"] * 4
    assert sweep["sex"].tolist() == ["M", "F"] * 4 and sweep["report"].iloc[0] == "Sinus bradycardia|Normal ECG"
    sweep["measured HR"] = sweep["requested HR"] + np.array([1, -1, 2, 2, 0, 0, 0, 0])
    errs = G.hr_sweep_summary(sweep)
    assert errs["fixed report"]["mae"] == 0 and errs["rate-matched report"]["mae"] == pytest.approx(1.5)


def test_compare_samplers_times_each_sampler_on_the_same_conditions():
    conds = pd.DataFrame(
        {"report": ["Sinus rhythm|Normal ECG"] * 2, "age": [50, 60], "sex": ["M", "F"], "hr": [60.0, 90.0]}
    )
    table, outputs = sampling.compare_samplers(FakePipe(), conds, [("ddpm", 3), ("ddim", 2)], seed=0)
    assert list(table.index) == ["ddpm", "ddim"] and table["steps"].tolist() == [3, 2]
    assert table.loc["ddpm", "speed-up vs DDPM"] == 1.0
    assert table["HR MAE (bpm)"].max() < 5 and (table["HR measurable"] == 1.0).all()
    assert sampling.rms_difference(outputs, "ddpm") == {"ddpm": 0.0, "ddim": 0.0}  # the fake ignores the sampler


def test_guidance_step_without_scales_and_setup_lines():
    assert sampling.sweep_and_save_guidance(
        "unused", [], n=2, seed=0, sampler="ddim", steps=2, clip_steps=1, clf_steps=1
    ) == (None, None)
    assert sampling.guidance_summary(None, None) == sampling.NO_SWEEP
    assert (
        sampling.training_setup({"arch": "film", "emb_dim": 64}, {"loss_weighting": "min_snr"})
        == "loss weighting: min_snr (gamma 5.0)\narchitecture: film {'emb_dim': 64}"
    )
    assert sampling.training_setup({}, {}) == "loss weighting: uniform (paper) \narchitecture: film {}"
    assert sampling.training_setup({}, {"loss_weighting": "min_snr", "snr_gamma": 2.0}).startswith(
        "loss weighting: min_snr (gamma 2.0)\n"
    )
    # the default gamma is train_unet's (where unet_extra goes), not a copy
    import inspect

    from diffusets_core.train.unet import train_unet

    assert f"(gamma {inspect.signature(train_unet).parameters['snr_gamma'].default})" in sampling.training_setup(
        {}, {"loss_weighting": "min_snr"}
    )
    # the chapter adds the paper's DDPM itself; FAST_SAMPLERS holds only the fast deterministic samplers
    assert [name for name, _ in sampling.FAST_SAMPLERS] == ["ddim", "dpmsolver++"]


class EmbedPipe(FakePipe):
    def embed_reports(self, reports):
        vocab = ["sinus", "normal", "t", "peaked", "qt", "st"]
        return np.array([[r.lower().count(w) + 0.1 for w in vocab] for r in reports], dtype=np.float32)


def test_description_source_falls_back_to_the_table_without_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert R.description_source("llm") == "table" and R.description_source("table") == "table"
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    assert R.description_source("llm") == "llm"


def test_novelty_signatures_and_values():
    descs = [describe_condition("hyperkalemia"), describe_condition("long_qt")]
    train = train_records()
    nov = R.novelty_table(descs, train, EmbedPipe())
    assert nov["condition"].tolist() == [d.name for d in descs]
    assert nov["nearest training report"].isin(train["report"]).all() and nov["cosine"].between(0, 1).all()
    seen = pd.DataFrame({"report": ["Sinus rhythm|" + descs[0].statements[0]], "hr": 70.0})
    assert (
        R.novelty_table(descs[:1], seen, EmbedPipe())["statements seen in training"].iloc[0]
        == f"1/{len(descs[0].statements)} ({descs[0].statements[0]})"
    )
    assert R.expected_signatures_markdown(descs).startswith(f"- **{descs[0].name}** — expected: ")
    assert R.llm_cache_markdown(descs) == ""
    results, table = R.run_signature_tests(
        FakePipe(),
        descs,
        4,
        age=24,
        sex="M",
        hr=90,
        seed=0,
        control_report="Sinus rhythm|Normal ECG",
        steps=2,
        sampler="ddim",
        n_boot=50,
    )
    assert list(results) == [d.name for d in descs]
    assert table["condition"].tolist() == [d.name for d in descs for _ in d.signature]
    assert results[descs[1].name].features["seed"].min() == 1000  # condition k starts at seed + 1000 k
    long = R.signature_values(results, descs)
    assert list(long.columns) == ["group", "feature", "value", "condition"]
    assert len(long) == sum(8 * len(d.signature) for d in descs)


def test_knowledge_tables_gallery_generation_and_quiz_items():
    exps = K.default_experiments(
        "Sinus rhythm|Normal ECG", statements=("Hyperkalemia",), ages=(25, 75), sexes=("M", "F")
    )
    tab = K.experiments_table(exps)
    assert list(tab.columns) == ["experiment", "changed", "case", "control"] and len(tab) == len(exps)
    assert tab["case"].iloc[0].endswith("| M, 50 y, 75 bpm")
    assert K.statements_seen(train_records(), ["lvh", "Hyperkalemia"]) == ["lvh"]
    test = train_records()
    classes = K.gallery_classes(test, max_classes=2)
    gen = K.generate_for_classes(FakePipe(), test, classes, 2, steps=2, sampler="ddim", seed=5)
    assert gen.signals.shape[0] == 2 * len(classes) and gen.conditions["seed"].tolist()[:2] == [5, 6]
    quiz = K.make_quiz(len(test), len(test), seed=0, n_items=4)
    signals = np.zeros((len(test), 12, 1024), dtype=np.float32)
    items = K.quiz_items(FakePipe(), quiz, test, signals, 102.4, steps=2, sampler="ddim", seed=10_000)
    assert len(items) == 4
    for (_, q), (sig, _fs, note) in zip(quiz.iterrows(), items):
        assert note.startswith("test record" if q["source"] == "real" else "seed 1000")
        assert sig.shape == (12, 1024)


def test_explorer_helpers():
    from diffusets_core.apps.explorer import BAD_INPUTS, ExplorerInputError, bad_input_messages
    from diffusets_core.apps.explorer_grid import grid_intro, per_class_table

    class Fake:
        def explore(self, report, age, sex, hr, **kw):
            if age == 400:
                raise ExplorerInputError("age must be between 0 and 120 years")

    msgs = bad_input_messages(
        Fake(), dict(report="Sinus rhythm", age=60, sex="M", hr=75), seed=0, steps=2, sampler="ddim"
    )
    assert msgs["input"].tolist() == list(BAD_INPUTS)
    assert msgs.set_index("input")["message"].to_dict()["age 400"] == "age must be between 0 and 120 years"
    assert msgs.set_index("input")["message"].to_dict()["empty report"] == "(accepted)"
    grid = pd.DataFrame({"class": ["a", "a", "b"]})
    assert grid_intro(
        grid, profile="smoke", sampler="ddim", steps=5
    ) == "3 generated ECGs: 2 classes x heart rate x sex, profile smoke, ddim steps 5 steps. Pick a condition.".replace(
        "ddim steps 5 steps", "ddim 5 steps"
    )
    table = pd.DataFrame(
        {
            "statement": ["b", "a", "a"],
            "index": [0, 1, 2],
            "hr": [60.0, 90.0, 60.0],
            "measured_hr": [61.0, 88.0, 62.0],
            "agree": [1.0, 0.0, 1.0],
        }
    )
    per = per_class_table(table)
    assert per.index.tolist() == ["b", "a"] and per.loc["a", "requested_HR"] == "60, 90"
    assert per.loc["a", "read_as_requested"] == 0.5

"""The benchmark suite (diffusets_core.eval.report) and its baselines on a tiny trained run."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffusets_core.data.store import SignalStore
from diffusets_core.eval import baselines as bl
from diffusets_core.eval.commands import (
    add_evaluate_parser,
    add_guidance_parser,
    eval_config_from_args,
    sweep_config_from_args,
)
from diffusets_core.eval.conditions import select_test_records, top_up_conditions
from diffusets_core.eval.config import EvalConfig, GuidanceSweepConfig
from diffusets_core.eval.diagnostic_level import wilson_interval
from diffusets_core.eval.report import evaluate_run
from diffusets_core.eval.taxonomy import EVAL_CLASSES, MORPHOLOGY_CLASSES
from diffusets_core.train.unet import train_unet
from tests.data_trees import TINY_UNET, make_tiny_run

TRAIN = {
    "max_steps": 3,
    "batch_size": 8,
    "val_every": 3,
    "checkpoint_every": 3,
    "log_every": 1,
    "progress": False,
    "device": "cpu",
}
REPORTS = [
    (["Sinus rhythm", "Normal ECG"], 70.0),
    (["Sinus tachycardia", "Abnormal ECG"], 115.0),
    (["Sinus rhythm", "Right bundle branch block", "Abnormal ECG"], 80.0),
    (["Sinus bradycardia", "Borderline ECG"], 50.0),
]
CONFIG = EvalConfig(
    seed=3, clip_steps=2, clf_steps=2, steps=2, n_ddpm=2, ddpm_steps=3, n_tstr=6, n_boot=5, train_batch=8
)
EMBEDDER = {"dim": 32}  # the hash embedder of the test runs


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    recs = [
        {
            "subject_id": 10000032 + (i % 24),
            "study_id": 40000000 + i,
            "hr": REPORTS[i % 4][1],
            "seed": i,
            "reports": REPORTS[i % 4][0],
        }
        for i in range(48)
    ]
    return make_tiny_run(tmp_path_factory.mktemp("evalrun"), recs, train=TRAIN)


@pytest.fixture(scope="module")
def tables(run):
    return evaluate_run(run, CONFIG, out_dir=run / "eval_a", embedder_kwargs=EMBEDDER)


def test_tables_columns_and_files(run, tables):
    for name in (
        "conditions",
        "signal",
        "retrieval",
        "features",
        "hr_pairs",
        "diagnostic",
        "diagnostic_summary",
        "confusion",
        "physical",
        "rhythm",
        "tstr",
        "targets",
        "timings",
    ):
        assert isinstance(tables[name], pd.DataFrame), name
        assert (run / "eval_a" / f"{name}.csv").is_file() and (run / "eval_a" / f"{name}.json").is_file()
    assert (run / "eval_a" / "signal_metrics.png").is_file() and (run / "eval_a" / "benchmark.json").is_file()
    n_test = len(SignalStore(run).records("test"))
    sig = tables["signal"]
    assert set(sig["source"]) == {"real", "vae", "model", "nn", "deepfake", "ddpm", "model_subset"}
    assert {"source", "n", "n_real", "n_gen"} <= set(sig.columns)
    assert set(tables["features"].columns) >= {"source", "class", "metric", "n", "n_valid", "mae", "bias"}
    assert set(tables["features"]["metric"]) >= {"hr", "hr_50_150", "qrs_ms", "pr_ms", "qtc_ms"}
    d = tables["diagnostic"]
    assert set(d.columns) >= {"source", "class", "support", "recall"} and set(d["class"]) == set(EVAL_CLASSES)
    assert set(d.columns) >= {"recall_lo", "recall_hi", "morphology"}
    ok = d["support"] > 0
    assert ((d.loc[ok, "recall_lo"] <= d.loc[ok, "recall"]) & (d.loc[ok, "recall"] <= d.loc[ok, "recall_hi"])).all()
    assert set(d.loc[d["morphology"], "class"]) == set(MORPHOLOGY_CLASSES)
    assert set(tables["diagnostic_summary"].columns) >= {"source", "n", "macro_recall", "macro_recall_morphology"}
    phys = tables["physical"].set_index("source")
    assert set(phys.index) == {"real", "vae", "model", "nn", "deepfake", "ddpm"}
    # the test trees' synthetic leads are independent noise-shaped waves, so only the derived sets are checked
    assert phys.loc["deepfake", "identity_uv_median"] < 1  # derived by construction
    assert set(tables["rhythm"]["rhythm"]) == {"sinus", "atrial_fibrillation"}
    assert {"vae_ceiling", "met"} <= set(tables["targets"].columns)
    assert {"macro_recall_morphology", "identity_uv", "beyond_10mv", "recall_rbbb"} <= set(tables["targets"]["target"])
    assert list(tables["tstr"]["setting"]) == ["trtr", "tstr", "tstr_over_trtr"]
    assert set(tables["targets"].columns) >= {"target", "value", "threshold", "met"}
    assert len(tables["conditions"]) == n_test
    assert set(tables["retrieval"].columns) >= {"text_to_ecg_top1", "chance_text_to_ecg_top1"}


def test_deterministic_for_a_seed(run, tables):
    again = evaluate_run(
        run, replace(CONFIG, n_tstr=0, baselines=("nn",)), out_dir=run / "eval_b", embedder_kwargs=EMBEDDER
    )
    for name in ("signal", "features", "diagnostic", "hr_pairs"):
        a = tables[name][tables[name]["source"].isin(again[name]["source"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, again[name].reset_index(drop=True))


def test_nn_baseline_returns_training_ecgs(run, tables):
    store = SignalStore(run)
    train = store.records("train")
    cond = tables["conditions"]
    assert cond["nn_record_id"].astype(str).isin(train["record_id"].astype(str)).all()
    # same report text -> same class set (the hash embedder maps equal reports to equal vectors)
    rep = dict(zip(train["record_id"].astype(str), train["report"]))
    assert [rep[r] for r in cond["nn_record_id"].astype(str)] == cond["report"].tolist()


def test_nearest_neighbour_ties_broken_by_hr():
    train = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    idx = bl.nearest_neighbour(np.array([[3.0, 0.0], [0.0, 1.0]]), [101.0, 60.0], train, [60.0, 100.0, 70.0, 120.0])
    assert idx.tolist() == [1, 2]


def test_deepfake_shape_and_einthoven():
    x = bl.deepfake_generate(2, seed=5, batch_size=1)
    assert x.shape == (2, 12, 1024) and x.dtype == np.float32 and np.isfinite(x).all()
    # the noise depends on the seed only; batching changes float rounding only
    np.testing.assert_allclose(x, bl.deepfake_generate(2, seed=5, batch_size=2), atol=1e-4)
    I, II, III, aVR, aVL, aVF = x[:, :6].transpose(1, 0, 2)
    tol = 1e-4 * max(1.0, np.abs(x).max())
    np.testing.assert_allclose(III, II - I, atol=tol)
    np.testing.assert_allclose(aVR + aVL + aVF, 0.0, atol=tol)
    np.testing.assert_allclose(aVR, -(I + II) / 2, atol=tol)
    assert 0.05 < np.abs(x).max() < 20  # mV range, not uV


def test_derive_12_leads_order():
    x8 = np.arange(8 * 3, dtype=float).reshape(1, 8, 3)
    x12 = bl.derive_12_leads(x8)
    np.testing.assert_array_equal(x12[0, 6:], x8[0, 2:])
    np.testing.assert_array_equal(x12[0, 4], x8[0, 0] - x8[0, 1] / 2)
    np.testing.assert_array_equal(x12[0, 5], x8[0, 1] - x8[0, 0] / 2)
    with pytest.raises(ValueError):
        bl.derive_12_leads(np.zeros((1, 12, 3)))


def test_cli_parser():
    import argparse

    p = argparse.ArgumentParser()
    commands = p.add_subparsers(dest="cmd")
    add_evaluate_parser(commands)
    add_guidance_parser(commands)
    a = p.parse_args(["evaluate", "RUN", "--n-eval", "10", "--baselines", "nn"])
    assert a.run_dir == "RUN" and a.n_eval == 10 and a.baselines == "nn" and callable(a.func)
    # the command's defaults are the config's defaults
    assert eval_config_from_args(p.parse_args(["evaluate", "RUN"])) == EvalConfig()
    assert eval_config_from_args(a) == EvalConfig(n_eval=10, baselines=("nn",))
    assert sweep_config_from_args(p.parse_args(["guidance-sweep", "RUN"])) == GuidanceSweepConfig()
    g = p.parse_args(["guidance-sweep", "RUN", "--n", "7", "--guidance-on", "text"])
    assert sweep_config_from_args(g) == GuidanceSweepConfig(n=7, guidance_on="text")


def test_eval_config_refuses_unknown_keys_and_bad_values():
    assert EvalConfig.from_dict({"steps": 3, "baselines": ["nn"]}) == EvalConfig(steps=3, baselines=("nn",))
    with pytest.raises(ValueError, match=r"unknown EvalConfig fields: \['stepz'\]"):
        EvalConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="unknown baselines"):
        EvalConfig(baselines=("nn", "gan"))
    with pytest.raises(ValueError, match="guidance_scale"):
        EvalConfig(guidance_scale="auto")
    with pytest.raises(ValueError, match="guidance_on"):
        EvalConfig(guidance_on="patient")
    # a chapter's parameters: the fields are picked, other names ignored, overrides win
    chapter = {"seed": 4, "steps": 7, "noc": True, "guidance_scale": "auto", "profile": "smoke"}
    assert EvalConfig.from_namespace(chapter, guidance_scale=None) == EvalConfig(seed=4, steps=7)
    with pytest.raises(ValueError, match="unknown EvalConfig fields"):
        EvalConfig.from_namespace(chapter, nope=1)


def test_select_stratified_and_capped():
    labels = np.zeros((10, 2))
    labels[:6, 0] = 1
    labels[6:8, 1] = 1
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    sel = select_test_records(labels, None, 2, rng())
    assert len(sel) == 4 and labels[sel, 0].sum() == 2 and labels[sel, 1].sum() == 2
    assert len(select_test_records(labels, 5, 2, rng())) == 5 and len(select_test_records(labels, 3, None, rng())) == 3
    assert select_test_records(labels, None, None, rng()).tolist() == list(range(10))
    np.testing.assert_array_equal(select_test_records(labels, 5, 2, rng()), select_test_records(labels, 5, 2, rng()))


def test_text_only_ablation_noc(run):
    """The paper's 'noc' ablation: trained beside the main model, blind to sex/age/HR, evaluated as a source."""
    from diffusets_core.cli import main as cli_main
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.layout import NOC_DIR

    with pytest.raises(FileNotFoundError, match="--text-only"):
        evaluate_run(run, replace(CONFIG, baselines=("noc",)), out_dir=run / "eval_noc", embedder_kwargs=EMBEDDER)
    assert (
        cli_main(["train-unet", str(run), "--profile", "smoke", "--text-only", "--max-steps", "2", "--device", "cpu"])
        == 0
    )
    assert (run / NOC_DIR / "model.pt").is_file() and (run / "unet" / "model.pt").is_file()
    noc = DiffuSETSPipeline.from_pretrained(run, device="cpu", unet_dir=NOC_DIR, dim=32)
    assert noc.unet.cfg.cond_dim == 0 and noc.identity["unet_dir"] == NOC_DIR
    kw = dict(num_inference_steps=2, seed=5)
    a = noc("Sinus rhythm|Normal ECG", age=30, sex="F", hr=55, **kw).signals
    b = noc("Sinus rhythm|Normal ECG", age=80, sex="M", hr=140, **kw).signals
    np.testing.assert_array_equal(a, b)  # patient information cannot reach a text-only model
    full = DiffuSETSPipeline.from_pretrained(run, device="cpu", dim=32)
    c = full("Sinus rhythm|Normal ECG", age=30, sex="F", hr=55, **kw).signals
    d = full("Sinus rhythm|Normal ECG", age=80, sex="M", hr=140, **kw).signals
    assert np.abs(c - d).max() > 0  # ... while it does reach the main model
    t = evaluate_run(run, replace(CONFIG, baselines=("nn", "noc")), out_dir=run / "eval_noc", embedder_kwargs=EMBEDDER)
    assert set(t["signal"]["source"]) == {"real", "vae", "model", "nn", "noc"}
    assert "noc" in set(t["diagnostic_summary"]["source"]) and "noc" in set(t["hr_pairs"]["source"])


def test_noc_rejects_a_bad_cond_dim(run, tmp_path):
    with pytest.raises(ValueError, match=r"cond_dim must be 3 \(sex, age, HR\) or 0"):
        train_unet(run, {**TINY_UNET, "cond_dim": 2}, TRAIN, seed=0, out_name="unet_bad")


def test_guidance_sweep_on_validation(run, monkeypatch):
    """One row per scale on VALIDATION conditions; bad scales are refused before any work."""
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.eval.guidance import SWEEP_COLUMNS, guidance_sweep

    with pytest.raises(ValueError, match="guidance scales"):
        guidance_sweep(run, [1.0, -2.0], embedder_kwargs=EMBEDDER)
    store = SignalStore(run)
    n_val, val_hr = len(store.records("val")), sorted(store.records("val")["hr"].astype(float))
    seen = []
    call = DiffuSETSPipeline.__call__

    def spy(self, reports, **kw):
        seen.append((kw["guidance_scale"], kw["seed"], sorted(np.asarray(kw["hr"], float))))
        return call(self, reports, **kw)

    monkeypatch.setattr(DiffuSETSPipeline, "__call__", spy)
    sweep = GuidanceSweepConfig(n=50, seed=3, steps=2, clip_steps=2, clf_steps=2, train_batch=8, extend=False)
    df = guidance_sweep(run, [1.0, 3.0], sweep, out_dir=run / "sweep", embedder_kwargs=EMBEDDER)
    assert list(df.columns) == SWEEP_COLUMNS and list(df["guidance_scale"]) == [1.0, 3.0]
    assert (df["n"] == n_val).all()  # capped at the validation split: test records are never used
    assert (df["seconds_per_ecg"] > 0).all()
    # each scale reaches the sampler, with the same seeds and the validation conditions
    assert [g for g, _, _ in seen] == [1.0, 3.0] and {s for _, s, _ in seen} == {3}
    assert all(hr == val_hr for _, _, hr in seen)
    pd.testing.assert_frame_equal(pd.read_csv(run / "sweep" / "guidance_sweep.csv"), df, check_dtype=False)


def test_guidance_scale_reaches_every_generated_set(run, monkeypatch):
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline

    seen = []
    call = DiffuSETSPipeline.__call__

    def spy(self, *a, **kw):
        seen.append((kw.get("sampler"), kw.get("guidance_scale")))
        return call(self, *a, **kw)

    monkeypatch.setattr(DiffuSETSPipeline, "__call__", spy)
    evaluate_run(
        run, replace(CONFIG, guidance_scale=2.5, baselines=("ddpm",)), out_dir=run / "eval_g", embedder_kwargs=EMBEDDER
    )
    assert [s for s, _ in seen] == ["ddim", "ddpm", "ddim"]  # model, ddpm subset, TSTR
    assert all(g == 2.5 for _, g in seen)
    assert '"guidance_scale": 2.5' in (run / "eval_g" / "benchmark.json").read_text()


def test_choose_guidance_rule():
    from diffusets_core.eval.guidance import choose_guidance

    sweep = pd.DataFrame(
        {
            "guidance_scale": [3.0, 1.0, 2.0, 1.5],
            "macro_recall": [0.9, 0.3, 0.6, 0.6],
            "coverage": [0.5, 0.8, 0.75, 0.79],
        }
    )
    assert choose_guidance(sweep) == 1.5  # 3.0 loses too much coverage; 1.5 and 2.0 tie -> the smaller
    assert choose_guidance(sweep, min_coverage_ratio=0.5) == 3.0
    nothing = sweep.assign(macro_recall=np.nan)
    assert choose_guidance(nothing) == 1.0
    # a sweep too small for set metrics has no coverage column (guidance_sweep's extend loop builds such frames)
    assert choose_guidance(sweep.drop(columns="coverage")) == 3.0
    with pytest.raises(ValueError, match="no rows"):
        choose_guidance(sweep.iloc[:0])


def test_top_up_repeats_a_class_until_its_minimum():
    labels = np.zeros((6, 2))
    labels[:4, 0] = 1
    labels[4:, 1] = 1
    sel = np.arange(6)
    out = top_up_conditions(sel, labels, 5)
    assert out[:6].tolist() == list(range(6))  # the original conditions first, in order
    assert labels[out, 0].sum() == 5 and labels[out, 1].sum() == 5
    assert set(out[6:]) <= set(range(6))
    assert top_up_conditions(sel, labels, 0).tolist() == sel.tolist()


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)  # Brown, Cai & DasGupta (2001): 0.490-0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson_interval(0, 12)
    assert lo == 0.0 and 0.2 < hi < 0.3
    assert all(np.isnan(wilson_interval(0, 0)))


def test_min_per_class_tops_up_generated_sets_only(run):
    t = evaluate_run(
        run,
        replace(CONFIG, min_per_class=9, n_tstr=0, baselines=()),
        out_dir=run / "eval_top",
        embedder_kwargs=EMBEDDER,
    )
    d = t["diagnostic"].set_index(["source", "class"])
    n_test = len(SignalStore(run).records("test"))
    assert len(t["conditions"]) > n_test
    for c in ("normal", "rbbb"):
        if d.loc[("real", c), "support"] > 0:
            assert d.loc[("model", c), "support"] >= 9
            assert d.loc[("real", c), "support"] == d.loc[("vae", c), "support"] < d.loc[("model", c), "support"]


def test_guidance_sweep_extends_past_the_chosen_scale(run, monkeypatch):
    """While the rule picks the largest swept scale, the sweep adds a larger one (up to max_scale); the chosen
    settings are saved with the run and become every pipeline's default."""
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline, load_sampling_settings
    from diffusets_core.eval import guidance as gd

    monkeypatch.setattr(gd, "choose_guidance", lambda df, **kw: float(df["guidance_scale"].max()))
    sweep = GuidanceSweepConfig(n=8, seed=3, steps=2, clip_steps=2, clf_steps=2, train_batch=8, max_scale=4.5)
    df = gd.guidance_sweep(run, [1.0, 2.0], sweep, out_dir=run / "sweep_ext", embedder_kwargs=EMBEDDER)
    assert list(df["guidance_scale"]) == [1.0, 2.0, 3.0, 4.5]
    settings = gd.save_chosen_guidance(run, df, sampler="ddim", steps=3)
    assert settings["guidance_scale"] == 4.5 and load_sampling_settings(run)["num_inference_steps"] == 3
    pipe = DiffuSETSPipeline.from_pretrained(run, device="cpu", dim=32)
    out = pipe("Sinus rhythm|Normal ECG", age=50, sex="M", hr=70, seed=1)
    assert out.conditions["guidance_scale"].iloc[0] == 4.5 and out.conditions["steps"].iloc[0] == 3
    plain = pipe("Sinus rhythm|Normal ECG", age=50, sex="M", hr=70, seed=1, guidance_scale=1.0)
    assert plain.conditions["guidance_scale"].iloc[0] == 1.0 and np.abs(plain.signals - out.signals).max() > 0
    (run / "unet" / "sampling.json").unlink()


def test_paraphrase_table_and_unseen_combinations():
    from diffusets_core.eval.paraphrase import load_paraphrases, paraphrase_report, unseen_combinations

    table = load_paraphrases()
    assert "Right bundle branch block" in table and all(len(v) >= 2 for v in table.values())
    rep = "Sinus rhythm|Right bundle branch block|Something unlisted"
    a = paraphrase_report(rep, np.random.default_rng(0))
    assert a == paraphrase_report(rep, np.random.default_rng(0))  # seeded
    parts = a.split("|")
    assert parts[0] in table["Sinus rhythm"] and parts[1] in table["Right bundle branch block"]
    assert parts[2] == "Something unlisted"
    combos = unseen_combinations(["Atrial fibrillation|Right bundle branch block|Abnormal ECG"])
    assert "Atrial fibrillation|Right bundle branch block|Abnormal ECG" not in combos
    assert "Atrial fibrillation|Left bundle branch block|Abnormal ECG" in combos
    # a training report worded by the wording bank holds the same findings in other words: seen all the same
    from diffusets_core.data.cohort.wordings import word_report

    worded = word_report(["atrial_fibrillation", "lbbb", "abnormal_ecg"], np.random.default_rng(3))
    assert worded != "Atrial fibrillation|Left bundle branch block|Abnormal ECG"
    assert "Atrial fibrillation|Left bundle branch block|Abnormal ECG" not in unseen_combinations([worded])


def test_four_kinds_of_request_side_by_side(run):
    t = evaluate_run(
        run,
        replace(CONFIG, paraphrase=True, per_combination=2, n_tstr=0, baselines=()),
        out_dir=run / "eval_para",
        embedder_kwargs=EMBEDDER,
    )
    for source in ("reworded", "paraphrased"):
        assert source in set(t["signal"]["source"]) and source in set(t["diagnostic_summary"]["source"])
    cond = t["conditions"]
    assert (cond["reworded_report"] != cond["report"]).all()
    assert (cond["paraphrased_report"] != cond["report"]).any()
    summ = t["requests_summary"].set_index("kind")
    assert list(summ.index) == ["seen", "reworded", "combinations", "paraphrased"]
    assert summ.loc["reworded", "share_reworded"] == 1.0 and summ.loc["seen", "share_reworded"] == 0.0
    # (a) is the model's own diagnostic row, read again per kind
    a = t["diagnostic_summary"].set_index("source").loc["model", "macro_recall"]
    assert np.isfinite(a) and summ.loc["seen", "macro_recall"] == pytest.approx(a)
    req = t["requests"]
    assert set(req["kind"]) <= set(summ.index) and (req["support"] > 0).all()
    assert ((req["recall_lo"] <= req["recall"]) & (req["recall"] <= req["recall_hi"])).all()
    combos = t["combinations"]
    assert len(combos) == 13 and (combos["n"] <= 2).all()
    from diffusets_core.eval.taxonomy import EVAL_CLASSES

    for _, r in combos[combos["n"] > 0].iterrows():  # only classes of the combination's own findings (trained ones)
        fids = r["combination"].split(" + ")
        assert all(
            set(EVAL_CLASSES[c]["findings"]) & set(fids) for c in filter(None, r["requested_classes"].split("|"))
        )
        assert r["references_built"].endswith("of 2")
    assert int(combos["n"].sum()) == int(summ.loc["combinations", "n"])
    assert {"reworded_morphology_gap", "paraphrase_morphology_gap", "combinations_all_requested"} <= set(
        t["targets"]["target"]
    )
    from diffusets_core.eval.summaries import summarize_benchmark

    text = "\n".join(summarize_benchmark(t, profile="smoke", sampler="ddim", steps=2, guidance="1 on all"))
    assert "Four kinds of request" in text and "(c) held-out combinations" in text and "VAE ceiling" in text


def test_benchmark_judge_scores_sets_for_its_conditions(run, tmp_path):
    from diffusets_core.eval.judge import BenchmarkJudge

    j = BenchmarkJudge.fit(
        run, tmp_path / "judge", split="test", n=10, seed=0, clip_steps=2, clf_steps=2, train_batch=8
    )
    real = j.score_real()
    assert real["n"] == len(j.conditions) <= 10
    assert {"hr_mae_50_150", "macro_recall", "macro_recall_morphology", "identity_uv_median", "rr_cv_sinus"} <= set(
        real
    )
    with pytest.raises(ValueError, match="one per condition"):
        j.score(j.real[:2])

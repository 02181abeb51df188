"""The benchmark suite (diffusets_core.eval.report) and its baselines on a tiny trained run."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffusets_core.data.store import SignalStore
from diffusets_core.eval import baselines as bl
from diffusets_core.eval.report import EVAL_CLASSES, _select, add_evaluate_parser, evaluate_run
from diffusets_core.train.stages import train_unet
from tests.data_trees import TINY_UNET, make_tiny_run
TRAIN = {"max_steps": 3, "batch_size": 8, "val_every": 3, "checkpoint_every": 3, "log_every": 1,
         "progress": False, "device": "cpu"}
REPORTS = [(["Sinus rhythm", "Normal ECG"], 70.0), (["Sinus tachycardia", "Abnormal ECG"], 115.0),
           (["Sinus rhythm", "Right bundle branch block", "Abnormal ECG"], 80.0),
           (["Sinus bradycardia", "Borderline ECG"], 50.0)]
SIZES = dict(seed=3, clip_steps=2, clf_steps=2, steps=2, n_ddpm=2, ddpm_steps=3, n_tstr=6, n_boot=5, train_batch=8,
             embedder_kwargs={"dim": 32})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    recs = [{"subject_id": 10000032 + (i % 24), "study_id": 40000000 + i, "hr": REPORTS[i % 4][1], "seed": i,
             "reports": REPORTS[i % 4][0]} for i in range(48)]
    return make_tiny_run(tmp_path_factory.mktemp("evalrun"), recs, train=TRAIN)


@pytest.fixture(scope="module")
def tables(run):
    return evaluate_run(run, out_dir=run / "eval_a", **SIZES)


def test_tables_columns_and_files(run, tables):
    for name in ("conditions", "signal", "retrieval", "features", "hr_pairs", "diagnostic", "diagnostic_summary",
                 "confusion", "tstr", "targets", "timings"):
        assert isinstance(tables[name], pd.DataFrame), name
        assert (run / "eval_a" / f"{name}.csv").is_file() and (run / "eval_a" / f"{name}.json").is_file()
    assert (run / "eval_a" / "signal_metrics.png").is_file() and (run / "eval_a" / "benchmark.json").is_file()
    n_test = len(SignalStore(run).records("test"))
    sig = tables["signal"]
    assert set(sig["source"]) == {"real", "model", "nn", "deepfake", "ddpm", "model_subset"}
    assert {"source", "n", "n_real", "n_gen"} <= set(sig.columns)
    assert set(tables["features"].columns) >= {"source", "class", "metric", "n", "n_valid", "mae", "bias"}
    assert set(tables["features"]["metric"]) >= {"hr", "hr_50_150", "qrs_ms", "pr_ms", "qtc_ms"}
    d = tables["diagnostic"]
    assert set(d.columns) >= {"source", "class", "support", "recall"} and set(d["class"]) == set(EVAL_CLASSES)
    assert set(tables["diagnostic_summary"].columns) >= {"source", "n", "macro_recall"}
    assert list(tables["tstr"]["setting"]) == ["trtr", "tstr", "tstr_over_trtr"]
    assert set(tables["targets"].columns) >= {"target", "value", "threshold", "met"}
    assert len(tables["conditions"]) == n_test
    assert set(tables["retrieval"].columns) >= {"text_to_ecg_top1", "chance_text_to_ecg_top1"}


def test_deterministic_for_a_seed(run, tables):
    again = evaluate_run(run, out_dir=run / "eval_b", **{**SIZES, "n_tstr": 0, "baselines": ("nn",)})
    for name, cols in (("signal", None), ("features", None), ("diagnostic", None), ("hr_pairs", None)):
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
    add_evaluate_parser(p.add_subparsers(dest="cmd"))
    a = p.parse_args(["evaluate", "RUN", "--n-eval", "10", "--baselines", "nn"])
    assert a.run_dir == "RUN" and a.n_eval == 10 and a.baselines == "nn" and callable(a.func)


def test_select_stratified_and_capped():
    labels = np.zeros((10, 2))
    labels[:6, 0] = 1
    labels[6:8, 1] = 1
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    sel = _select(labels, None, 2, rng())
    assert len(sel) == 4 and labels[sel, 0].sum() == 2 and labels[sel, 1].sum() == 2
    assert len(_select(labels, 5, 2, rng())) == 5 and len(_select(labels, 3, None, rng())) == 3
    assert _select(labels, None, None, rng()).tolist() == list(range(10))
    np.testing.assert_array_equal(_select(labels, 5, 2, rng()), _select(labels, 5, 2, rng()))


def test_text_only_ablation_noc(run):
    """The paper's 'noc' ablation: trained beside the main model, blind to sex/age/HR, evaluated as a source."""
    from diffusets_core.cli import main as cli_main
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.train.stages import NOC_DIR

    with pytest.raises(FileNotFoundError, match="--text-only"):
        evaluate_run(run, out_dir=run / "eval_noc", **{**SIZES, "baselines": ("noc",)})
    assert cli_main(["train-unet", str(run), "--profile", "smoke", "--text-only", "--max-steps", "2",
                     "--device", "cpu"]) == 0
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
    t = evaluate_run(run, out_dir=run / "eval_noc", **{**SIZES, "baselines": ("nn", "noc")})
    assert set(t["signal"]["source"]) == {"real", "model", "nn", "noc"}
    assert "noc" in set(t["diagnostic_summary"]["source"]) and "noc" in set(t["hr_pairs"]["source"])


def test_noc_rejects_a_bad_cond_dim(run, tmp_path):
    with pytest.raises(ValueError, match=r"cond_dim must be 3 \(sex, age, HR\) or 0"):
        train_unet(run, {**TINY_UNET, "cond_dim": 2}, TRAIN, seed=0, out_name="unet_bad")


def test_guidance_sweep_on_validation(run, monkeypatch):
    """One row per scale on VALIDATION conditions; bad scales are refused before any work."""
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.eval.guidance import SWEEP_COLUMNS, guidance_sweep

    with pytest.raises(ValueError, match="guidance scales"):
        guidance_sweep(run, [1.0, -2.0], embedder_kwargs={"dim": 32})
    store = SignalStore(run)
    n_val, val_hr = len(store.records("val")), sorted(store.records("val")["hr"].astype(float))
    seen = []
    call = DiffuSETSPipeline.__call__

    def spy(self, reports, **kw):
        seen.append((kw["guidance_scale"], kw["seed"], sorted(np.asarray(kw["hr"], float))))
        return call(self, reports, **kw)

    monkeypatch.setattr(DiffuSETSPipeline, "__call__", spy)
    df = guidance_sweep(run, [1.0, 3.0], n=50, seed=3, steps=2, clip_steps=2, clf_steps=2, train_batch=8,
                        out_dir=run / "sweep", embedder_kwargs={"dim": 32})
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
    evaluate_run(run, out_dir=run / "eval_g", guidance_scale=2.5, **{**SIZES, "baselines": ("ddpm",)})
    assert [s for s, _ in seen] == ["ddim", "ddpm", "ddim"]  # model, ddpm subset, TSTR
    assert all(g == 2.5 for _, g in seen)
    assert '"guidance_scale": 2.5' in (run / "eval_g" / "benchmark.json").read_text()


def test_choose_guidance_rule():
    from diffusets_core.eval.guidance import choose_guidance

    sweep = pd.DataFrame({"guidance_scale": [3.0, 1.0, 2.0, 1.5], "macro_recall": [0.9, 0.3, 0.6, 0.6],
                          "coverage": [0.5, 0.8, 0.75, 0.79]})
    assert choose_guidance(sweep) == 1.5  # 3.0 loses too much coverage; 1.5 and 2.0 tie -> the smaller
    assert choose_guidance(sweep, min_coverage_ratio=0.5) == 3.0
    nothing = sweep.assign(macro_recall=np.nan)
    assert choose_guidance(nothing) == 1.0
    with pytest.raises(ValueError, match="no rows"):
        choose_guidance(sweep.iloc[:0])

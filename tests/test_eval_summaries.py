"""The chapters' findings as sentences (diffusets_core.eval.summaries, views, ablation, guidance settings),
checked on small hand-made tables: every number in a sentence comes from the tables."""

import json

import numpy as np
import pandas as pd
import pytest

from diffusets_core.eval import guidance as guidance_module
from diffusets_core.eval import summaries as summaries_module
from diffusets_core.eval.ablation import ablation_view, describe_ablation, read_ablation_table
from diffusets_core.eval.config import DEFAULT_BASELINES
from diffusets_core.eval.reconstruction import typical_reconstruction
from diffusets_core.eval.report import benchmark_baselines
from diffusets_core.eval.summaries import (
    build_gaps,
    format_number,
    profile_caveat,
    show_markdown,
    summarize_benchmark,
    summarize_evaluation,
    summarize_noc_training,
    summarize_vae,
)
from diffusets_core.eval.targets import REQUEST_TARGETS, TARGETS
from diffusets_core.eval.taxonomy import KEY_CLASSES
from diffusets_core.eval.views import feature_views, recall_table, request_views, signal_view


def _tables(paraphrased: bool = False, noc: bool = False, targets: dict | None = None) -> dict[str, pd.DataFrame]:
    sources = ["real", "vae", "model", "nn"] + (["paraphrased"] if paraphrased else []) + (["noc"] if noc else [])
    targets = {**TARGETS, **(REQUEST_TARGETS if paraphrased else {})} if targets is None else targets
    targets = pd.DataFrame(
        [
            {"target": k, "value": 0.5, "vae_ceiling": np.nan, "threshold": thr, "direction": op, "met": False}
            for k, (_, thr, op) in targets.items()
        ]
    )
    targets.loc[targets["target"] == "hr_mae_50_150", ["value", "vae_ceiling", "met"]] = [3.25, 1.5, True]
    targets.loc[targets["target"] == "rfid", ["value"]] = [7.0]
    summary = pd.DataFrame(
        {
            "source": sources,
            "n": 10,
            "macro_recall": [0.9, 0.8, 0.6, 0.3] + [0.55] * paraphrased + [0.2] * noc,
            "macro_recall_morphology": [0.85, 0.75, 0.5, 0.2] + [0.4] * paraphrased + [0.1] * noc,
        }
    )
    signal = pd.DataFrame(
        {
            "source": sources,
            "n": 10.0,
            "rfid": [1.0, 1.2, 7.0, 3.0] + [8.0] * paraphrased + [9.0] * noc,
            "coverage": 0.5,
            "precision": 0.4,
        }
    )
    features = pd.DataFrame(
        [
            {
                "source": s,
                "class": "all",
                "metric": "hr_50_150",
                "n_valid": 9,
                "mae": {"model": 3.25, "noc": 12.5}.get(s, 1.0),
            }
            for s in sources
        ]
    )
    conditions = pd.DataFrame({"report": ["a"] * 10})
    extra = {}
    if paraphrased:
        kinds = ["seen", "reworded", "combinations", "paraphrased"]
        extra["requests_summary"] = pd.DataFrame(
            {
                "kind": kinds,
                "request": [f"({k}) request" for k in kinds],
                "n": 10,
                "macro_recall_morphology": [0.5, 0.45, 0.3, 0.4],
                "macro_recall": 0.6,
                "all_requested": [0.7, 0.6, 0.2, 0.5],
                "hr_mae_50_150": 4.0,
                "reference_macro_recall_morphology": 0.85,
                "reference_all_requested": [0.9, 0.9, 0.65, 0.9],
            }
        )
        extra["requests"] = pd.DataFrame(
            {
                "kind": kinds,
                "class": "rbbb",
                "morphology": True,
                "support": 5,
                "recall": [0.5, 0.45, 0.3, 0.4],
                "recall_lo": 0.1,
                "recall_hi": 0.9,
                "reference_recall": 0.95,
                "vae_recall": 0.8,
            }
        )
        extra["combinations"] = pd.DataFrame({"combination": ["rbbb + lafb"], "n": [5]})
    return {
        **extra,
        "targets": targets,
        "diagnostic_summary": summary,
        "signal": signal,
        "features": features,
        "conditions": conditions,
        "tstr": pd.DataFrame(),
        "timings": pd.DataFrame({"stage": ["load", "clip"], "seconds": [1.4, 2.4], "n": [0, 0]}),
    }


def test_summarize_benchmark_reads_every_number_from_the_tables():
    lines = summarize_benchmark(_tables(), profile="cpu", sampler="ddim", steps=20, guidance="2 on text")
    text = "\n".join(lines)
    assert lines[0] == (
        "- Profile `cpu`: 10 test conditions, sampler `ddim` with 20 steps, guidance 2 on text; the "
        "model's signal metrics use n = 10 per side."
    )
    assert (
        "- HR MAE ≤ 5 bpm for requested HR 50–150 (9 measurable ECGs): **met** (value 3.25; needed <= 5.00; "
        "VAE ceiling 1.50)."
    ) in lines
    assert "- rFID ≤ 2: **missed** (value 7.00; needed <= 2.00);" in text
    assert "real test ECGs 0.85." in text and "0.85 × the real ECGs' (0.90)" in text
    assert "Smoke profile" not in text and "noc" not in text and "reworded" not in text


def test_summarize_benchmark_optional_lines():
    t = _tables(noc=True)
    # the toy-profile caveat is said once, at the top of the chapter (profile_caveat), not again in the summary
    smoke = "\n".join(summarize_benchmark(t, profile="smoke"))
    assert "toy" not in smoke and "Smoke profile" not in smoke and "meaningless" not in smoke
    assert summarize_benchmark(t, profile="smoke")[1:] == summarize_benchmark(t, profile="cpu")[1:]
    noc = [s for s in summarize_benchmark(t) if "Text-only" in s]
    assert noc == [
        "- Text-only ablation (noc) vs the model: HR MAE 12.5 vs 3.2 bpm, rFID 9.00 vs 7.00, macro recall 0.20 vs 0.60."
    ]


def test_summarize_benchmark_request_lines():
    lines = summarize_benchmark(_tables(paraphrased=True))
    (kinds,) = [s for s in lines if s.startswith("- Four kinds")]
    assert kinds == (
        "- Four kinds of request, morphology macro recall: (a) training wordings 0.50, (b) held-out wordings 0.45, "
        "(c) held-out combinations 0.30, (d) paraphrases.yaml 0.40."
    )
    (gap,) = [s for s in lines if "(a) minus (d)" in s]
    assert "**missed** (value 0.50; needed <= 0.10)" in gap
    (ceiling,) = [s for s in lines if "own reference ECGs" in s]
    assert "every requested class found in 0.65, morphology macro recall 0.85" in ceiling


def test_summarize_benchmark_thresholds_come_from_the_targets():
    """Change a target (in a copy of TARGETS, or in the targets table) and the sentence changes with it."""
    default = "\n".join(summarize_benchmark(_tables(paraphrased=True)))
    changed = dict(TARGETS)
    for key, thr in (("macro_recall_morphology", 0.75), ("hr_mae_50_150", 7.5), ("rfid", 3.0), ("precision", 0.65)):
        desc, _, op = changed[key]
        changed[key] = (desc, thr, op)
    changed["af_rr_cv_vs_sinus"] = (changed["af_rr_cv_vs_sinus"][0], 4.0, "<=")
    changed.update({f"recall_{c}": ("", 0.5, ">=") for c in KEY_CLASSES})
    changed.update(REQUEST_TARGETS)
    changed["paraphrase_morphology_gap"] = ("", 0.05, "<=")
    text = "\n".join(summarize_benchmark(_tables(paraphrased=True, targets=changed)))
    for old, new in (
        ("morphology classes ≥ 0.80:", "morphology classes ≥ 0.75:"),
        ("- Per-class recall ≥ 0.60:", "- Per-class recall ≥ 0.50:"),
        ("- HR MAE ≤ 5 bpm for", "- HR MAE ≤ 7.5 bpm for"),
        ("- rFID ≤ 2:", "- rFID ≤ 3:"),
        ("precision ≥ 0.7:", "precision ≥ 0.65:"),
        ("atrial fibrillation ≥ 3 × generated", "atrial fibrillation ≤ 4 × generated"),
        ("paraphrases.yaml ≤ 0.10:", "paraphrases.yaml ≤ 0.05:"),
    ):
        assert old in default and old not in text and new in text, (old, new)
    assert "recall ≥ 0.7:" in text  # an unchanged target reads as before
    # the table's own row wins; per-class thresholds that differ are given class by class
    t = _tables()
    rows = t["targets"]
    rows.loc[rows["target"] == f"recall_{KEY_CLASSES[0]}", "threshold"] = 0.9
    (line,) = [s for s in summarize_benchmark(t) if s.startswith("- Per-class recall")]
    assert line.startswith(f"- Per-class recall: {KEY_CLASSES[0]} ≥ 0.90 **missed**")
    assert f"{KEY_CLASSES[1]} ≥ 0.60 **missed**" in line


def test_show_markdown_displays_nothing_when_there_is_nothing_to_say(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    assert show_markdown([]) is None and show_markdown("") is None and show_markdown(["", " "]) is None
    assert shown == []
    show_markdown(build_gaps(noc=False, paraphrase=False))
    show_markdown(profile_caveat("smoke"))
    assert [type(m).__name__ for m in shown] == ["Markdown", "Markdown"]
    assert shown[0].data == "\n\n".join(build_gaps(noc=False, paraphrase=False))
    assert shown[1].data == profile_caveat("smoke")


def test_summarize_guidance_reads_the_coverage_rule(monkeypatch):
    sweep = pd.DataFrame(
        {
            "guidance_scale": [1.0, 2.0],
            "n": 16,
            "hr_mae_50_150": [6.0, 4.0],
            "macro_recall_morphology": [0.3, np.nan],
            "coverage": [0.5, 0.4],
        }
    )
    settings = {"guidance_scale": 2.0, "guidance_on": "text", "sampler": "ddim", "num_inference_steps": 10}
    text = guidance_module.summarize_guidance(sweep, settings)
    assert "keep at least 90 % of the coverage at the smallest scale) picks **2** (the largest scale" in text
    assert "lowest HR error is at scale 2 (4.00 bpm; 6.00 at 1)" in text
    monkeypatch.setattr(guidance_module, "MIN_COVERAGE_RATIO", 0.75)
    assert "keep at least 75 % of the coverage" in guidance_module.summarize_guidance(sweep, settings)


def test_summarize_evaluation():
    t = _tables()
    assert summarize_evaluation(t) == (
        "Evaluated **10** test conditions in 4 s; tables and figures are in the run's `eval/` folder. Beside the "
        "baselines, the `vae` row is the real test ECGs passed through the run's autoencoder: what any generator "
        "built on it can reach at best."
    )
    t["signal"] = t["signal"][t["signal"]["source"] != "vae"]
    assert summarize_evaluation(t).endswith("`eval/` folder.")


def test_noc_training_caveat_and_gaps():
    assert summarize_noc_training({"steps": 80, "seconds": 90.0, "best_val_loss": 0.12345}) == (
        "Text-only (noc) U-Net: 80 steps in 1.5 min, best validation loss 0.1235."
    )
    assert "meaningless" in profile_caveat("smoke") and profile_caveat("cpu") == "" == profile_caveat("paper")
    assert build_gaps() == [] and build_gaps(noc=True, paraphrase=True) == []
    (noc,) = build_gaps(noc=False)
    assert noc.startswith("**Not in this build: the text-only ablation") and "--text-only" in noc
    assert "paraphrase" in build_gaps(paraphrase=False)[0] and len(build_gaps(noc=False, paraphrase=False)) == 2
    assert benchmark_baselines() == DEFAULT_BASELINES and benchmark_baselines(True) == DEFAULT_BASELINES + ("noc",)


def test_format_number():
    assert format_number(0.123) == "0.12" and format_number(2, 1) == "2.0"
    assert format_number(np.nan) == "n/a" == format_number(None) == format_number("x")
    assert format_number(-1.25, spec="+.1f") == "-1.2" and format_number(0.5, spec=".0%") == "50%"
    assert format_number(np.inf, spec=".0%") == "n/a"
    assert summaries_module._plain(5.0, 0) == "5" and summaries_module._plain(7.5, 0) == "7.5"


def test_summarize_vae():
    lines = summarize_vae(
        {"params": 1_234_000, "steps": 60, "seconds": 30.0, "samples_per_s": 31.6},
        {
            "n": 24,
            "rmse_uv": 41.26,
            "corr_median": 0.9512,
            "worst_lead": "V1",
            "worst_lead_corr": 0.8,
            "p_amp_ratio": 0.9,
            "p_amp_real_mv": 0.1,
            "qrs_ratio": 1.1,
            "qrs_real_ms": 92.4,
            "identity_uv_median": 0.04,
        },
        {"latent_scale": 1.5, "splits": {"train": {"mean": 0.001, "std": 1.0}}},
        channels=(32, 64),
        derived_leads=True,
    )
    assert lines[0] == (
        "- VAE with widths [32, 64] (1.23 M parameters, eight independent leads, limb leads derived) "
        "trained for 60 steps in 0.5 min (32 samples/s)."
    )
    assert lines[1] == (
        "- Held-out reconstruction (24 ECGs): RMSE 41.3 µV overall, median per-lead correlation "
        "0.951; worst lead V1 (0.800)."
    )
    assert "QRS width at 1.10 × (92 ms)" in lines[2] and "Measured latent scale 1.500" in lines[3]


def test_views():
    t = _tables()
    t["signal"]["fid"] = 1.0
    assert list(signal_view(t).columns) == ["source", "n", "fid", "rfid", "precision", "coverage"]
    t["features"] = pd.DataFrame(
        [
            {"source": "model", "class": c, "metric": m, "mae": v, "n_valid": 3}
            for c, m, v in (("all", "hr", 4.0), ("all", "qrs_ms", 9.0), ("rbbb", "hr", 6.0))
        ]
    )
    v = feature_views(t)
    assert v["mae"].loc["model", "qrs_ms"] == 9.0 and v["hr_mae_per_class"].loc["rbbb", "model"] == 6.0
    assert request_views(t) == []
    t["diagnostic"] = pd.DataFrame(
        [
            {
                "source": "model",
                "class": "rbbb",
                "trained": True,
                "recall": 0.5,
                "recall_lo": 0.25,
                "recall_hi": 0.75,
                "support": 4,
            }
        ]
    )
    r = recall_table(t)
    assert r.loc["rbbb", "model"] == "0.50 [0.25, 0.75] (n=4)" and bool(r.loc["rbbb", "morphology"])


def test_request_views():
    t = _tables(paraphrased=True)
    t["conditions"] = pd.DataFrame(
        {"report": ["Sinus rhythm"], "reworded_report": ["SR"], "paraphrased_report": ["NSR"]}
    )
    summary, per_class, examples, combos = request_views(t)
    assert summary.loc["(combinations) request", "all_requested"] == 0.2 and "kind" not in summary.columns
    assert per_class.loc["rbbb", "reworded"] == "0.45 [0.10, 0.90] (n=5)"
    assert per_class.loc["rbbb", "combinations ceiling"] == "0.95" and per_class.loc["rbbb", "seen vae"] == "0.80"
    assert list(examples.columns) == ["report", "reworded_report", "paraphrased_report"] and len(combos) == 1


def test_describe_ablation(tmp_path):
    csv = tmp_path / "benchmarks" / "ablation.csv"
    assert read_ablation_table(csv) is None
    assert describe_ablation(csv, None, root=tmp_path) == [
        "No ablation table in this checkout (`benchmarks/ablation.csv`)."
    ]
    csv.parent.mkdir()
    pd.DataFrame({"variant": ["a", "b"], "macro_recall_morphology": [0.5, 0.7], "other": [1, 2]}).to_csv(
        csv, index=False
    )
    csv.with_suffix(".json").write_text(json.dumps({"note": "Measured on a laptop."}))
    table = read_ablation_table(csv)
    assert list(ablation_view(table).columns) == ["variant", "macro_recall_morphology"]
    summary, note = describe_ablation(csv, table, root=tmp_path)
    assert (
        "highest morphology macro recall **b** (0.70), lowest a (0.50)" in summary and note == "Measured on a laptop."
    )


def test_typical_reconstruction():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 12, 64))
    noise = np.array([0.1, 2.0, 0.5, 1.0, 0.01])[:, None, None]
    i, corr = typical_reconstruction(x, x + noise * rng.standard_normal(x.shape))
    assert i == 2 and 0 < corr < 1  # noise levels ranked: 0.01, 0.1, [0.5], 1.0, 2.0


def test_resolve_guidance(tmp_path):
    from diffusets_core.diffusion.pipeline import save_sampling_settings
    from diffusets_core.eval.guidance import resolve_guidance

    g = resolve_guidance(tmp_path, "auto")
    assert (g.scale, g.used, g.on, g.origin) == (None, 1.0, "all", "default")
    assert g.describe() == (
        "Guidance scale **1** on **all** (no validated setting saved with the run: plain conditional sampling)."
    )
    (tmp_path / "unet").mkdir()
    save_sampling_settings(
        tmp_path, {"sampler": "ddim", "num_inference_steps": 10, "guidance_scale": 2.5, "guidance_on": "text"}
    )
    g = resolve_guidance(tmp_path, "auto")
    assert (g.scale, g.label) == (None, "2.5 on text") and g.describe().endswith("(the run's validated setting).")
    g = resolve_guidance(tmp_path, 1.5)
    assert (g.scale, g.label, g.origin) == (1.5, "1.5 on text", "profile")
    with pytest.raises(ValueError):
        resolve_guidance(tmp_path, "sometimes")

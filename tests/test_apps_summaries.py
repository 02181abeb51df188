"""The chapters' findings sentences: computed from small tables, asserted word for word."""

from types import SimpleNamespace

import pandas as pd
import pytest

from diffusets_core.apps import stats
from diffusets_core.apps import summaries as S


def records():
    return pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(6)],
            "subject_id": [1, 1, 2, 3, 4, 4],
            "split": ["train", "train", "val", "test", "train", "test"],
            "report": [
                "Sinus rhythm|Normal ECG",
                "Sinus rhythm|Normal ECG",
                "Sinus tachycardia",
                "Sinus rhythm|LVH",
                "Sinus rhythm|Normal ECG",
                "Sinus bradycardia",
            ],
            "hr": [60.0, 70.0, 110.0, 75.0, 65.0, 50.0],
            "age": [30.0, 30.0, 50.0, 70.0, 44.0, 44.0],
            "sex": ["F", "F", "M", "M", "F", "F"],
        }
    )


def test_methods_sizes_and_summary(monkeypatch):
    torch = pytest.importorskip("torch")
    vae = SimpleNamespace(
        encoder=torch.nn.Linear(2, 3),
        decoder=torch.nn.Linear(3, 2),
        parameters=lambda: list(torch.nn.Linear(2, 3).parameters()) + list(torch.nn.Linear(3, 2).parameters()),
    )
    unet = torch.nn.Linear(10, 10)
    assert S.count_parameters(unet) == 110
    table = S.model_size_table(vae, unet, 384, vae, unet, 1536)
    assert table.loc["U-Net parameters"].tolist() == ["110", "110"]
    assert table.loc["text condition width"].tolist() == ["384", "1,536"]
    vae_cfg = SimpleNamespace(downsample_factor=8, latent_channels=4)
    text = S.summarize_methods(vae, unet, vae, unet, vae_cfg, SimpleNamespace(arch="film"), 384)
    assert text == (
        "- This build's VAE has 0.00 M parameters (paper 0.00 M) and compresses 12 × 1024 values to "
        "4 × 128 (24× fewer).\n- Its U-Net (`film`) has 0.00 M parameters (paper 0.00 M), conditioned on "
        "a 384-d text vector plus 3 patient values."
    )
    # the sizes come from the package (leads, preprocessed length, patient vector), not from the sentence
    from diffusets_core.data.leads import CANONICAL_LEADS
    from diffusets_core.data.preprocess import PreprocessConfig
    from diffusets_core.text.patient import COLUMNS

    assert (len(CANONICAL_LEADS), PreprocessConfig().out_len, len(COLUMNS)) == (12, 1024, 3)
    monkeypatch.setattr(S, "PATIENT_COLUMNS", ("sex", "age"))
    monkeypatch.setattr(S, "CANONICAL_LEADS", CANONICAL_LEADS[:8])
    text = S.summarize_methods(vae, unet, vae, unet, vae_cfg, SimpleNamespace(arch="film"), 384)
    assert "compresses 8 × 1024 values to 4 × 128 (16× fewer)" in text and "plus 2 patient values" in text


def test_data_sentences():
    from diffusets_core.data.overview import statement_table

    ok = records()
    manifest = pd.DataFrame(
        {
            "status": ["ok"] * 6 + ["skipped"],
            "record_id": [f"r{i}" for i in range(7)],
            "source_path": ["p"] * 7,
            "reason": [""] * 6 + ["too short"],
        }
    )
    assert S.describe_reports(ok) == (
        "4 distinct reports among 6 records; 5 distinct statements; median 2 statements per report"
    )
    text = S.summarize_data("cohort", manifest, ok, statement_table(ok), 123.4, 2).splitlines()
    assert text[0] == "- Source `cohort`: 7 records, 6 prepared, 1 skipped with a reason."
    assert text[1] == "- Split by subject: train 3, val 1, test 2; subjects in more than one split: 1."
    assert text[2] == "- 4 distinct reports; the most frequent statement is “Sinus rhythm” (67% of records)."
    assert text[3].startswith("- Heart rate 52–") and "age 30–70 years; 67% women." in text[3]
    assert text[4] == "- Preparation: 123 records/s with 2 worker(s)."
    shown = S.skipped_view("REASONS", manifest)
    assert shown[0] == "REASONS" and shown[1]["reason"].tolist() == ["too short"]
    none = S.skipped_view("REASONS", manifest[manifest.status == "ok"])
    assert none[0].data == "No record was skipped: all 6 records of the source were usable."


def test_text_summary_verdicts():
    first = {
        "records": 6,
        "distinct_prompts": 4,
        "prompts_saved_by_dedup": 2,
        "newly_embedded": 4,
        "cache_hits": 0,
        "identity": {"backend": "local", "model": "m", "dim": 384, "prompt_mode": "paper"},
    }
    second = {"distinct_prompts": 4, "cache_hits": 4, "newly_embedded": 0}
    probe = {"k": 1, "mae": 5.0, "mae_shuffled": 10.0, "mae_mean": 9.0, "r": 0.5}
    lines = S.summarize_text(first, second, probe).splitlines()
    assert lines[0] == "- 6 records have 4 distinct ordered prompts (2 embeddings saved by de-duplication)."
    assert lines[2] == (
        "- Cache: the first call embedded 4 prompts (0 already cached); the second call found 100% of "
        "the prompts in the cache and embedded 0."
    )
    assert lines[3].startswith(
        "- Report vectors do carry heart-rate information: a 1-NN regressor predicts heart "
        "rate with MAE 5.0 bpm, against 10.0 bpm on shuffled labels and 9.0 bpm for the mean "
        "(correlation 0.50)."
    )
    assert "carry little heart-rate information" in S.summarize_text(first, second, dict(probe, mae=9.0))


def test_diffusion_summary_names_the_fastest_sampler():
    samplers = pd.DataFrame(
        {"steps": [1000, 50, 20], "seconds per ECG": [10.0, 0.5, 0.2], "HR MAE (bpm)": [3.0, 4.0, 5.0]},
        index=pd.Index(["ddpm", "ddim", "dpmsolver++"], name="sampler"),
    )
    samplers["speed-up vs DDPM"] = 10.0 / samplers["seconds per ECG"]
    summary = {
        "params": 2_500_000,
        "text_dim": 384,
        "steps": 80,
        "seconds": 90,
        "samples_per_s": 41.6,
        "best_val_loss": 0.12345,
    }
    lines = S.summarize_diffusion(summary, samplers, 1000, 4).splitlines()
    assert lines == [
        "- U-Net (2.50 M parameters, 384-d text condition) trained for 80 steps in 1.5 min (42 samples/s); best "
        "validation loss 0.1235.",
        "- DDPM-1000: 10.00 s per ECG, HR MAE 3.0 bpm on 4 test conditions.",
        "- dpmsolver++ (20 steps) is 50× faster with HR MAE 5.0 bpm; DDIM-50: 20× faster, HR MAE 4.0 bpm.",
    ]
    # the DDIM step count is the table's; an HR that could not be measured reads n/a, not nan
    samplers.loc["ddim", "steps"] = 40
    samplers.loc["ddpm", "HR MAE (bpm)"] = float("nan")
    lines = S.summarize_diffusion(summary, samplers, 1000, 4).splitlines()
    assert lines[1] == "- DDPM-1000: 10.00 s per ECG, HR MAE n/a bpm on 4 test conditions."
    assert lines[2].endswith("; DDIM-40: 20× faster, HR MAE 4.0 bpm.")


def test_generation_summary():
    grid = pd.DataFrame({"report": ["a", "a", "b", "b"]})
    errors = {
        "rate-matched report": {"mae": 4.0, "bias": -1.5, "frac_within_5": 0.5, "frac_valid": 1.0},
        "fixed report": {"mae": 20.0, "bias": -18.0},
    }
    lines = S.summarize_generation(grid, 2, 2, [50, 100, 150], 2, errors).splitlines()
    assert lines[0].startswith("- 4 gallery ECGs for 2 reports × 2 patients were written to `samples/gallery/`")
    assert lines[1] == (
        "- Heart-rate sweep over 50–150 bpm (2 ECGs per rate and series): with a rate-matched report "
        "the measured HR is off by 4.0 bpm on average (bias -1.5 bpm, 50% within 5 bpm, 100% "
        "measurable); with a fixed sinus-rhythm report, by 20.0 bpm (bias -18.0)."
    )
    assert (
        S.summarize_generation(grid, 2, 2, [50], 2, {})
        .splitlines()[1]
        .endswith(
            "off by n/a bpm on average (bias n/a bpm, n/a within 5 bpm, n/a measurable); with a fixed sinus-rhythm "
            "report, by n/a bpm (bias n/a)."
        )
    )


def test_rare_disease_summary():
    descs = [SimpleNamespace(name="hyperkalemia")]
    sig = pd.DataFrame(
        [
            {
                "condition": "hyperkalemia",
                "feature": "t_amp_V3",
                "expected": "higher",
                "mean_case": 0.61,
                "mean_control": 0.3,
                "effect": 2.5,
                "ci_lo": 1.2,
                "ci_hi": 3.9,
                "p": 0.004,
                "n_case": 6,
                "n_control": 6,
                "verdict": stats.PRESENT,
            }
        ]
    )
    lines = S.summarize_rare_disease(
        descs,
        sig,
        sex="M",
        age=24,
        hr=90,
        n=6,
        control_report="Sinus rhythm|Normal ECG",
        sampler="ddim",
        steps=20,
        source="table",
        table_path="eval/rare_disease_signatures.csv",
    ).splitlines()
    assert lines[0] == (
        "- Patient: M, 24 y, 90 bpm; 6 ECGs per condition and 6 controls from `Sinus rhythm|Normal "
        "ECG`; ddim sampler, 20 steps; descriptions from the cited table."
    )
    assert lines[1].startswith("- **hyperkalemia**: signature present: 1 of 1 features")
    assert lines[2] == (
        "  - `t_amp_V3` (expected higher): 0.61 vs 0.3, g = 2.50 [95% CI 1.20, 3.90], p = 0.004, "
        f"n = 6/6 — {stats.PRESENT}."
    )
    assert lines[3] == "- Tables written to `eval/rare_disease_signatures.csv` in the run directory."


def test_knowledge_summary_reports_shifts_and_their_absence():
    exps = [SimpleNamespace(name="hyperkalemia", label="Hyperkalemia added"), SimpleNamespace(name="age", label="Age")]
    table = pd.DataFrame(
        [
            {
                "experiment": "hyperkalemia",
                "feature": "t_amp_II",
                "diff": 0.12,
                "effect": 1.5,
                "ci_lo": 0.4,
                "ci_hi": 2.0,
                "verdict": "shift up",
            },
            {
                "experiment": "age",
                "feature": "t_amp_II",
                "diff": 0.0,
                "effect": 0.1,
                "ci_lo": -1.0,
                "ci_hi": 1.0,
                "verdict": "no shift",
            },
        ]
    )
    pts = pd.DataFrame({"pc1": [0.0, 1.0, 2.0], "pc2": [1.0, 0.0, 2.0], "hr": [60, 70, 80], "report": ["a", "b", "a"]})
    view = SimpleNamespace(points=pts, explained=[0.5, 0.25])
    lines = S.summarize_knowledge(
        exps,
        table,
        view,
        n=4,
        sampler="ddim",
        steps=20,
        base_report="SR",
        base_sex="M",
        base_age=50,
        base_hr=75,
        table_path="eval/knowledge_shifts.csv",
    ).splitlines()
    assert lines[1] == (
        "- **Hyperkalemia added**: shifts with a 95% CI excluding 0 — `t_amp_II` +0.12 (d_z 1.50 [0.40, 2.00])."
    )
    assert lines[2].startswith("- **Age**: no feature shift detected")
    assert lines[3] == (
        "- Embedding space: 3 records, 2 distinct reports; PC1 and PC2 explain 50% and 25% of the "
        "variance; Spearman correlation with HR: PC1 1.00, PC2 0.50."
    )


def test_gallery_and_explorer_summaries():
    quiz = pd.DataFrame({"source": ["real", "generated", "generated"]})
    text = S.summarize_gallery(
        pd.DataFrame({"class": ["a", "b"]}), 10, quiz, max_classes=8, n_generated=2, sampler="ddim", steps=20, seed=0
    )
    assert text.splitlines()[1] == "- Quiz: 3 ECGs, 1 real and 2 generated, order shuffled with seed 0."
    res = SimpleNamespace(reading=["Sinus rhythm", "RBBB"], matched=lambda: True)
    latency = pd.Series({"generate": 0.5, "measure": 0.25, "compare": 0.25})
    lines = S.summarize_explorer(
        latency,
        3,
        sampler="dpmsolver++",
        steps=20,
        example={"report": "Sinus rhythm|RBBB"},
        result=res,
        bad_inputs=pd.DataFrame(
            {"input": ["age", "sex", "hr"], "message": ["age: expected ...", "(accepted)", "hr: expected ..."]}
        ),
        table=pd.DataFrame({"agree": [1.0, 0.0]}),
        n_classes=1,
        grid_seconds=2.0,
    ).splitlines()
    assert lines[0].startswith(
        "- Widget back-end: one ECG generated, measured, read and compared in 1.00 s (median of 3"
    )
    assert (
        lines[1]
        == "- For *Sinus rhythm / RBBB* the interpreter read *Sinus rhythm / RBBB*: it names the requested classes."
    )
    assert lines[3].endswith("the interpreter's reading names the requested classes for 50% of them.")
    assert (
        lines[2]
        == "- 2 of 3 kinds of bad input refused with a message naming the field; accepted without a message: sex."
    )

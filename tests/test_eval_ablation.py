import pandas as pd
import pytest

from diffusets_core.eval.ablation import summarize_ablation


def test_summarize_ablation_reads_every_number_from_the_table():
    t = pd.DataFrame(
        {
            "run": [1, 1, 1, 1, 2, 2],
            "variant": ["real test ECGs", "VAE ceiling (new)", "A", "  B", "A", "C"],
            "macro_recall_morphology": [0.87, 0.72, 0.40, 0.55, 0.41, 0.30],
            "para_hr_mae_50_150": [None, None, 9.0, 12.5, 8.0, 7.0],
            "rfid": [0.0, 2.7, 14.0, 11.0, 13.0, 15.0],
        }
    )
    lines = summarize_ablation(t)
    text = "\n".join(lines)
    assert lines[0].startswith("- Run 1: highest morphology macro recall **B** (0.55), lowest A (0.40)")
    assert "real test ECGs 0.87; VAE ceiling (new) 0.72" in lines[0]
    assert "Best HR MAE on paraphrased reports (bpm): A (9.00; range 9.00–12.50)" in text
    assert "- Run 2: highest morphology macro recall **A** (0.41), lowest C (0.30)." in text
    assert "Best rFID: B (11.00" in text
    single = summarize_ablation(t[t["run"] == 1].drop(columns="run"))
    assert single[0].startswith("- The ablation: highest")
    with pytest.raises(ValueError, match="macro_recall_morphology"):
        summarize_ablation(t.drop(columns="macro_recall_morphology"))

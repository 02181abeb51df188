"""The four kinds of request the benchmark sends: held-out wordings that keep the findings, paraphrases that are not
training wordings, held-out combinations built with reference ECGs, and the multi-label reading of each kind."""

import math

import numpy as np
import pandas as pd
import pytest

from diffusets_core.data.cohort import wordings as W
from diffusets_core.data.cohort.findings import HELD_OUT_COMBINATIONS
from diffusets_core.eval.classifiers import labels_for_reports
from diffusets_core.eval.paraphrase import load_paraphrases, remaining_paraphrases
from diffusets_core.eval.request_level import RequestRead, all_requested, request_tables
from diffusets_core.eval.requests import combination_set, paraphrased_records, reworded_records

TRAIN_WORDINGS = {W.normalise(w) for s in W.statements() for w in W.wordings(s, "train")}
HELD_OUT_WORDINGS = {W.normalise(w) for s in W.statements() for w in W.wordings(s, "held_out")}


def _records(n: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fids = [("sinus_rhythm", "rbbb", "abnormal_ecg"), ("atrial_fibrillation", "t_inversion_lateral", "abnormal_ecg"),
            ("sinus_bradycardia", "av_block_1", "abnormal_ecg"), ("sinus_rhythm", "normal_ecg")]  # fmt: skip
    rows = []
    for i in range(n):
        f = fids[i % len(fids)]
        rows.append({"report": W.word_report(f, rng, "train"), "findings": "|".join(f), "age": 50.0, "sex": "F",
                     "hr": 70.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_reworded_reports_use_held_out_wordings_of_the_same_findings():
    recs = _records()
    a, b = reworded_records(recs, seed=0), reworded_records(recs, seed=0)
    pd.testing.assert_frame_equal(a, b)  # seeded
    assert not a["report"].equals(reworded_records(recs, seed=1)["report"])
    assert (a["reworded_share"] == 1.0).all() and (a["original_report"] == recs["report"]).all()
    for rep, f in zip(a["report"], recs["findings"]):
        items = rep.split("|")
        assert [W.finding_of(s) for s in items] == f.split("|")  # same findings, same order
        assert all(W.normalise(s) in HELD_OUT_WORDINGS and W.normalise(s) not in TRAIN_WORDINGS for s in items)
    # the judge's labels come from the findings: identical for both wordings
    np.testing.assert_array_equal(
        labels_for_reports(a["report"].tolist())[0], labels_for_reports(recs["report"].tolist())[0]
    )
    with pytest.raises(ValueError, match="wording bank"):
        reworded_records(pd.DataFrame({"report": ["Sinus rhythm with some unheard-of statement xyz"]}), 0)


def test_paraphrases_that_are_training_wordings_are_left_out(monkeypatch):
    from diffusets_core.eval import paraphrase

    remaining = remaining_paraphrases()
    full = load_paraphrases()
    assert remaining and set(remaining) <= set(full)
    dropped = [p for s, opts in full.items() for p in opts if p not in remaining.get(s, [])]
    assert all(W.normalise(p) in TRAIN_WORDINGS for p in dropped)
    assert not {W.normalise(p) for opts in remaining.values() for p in opts} & TRAIN_WORDINGS
    out = paraphrased_records(_records(), seed=0)
    for orig, rep in zip(out["original_report"], out["report"]):
        for o, r in zip(orig.split("|"), rep.split("|")):
            canon = W.statement_of_wording(o)
            assert r == o if canon not in remaining else r in remaining[canon]
    assert 0 < out["reworded_share"].mean() <= 1
    trained = W.wordings("Right bundle branch block", "train")[0]
    table = {"Right bundle branch block": [trained.upper(), "RBBB pattern, complete"], "Normal ECG": [trained]}
    monkeypatch.setattr(paraphrase, "load_paraphrases", lambda: table)
    assert remaining_paraphrases() == {"Right bundle branch block": ["RBBB pattern, complete"]}


def test_combination_set_builds_each_combination_with_references(tmp_path):
    combos = (("atrial_fibrillation", "rbbb"), ("sinus_tachycardia", "av_block_1"))
    s = combination_set(2, seed=0, combinations=combos, cache_dir=tmp_path)
    built = s.built.set_index("combination")
    assert built.loc["atrial_fibrillation+rbbb", "attempted"] == 2
    # the planner caps the rate of a first-degree block below the sinus tachycardia range: never drawn together
    assert built.loc["sinus_tachycardia+av_block_1", "kept"] == 0
    assert len(s.conditions) == built["kept"].sum() == s.signals.shape[0] > 0
    assert s.signals.shape[1:] == (12, 1024) and s.signals.dtype == np.float32
    for _, r in s.conditions.iterrows():
        said = r["findings"].split("|")
        assert set(r["combination"].split("+")) <= set(said)
        assert [W.finding_of(x) for x in r["report"].split("|")] == said  # the report says what was found
        assert all(W.normalise(x) in TRAIN_WORDINGS for x in r["report"].split("|"))
        assert 30 <= r["hr"] <= 200
    again = combination_set(2, seed=0, combinations=combos, cache_dir=tmp_path)  # read back from the cache
    np.testing.assert_array_equal(again.signals, s.signals)
    pd.testing.assert_frame_equal(again.conditions, s.conditions)
    with pytest.raises(ValueError, match="per_combination"):
        combination_set(0, seed=0)
    assert ("atrial_fibrillation", "rbbb") in HELD_OUT_COMBINATIONS


def test_all_requested_needs_every_trained_class():
    th = np.array([0.5, 0.5, 0.5])
    valid = np.array([True, True, False])
    labels = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1], [1, 0, 0]], float)
    proba = np.array([[0.9, 0.8, 0.0], [0.9, 0.1, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.9, 0.9]])
    # row 2: its untrained class does not count; row 3: nothing trained was requested
    np.testing.assert_array_equal(all_requested(proba, th, labels, valid), [True, False, True, False, False])


def test_request_tables_per_kind_and_class():
    classes = ["normal", "rbbb", "t_inversion"]
    th, valid = np.full(3, 0.5), np.ones(3, bool)
    labels = np.array([[0, 1, 1]] * 4 + [[1, 0, 0]] * 2, float)
    gen = np.array([[0, 1, 1], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]], float)
    ref = np.array([[0, 1, 1]] * 4 + [[1, 0, 0]] * 2, float)
    reads = {"seen": RequestRead(ref, labels, ref, labels, ref, hr_mae=1.0, share_reworded=0.0),
             "combinations": RequestRead(gen, labels, ref, labels, None, hr_mae=3.0)}  # fmt: skip
    rows, summary = request_tables(reads, th, valid, classes)
    r = rows.set_index(["kind", "class"])
    assert r.loc[("combinations", "rbbb"), "recall"] == 0.75 and r.loc[("combinations", "rbbb"), "support"] == 4
    assert r.loc[("combinations", "normal"), "recall"] == 0.5
    assert r.loc[("combinations", "rbbb"), "reference_recall"] == 1.0
    lo, hi = r.loc[("combinations", "rbbb"), ["recall_lo", "recall_hi"]]
    assert lo < 0.75 < hi
    s = summary.set_index("kind")
    assert s.loc["seen", "all_requested"] == 1.0
    assert s.loc["combinations", "all_requested"] == pytest.approx(3 / 6)  # rows 0, 3 and 4
    assert s.loc["combinations", "macro_recall_morphology"] == pytest.approx((0.75 + 0.75) / 2)
    assert math.isnan(s.loc["combinations", "vae_macro_recall_morphology"])
    assert list(summary["kind"]) == ["seen", "combinations"]

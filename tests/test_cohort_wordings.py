"""The wording bank: every catalogue statement worded at least six ways, a fixed train / held-out split, one finding
per wording, and no overlap with the independent paraphrase set of the benchmark."""

import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffusets_core.data.cohort import findings as F
from diffusets_core.data.cohort import wordings as W

PARAPHRASES = Path(W.__file__).parents[2] / "eval" / "paraphrases.yaml"


def _paraphrases() -> list[str]:
    table = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))["paraphrases"]
    return [p for options in table.values() for p in options]


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.casefold()))


def test_every_catalogue_statement_has_six_wordings_and_a_held_out_split():
    statements = {s for f in F.FINDINGS for s in f.statements}
    assert set(W.statements()) == statements
    counts = []
    for st in statements:
        train, held = W.wordings(st, "train"), W.wordings(st, "held_out")
        counts.append(len(train) + len(held))
        assert len(train) + len(held) >= 6 and len(train) >= 4, st
        assert train[0] == st  # the canonical statement is one of the training wordings
        assert len(held) >= 2, st
        kinds = {w.kind for w in W.load_bank().by_statement[st]["held_out"]}
        assert kinds == {"abbreviation", "phrase"}, st
        assert not {W.normalise(t) for t in train} & {W.normalise(h) for h in held}
    assert min(counts) >= 6 and statistics.median(counts) >= 8


def test_each_wording_maps_to_exactly_one_finding():
    bank = W.load_bank()
    seen: dict[str, str] = {}
    for st, parts in bank.by_statement.items():
        for part in W.PARTS:
            for w in parts[part]:
                key = W.normalise(w.text)
                assert key not in seen, (w.text, seen.get(key))
                seen[key] = w.finding
                assert W.finding_of(w.text) == F.finding_of_statement(st) == w.finding
                assert W.finding_of(f"  {w.text.upper()}. ") == w.finding  # compared normalised
                assert W.statement_of_wording(w.text) == st
    assert W.finding_of("LVH w/ strain") == "lvh_strain" and W.finding_of("1st deg AVB") == "av_block_1"
    with pytest.raises(KeyError, match="not a wording of the bank"):
        W.finding_of("Right bundle branch block with something else")


def _write_bank(tmp_path: Path, edit) -> str:
    data = yaml.safe_load(W.BANK_FILE.read_text(encoding="utf-8"))
    edit(data["statements"])
    p = tmp_path / "bank.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(p)


@pytest.mark.parametrize(
    "edit, message",
    [
        # the same wording under two findings: ambiguous
        (lambda s: s["Left bundle branch block"]["train"].append("Right BBB"), "exactly one statement and finding"),
        (lambda s: s["Peaked T waves"]["train"].append("tall t   WAVES."), "exactly one statement and finding"),
        (lambda s: s.pop("Atrial flutter"), "missing \\['Atrial flutter'\\]"),
        (lambda s: s["Sinus rhythm"].update(finding="sinus_bradycardia"), "the catalogue says 'sinus_rhythm'"),
        (lambda s: s["Sinus rhythm"]["held_out"].pop(), "at least 2 held-out wordings"),
        (lambda s: s["Sinus rhythm"]["train"].reverse(), "must be the canonical statement"),
        (lambda s: s["Sinus rhythm"].update(train=["Sinus rhythm", "SR"]), "at least 6 expected"),
        (lambda s: s["Sinus rhythm"]["train"].append("SR|NSR"), "contains '\\|'"),
    ],
)
def test_a_bad_bank_is_refused_at_load(tmp_path, edit, message):
    path = _write_bank(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as err:
        W.load_bank(path)
    assert path in str(err.value)


def test_bank_is_disjoint_from_the_paraphrase_set():
    """eval/paraphrases.yaml stays an independent held-out set: no bank wording equals one of its paraphrases
    (normalised), and no training wording contains one of its multi-word paraphrases or uses one of its one-word
    abbreviations as a word."""
    para = _paraphrases()
    norm_para = {W.normalise(p) for p in para}
    bank = W.load_bank()
    assert not set(bank.by_text) & norm_para
    single = {W.normalise(p) for p in para if len(p.split()) == 1}
    multi = {W.normalise(p) for p in para if len(p.split()) > 1}
    assert {"nsr", "af", "rbbb", "lbbb", "pvc"} <= single
    for st in W.statements():
        for t in W.wordings(st, "train"):
            assert not _tokens(t) & single, t
            assert not any(m in W.normalise(t) for m in multi), t


def test_no_wording_names_a_condition_kept_out_of_training():
    for text in W.load_bank().by_text:
        assert not re.search(r"brugada|kal(a)?emi|potassium", text), text


def test_word_statement_and_report():
    rng = np.random.default_rng(0)
    got = {W.word_statement("Right bundle branch block", rng) for _ in range(200)}
    assert got == set(W.wordings("Right bundle branch block"))
    got = {W.word_statement("Right bundle branch block", rng, part="held_out") for _ in range(50)}
    assert got == set(W.wordings("Right bundle branch block", "held_out"))
    with pytest.raises(ValueError, match="part must be one of"):
        W.wordings("Sinus rhythm", "test")
    with pytest.raises(KeyError, match="not a canonical statement"):
        W.word_statement("RBBB", rng)
    # finding ids or canonical statements, put in report order, one wording each, joined with "|"
    items = ["abnormal_ecg", "Right bundle branch block", "sinus_rhythm", "Ventricular premature complexes"]
    a = W.word_report(items, np.random.default_rng(5))
    assert a == W.word_report(items, np.random.default_rng(5))  # deterministic for a seed
    parts = a.split("|")
    assert [W.finding_of(p) for p in parts] == ["sinus_rhythm", "pvc", "rbbb", "abnormal_ecg"]
    assert W.statement_of_wording(parts[1]) == "Ventricular premature complexes"  # the plural is kept
    train = {W.normalise(t) for st in W.statements() for t in W.wordings(st)}
    many = [W.word_report(items, rng) for _ in range(300)]
    assert all(W.normalise(p) in train for r in many for p in r.split("|"))
    assert len(set(many)) > 100  # reports are worded many ways
    with pytest.raises(KeyError, match="neither a finding id nor a canonical statement"):
        W.word_report(["RBBB"], rng)

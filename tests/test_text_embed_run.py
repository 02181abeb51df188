import json

import numpy as np
import pandas as pd
import pytest

from diffusets_core.text import EmbedConfig, embed_run, load_run_embeddings, ordered_prompt
from diffusets_core.text.embedders import HashEmbedder

COLUMNS = [
    "record_id",
    "subject_id",
    "split",
    "report",
    "age",
    "sex",
    "hr",
    "hr_source",
    "source",
    "source_path",
    "status",
    "reason",
    "shard",
    "row",
]


def write_manifest(run_dir, rows=None):
    """A tiny hand-written manifest per CONTRACTS.md (5 ok rows with 3 distinct reports, 1 skipped)."""
    if rows is None:
        rows = [
            ("40000001", "10000001", "train", "Sinus rhythm|Normal ECG.", 63, "M", 71.2, "ok", ""),
            ("40000002", "10000002", "train", "Sinus tachycardia|ST elevation|Abnormal ECG.", 54, "F", 118.0, "ok", ""),
            ("40000003", "10000003", "val", "Sinus rhythm|Normal ECG.", 40, "F", 66.0, "ok", ""),
            ("40000004", "10000004", "", "", "", "", "", "skipped", "unreadable header"),
            ("40000005", "10000005", "test", " Sinus rhythm | Normal ECG. ", 77, "M", 80.5, "ok", ""),
            ("40000006", "10000001", "train", "Atrial fibrillation", 63, "M", 95.0, "ok", ""),
        ]
    recs = []
    for i, (rid, sid, split, rep, age, sex, hr, status, reason) in enumerate(rows):
        ok = status == "ok"
        recs.append(
            {
                "record_id": rid,
                "subject_id": sid,
                "split": split,
                "report": rep,
                "age": age,
                "sex": sex,
                "hr": hr,
                "hr_source": "rr_interval" if ok else "",
                "source": "cohort",
                "source_path": f"files/p1000/p{sid}/s{rid}/{rid}",
                "status": status,
                "reason": reason,
                "shard": 0 if ok else "",
                "row": i if ok else "",
            }
        )
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(recs, columns=COLUMNS).to_csv(run_dir / "data" / "manifest.csv", index=False)


class CountingHash(HashEmbedder):
    """Hash embedder that counts embedded texts and can fail after k calls (simulated kill)."""

    def __init__(self, fail_after=None, **kw):
        super().__init__(**kw)
        self.fail_after = fail_after
        self.seen = []

    def _embed(self, texts):
        if self.fail_after is not None and self.stats["embed_calls"] > self.fail_after:
            raise KeyboardInterrupt("killed")
        self.seen.extend(texts)
        return super()._embed(texts)


def test_embed_run_hash_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    write_manifest(tmp_path)
    c = embed_run(tmp_path, EmbedConfig(backend="hash", batch_size=2), progress=False, dim=16)
    assert c["records"] == 5 and c["distinct_prompts"] == 3  # the padded report strips to the same prompt
    assert c["newly_embedded"] == 3 and c["cache_hits"] == 0 and c["embed_batches"] == 2
    assert c["api_calls"] == 0 and c["prompts_saved_by_dedup"] == 2 and c["api_calls_saved_by_dedup"] == 1
    out = tmp_path / "embeddings"
    assert sorted(p.name for p in out.iterdir()) == [
        "cache",
        "distinct_prompts.csv",
        "identity.json",
        "prompts.csv",
        "vectors.npy",
    ]
    table = pd.read_csv(out / "prompts.csv", dtype={"record_id": str})
    assert table["record_id"].tolist() == ["40000001", "40000002", "40000003", "40000005", "40000006"]
    assert table["prompt_index"].tolist() == [0, 1, 0, 0, 2]
    vec = np.load(out / "vectors.npy")
    assert vec.shape == (3, 16) and vec.dtype == np.float32
    distinct = pd.read_csv(out / "distinct_prompts.csv")["prompt"].tolist()
    assert distinct[0] == ordered_prompt("Sinus rhythm|Normal ECG.")
    np.testing.assert_array_equal(vec, HashEmbedder(dim=16).embed(distinct))
    ident = json.loads((out / "identity.json").read_text())
    assert {k: ident[k] for k in ("backend", "model", "dim", "prompt_mode")} == {
        "backend": "hash",
        "model": "hash-sha256-v1",
        "dim": 16,
        "prompt_mode": "paper",
    }
    assert ident["package_version"]
    ids, m, ident2 = load_run_embeddings(tmp_path)
    assert ids == table["record_id"].tolist() and m.shape == (5, 16)
    np.testing.assert_array_equal(m[0], m[2])
    assert ident2["dim"] == 16
    # second run: everything from the cache
    c2 = embed_run(tmp_path, EmbedConfig(backend="hash"), progress=False, dim=16)
    assert c2["cache_hits"] == 3 and c2["newly_embedded"] == 0 and c2["embed_batches"] == 0
    # another prompt mode is another identity -> embedded again, different vectors
    c3 = embed_run(tmp_path, EmbedConfig(backend="hash", prompt_mode="clean"), progress=False, dim=16)
    assert c3["newly_embedded"] == 3 and c3["identity"]["prompt_mode"] == "clean"
    assert not np.allclose(load_run_embeddings(tmp_path)[1], m)


def test_cache_env_var_and_cache_dir(tmp_path, monkeypatch):
    shared = tmp_path / "shared-cache"
    monkeypatch.setenv("DIFFUSETS_CACHE", str(shared))
    for name in ("run_a", "run_b"):
        write_manifest(tmp_path / name)
    a = embed_run(tmp_path / "run_a", EmbedConfig(backend="hash"), progress=False)
    b = embed_run(tmp_path / "run_b", EmbedConfig(backend="hash"), progress=False)
    assert a["newly_embedded"] == 3 and b["cache_hits"] == 3 and b["newly_embedded"] == 0
    assert shared.is_dir() and not (tmp_path / "run_a" / "embeddings" / "cache").exists()
    c = embed_run(tmp_path / "run_a", EmbedConfig(backend="hash"), progress=False, cache_dir=tmp_path / "explicit")
    assert c["newly_embedded"] == 3 and (tmp_path / "explicit").is_dir()


def test_kill_mid_run_then_resume(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    rows = [
        (f"4{i:07d}", f"1{i:07d}", "train", f"Statement {i % 37}|Other {i % 5}", 50, "M", 70, "ok", "")
        for i in range(200)
    ]
    write_manifest(tmp_path, rows)
    dying = CountingHash(fail_after=3, dim=16)
    with pytest.raises(KeyboardInterrupt):
        embed_run(tmp_path, EmbedConfig(batch_size=10), embedder=dying, progress=False)
    assert len(dying.seen) == 30 and len(set(dying.seen)) == 30  # 3 batches paid for
    assert not (tmp_path / "embeddings" / "vectors.npy").exists()
    resumed = CountingHash(dim=16)
    c = embed_run(tmp_path, EmbedConfig(batch_size=10), embedder=resumed, progress=False)
    n_distinct = len({(i % 37, i % 5) for i in range(200)})
    assert c["distinct_prompts"] == n_distinct and c["cache_hits"] == 30
    assert c["newly_embedded"] == n_distinct - 30
    assert not set(resumed.seen) & set(dying.seen)  # nothing recomputed
    assert len(resumed.seen) == n_distinct - 30
    _, m, _ = load_run_embeddings(tmp_path)
    fresh = tmp_path / "fresh"
    write_manifest(fresh, rows)
    embed_run(fresh, EmbedConfig(backend="hash", batch_size=64), progress=False, dim=16)
    np.testing.assert_array_equal(m, load_run_embeddings(fresh)[1])  # nothing lost or corrupted


def test_auto_consolidate(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    rows = [(f"4{i:07d}", "1", "train", f"S{i}", 50, "M", 70, "ok", "") for i in range(40)]
    write_manifest(tmp_path, rows)
    c = embed_run(tmp_path, EmbedConfig(backend="hash", batch_size=2), progress=False, auto_consolidate=5)
    assert c["embed_batches"] == 20
    assert len(list((tmp_path / "embeddings" / "cache").rglob("seg-*.keys"))) == 1


def test_local_backend_embed_run(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    write_manifest(tmp_path)
    c = embed_run(tmp_path, EmbedConfig(device="cpu"), progress=True)
    assert c["identity"] == {
        "backend": "local",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "dim": 384,
        "prompt_mode": "paper",
    }
    ids, m, ident = load_run_embeddings(tmp_path)
    assert m.shape == (5, 384) and ident["dim"] == 384
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1, atol=1e-5)


def test_load_detects_stale_embeddings(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    write_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="embed_run"):
        load_run_embeddings(tmp_path)
    embed_run(tmp_path, EmbedConfig(backend="hash"), progress=False)
    df = pd.read_csv(tmp_path / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    df = pd.concat([df, df.iloc[[0]].assign(record_id="49999999")])
    df.to_csv(tmp_path / "data" / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="49999999"):
        load_run_embeddings(tmp_path)
    # reordered manifest rows: matrix follows the manifest
    write_manifest(tmp_path)
    df = pd.read_csv(tmp_path / "data" / "manifest.csv", dtype=str, keep_default_na=False).iloc[::-1]
    df.to_csv(tmp_path / "data" / "manifest.csv", index=False)
    ids, m, _ = load_run_embeddings(tmp_path)
    assert ids[0] == "40000006"

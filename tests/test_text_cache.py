import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from diffusets_core.text.cache import EmbeddingCache, prompt_key
from diffusets_core.text.embedders import EmbedderIdentity, HashEmbedder

IDENT = HashEmbedder(dim=16).identity


def vec_for(text: str, dim: int = 16) -> np.ndarray:
    return HashEmbedder(dim=dim).embed([text])[0]


def texts(a, b):
    return [f"prompt {i}" for i in range(a, b)]


def fill(cache, lo, hi):
    t = texts(lo, hi)
    cache.add(t, HashEmbedder(dim=16).embed(t))
    return t


def test_roundtrip_and_each_prompt_once(tmp_path):
    c = EmbeddingCache(tmp_path, IDENT)
    assert len(c) == 0
    t = fill(c, 0, 10)
    assert c.add(t[:5], np.zeros((5, 16), np.float32)) == 0  # already cached -> nothing written
    c2 = EmbeddingCache(tmp_path, IDENT)
    assert len(c2) == 10 and "prompt 3" in c2 and "prompt 99" not in c2
    np.testing.assert_array_equal(c2.get(t), HashEmbedder(dim=16).embed(t))
    vecs, missing = c2.lookup(["prompt 99", "prompt 2"])
    assert missing == [0] and np.allclose(vecs[1], vec_for("prompt 2")) and not vecs[0].any()
    with pytest.raises(KeyError):
        c2.get(["prompt 99"])
    assert (c.dir / "identity.json").exists() and "hash" in c.dir.name
    assert prompt_key("x") == prompt_key("x") != prompt_key("x ")  # exact text


def test_identity_separates_caches(tmp_path):
    a = EmbeddingCache(tmp_path, IDENT)
    fill(a, 0, 3)
    other = [
        EmbedderIdentity("hash", "hash-sha256-v1", 16, "clean"),
        EmbedderIdentity("hash", "other-model", 16, "paper"),
        EmbedderIdentity("openai", "m", None, "paper", "http://127.0.0.1:1/v1"),
        EmbedderIdentity("openai", "m", None, "paper", "http://127.0.0.1:2/v1"),
    ]
    dirs = {a.dir} | {EmbeddingCache(tmp_path, i).dir for i in other}
    assert len(dirs) == 5
    assert all(len(EmbeddingCache(tmp_path, i)) == 0 for i in other)


def test_dim_mismatch_rejected(tmp_path):
    c = EmbeddingCache(tmp_path, IDENT)
    fill(c, 0, 2)
    with pytest.raises(ValueError, match="16-d"):
        c.add(["new"], np.zeros((1, 8), np.float32))


@pytest.mark.parametrize("damage", ["truncate_npy", "truncate_keys", "orphan_npy", "garbage_keys"])
def test_torn_last_segment_is_ignored(tmp_path, damage, caplog):
    c = EmbeddingCache(tmp_path, IDENT)
    good = fill(c, 0, 10)
    torn = fill(c, 10, 20)
    last = c.segment_names()[-1]
    npy, keys = c.dir / f"{last}.npy", c.dir / f"{last}.keys"
    if damage == "truncate_npy":
        npy.write_bytes(npy.read_bytes()[:-100])
    elif damage == "truncate_keys":
        keys.write_bytes(keys.read_bytes()[:200])
    elif damage == "orphan_npy":  # crash between the two renames
        keys.unlink()
    else:
        keys.write_text("not a keys file")
    with caplog.at_level(logging.WARNING):
        c2 = EmbeddingCache(tmp_path, IDENT)
    assert len(c2) == 10
    np.testing.assert_array_equal(c2.get(good), c.get(good))
    assert c2.lookup(torn)[1] == list(range(10))
    if damage != "orphan_npy":
        assert "damaged cache segment" in caplog.text
    # the torn prompts can be embedded again, and consolidation cleans up
    fill(c2, 10, 20)
    os.utime(npy, (time.time() - 3600, time.time() - 3600)) if npy.exists() else None
    c2.consolidate()
    assert len(c2.segment_names()) == 1 and len(list(c2.dir.glob("seg-*.npy"))) == 1
    c3 = EmbeddingCache(tmp_path, IDENT)
    assert len(c3) == 20 and np.allclose(c3.get(torn), HashEmbedder(dim=16).embed(torn))


def test_consolidate_keeps_everything(tmp_path):
    c = EmbeddingCache(tmp_path, IDENT)
    for k in range(20):
        fill(c, 5 * k, 5 * k + 5)
    assert len(c.segment_names()) == 20
    assert c.consolidate() == 20
    assert len(c.segment_names()) == 1
    c2 = EmbeddingCache(tmp_path, IDENT, mmap=True)
    t = texts(0, 100)
    assert len(c2) == 100 and np.allclose(c2.get(t), HashEmbedder(dim=16).embed(t))


def _check_consistent(cache, expected):
    for text, row in expected.items():
        k = prompt_key(text)
        if k in cache._index:
            got = cache.get([text])[0]
            assert np.array_equal(got, row), text


def test_concurrent_reader_thread_sees_consistent_prefix(tmp_path):
    all_texts = texts(0, 300)
    expected = dict(zip(all_texts, HashEmbedder(dim=16).embed(all_texts)))
    writer_cache = EmbeddingCache(tmp_path, IDENT)
    done = threading.Event()
    errors = []

    def writer():
        try:
            for k in range(0, 300, 6):
                writer_cache.add(all_texts[k : k + 6], np.stack([expected[t] for t in all_texts[k : k + 6]]))
                if k == 150:
                    writer_cache.consolidate()  # concurrent consolidation must not confuse readers
        except Exception as e:  # pragma: no cover
            errors.append(e)
        finally:
            done.set()

    th = threading.Thread(target=writer)
    th.start()
    sizes = []
    follower = EmbeddingCache(tmp_path, IDENT)
    while not done.is_set() or len(sizes) < 3:
        fresh = EmbeddingCache(tmp_path, IDENT)
        assert len(fresh) % 6 == 0  # whole segments only
        _check_consistent(fresh, expected)
        follower.refresh()
        _check_consistent(follower, expected)
        sizes.append(len(follower))
    th.join()
    assert not errors
    assert sizes == sorted(sizes)
    follower.refresh()
    assert len(follower) == 300 and len(EmbeddingCache(tmp_path, IDENT)) == 300


WRITER = r"""
import sys, numpy as np
from diffusets_core.text.cache import EmbeddingCache
from diffusets_core.text.embedders import HashEmbedder
e = HashEmbedder(dim=16)
c = EmbeddingCache(sys.argv[1], e.identity)
for k in range(0, 400, 4):
    t = [f"prompt {i}" for i in range(k, k + 4)]
    c.add(t, e.embed(t))
"""


def test_concurrent_reader_process_writer(tmp_path):
    all_texts = texts(0, 400)
    expected = dict(zip(all_texts, HashEmbedder(dim=16).embed(all_texts)))
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    seen = []
    try:
        while p.poll() is None or len(seen) < 2:
            c = EmbeddingCache(tmp_path, IDENT)
            assert len(c) % 4 == 0
            _check_consistent(c, expected)
            seen.append(len(c))
    finally:
        p.wait(60)
    assert p.returncode == 0
    assert len(EmbeddingCache(tmp_path, IDENT)) == 400


def test_read_only_roots_are_read_and_never_written(tmp_path):
    """A run others only read: its cache is read beside a writable one, new vectors go to the writable one."""
    ro_root, rw_root = tmp_path / "run_cache", tmp_path / "user_cache"
    old = fill(EmbeddingCache(ro_root, IDENT), 0, 3)
    listing = sorted(p.name for p in (ro_root / IDENT.slug()).iterdir())
    c = EmbeddingCache(rw_root, IDENT, read_only_roots=[ro_root])
    assert len(c) == 3 and c.lookup(old)[1] == []
    np.testing.assert_array_equal(c.get(old), HashEmbedder(dim=16).embed(old))
    assert c.add(old, np.zeros((3, 16), np.float32)) == 0  # found in the read-only root: nothing written
    new = fill(c, 3, 5)
    assert sorted(p.name for p in (ro_root / IDENT.slug()).iterdir()) == listing
    again = EmbeddingCache(rw_root, IDENT)
    assert len(again) == 2 and again.lookup(new)[1] == []
    memory = EmbeddingCache(ro_root, IDENT, persist=False)  # a process that may write nowhere
    assert memory.add(texts(7, 9), HashEmbedder(dim=16).embed(texts(7, 9))) == 2 and "prompt 8" in memory
    assert memory.consolidate() == 0
    assert sorted(p.name for p in (ro_root / IDENT.slug()).iterdir()) == listing


def test_inference_cache_moves_out_of_a_run_it_may_not_write(tmp_path, monkeypatch):
    from diffusets_core import fileio
    from diffusets_core.text.embed import inference_cache

    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    run = tmp_path / "run"
    (run / "embeddings" / "cache").mkdir(parents=True)
    place = inference_cache(run, IDENT)
    assert place.root == run / "embeddings" / "cache" and place.read_only == () and place.note is None
    user = tmp_path / "xdg" / "diffusets" / "embeddings"
    monkeypatch.setattr(fileio, "writable_dir", lambda p: not str(p).startswith(str(run)))
    place = inference_cache(run, IDENT)
    assert place.root == user and place.read_only == (run / "embeddings" / "cache",)
    assert f"is not writable: embeddings of new prompts are cached in {user}" in place.note
    monkeypatch.setattr(fileio, "writable_dir", lambda p: False)
    place = inference_cache(run, IDENT)
    assert place.root is None and place.read_only == (run / "embeddings" / "cache",) and "not cached" in place.note

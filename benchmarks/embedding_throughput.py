"""Embedding throughput and cache load time.

    python benchmarks/embedding_throughput.py                    # local MiniLM throughput + 1M-entry cache
    python benchmarks/embedding_throughput.py --n-cache 100000   # smaller cache benchmark
    python benchmarks/embedding_throughput.py --skip-model       # cache only

Prints a table and writes ``benchmarks/out/embedding_throughput.json``.

1. Local backend (all-MiniLM-L6-v2, ``device`` auto): prompts/s for realistic ordered prompts (2-5 MIMIC-
   style statements, paper template), per batch size, after one warm-up batch.
2. Cache: ``n_cache`` synthetic 384-d entries written (a) as one consolidated segment and (b) as 100
   segments (as left by an interrupted run before consolidation); time to open the cache (= read all
   vectors + build the key index), time to look 100k prompts up, append speed for 64-vector segments.
   The page cache is warm (the files were just written); a cold read adds disk time (~1.5 GB for 1M).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusets_core.text.cache import EmbeddingCache, prompt_key  # noqa: E402
from diffusets_core.text.embedders import EmbedderIdentity  # noqa: E402
from diffusets_core.text.prompts import ordered_prompt  # noqa: E402

STATEMENTS = [
    "Sinus rhythm",
    "Sinus tachycardia",
    "Sinus bradycardia",
    "Atrial fibrillation",
    "Normal ECG.",
    "Abnormal ECG.",
    "Borderline ECG.",
    "1st degree A-V block",
    "Left bundle branch block",
    "Right bundle branch block",
    "Inferior ST elevation - consider acute infarct",
    "T wave inversion",
    "Prolonged QT interval",
    "Low QRS voltages in limb leads",
    "Ventricular premature complex",
    "Left axis deviation",
    "Anterior ST elevation",
    "Peaked T waves - consider hyperkalemia",
]


def synthetic_reports(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 6))
        out.append("|".join(rng.choice(STATEMENTS, size=k, replace=False)))
    return out


def bench_local(n: int, batch_sizes: list[int], device: str) -> dict:
    import torch

    from diffusets_core.text.embedders import LocalEmbedder

    prompts = [ordered_prompt(r) + f" #{i}" for i, r in enumerate(synthetic_reports(n))]
    res = {
        "n_prompts": n,
        "torch_threads": torch.get_num_threads(),
        "mean_prompt_chars": float(np.mean([len(p) for p in prompts])),
    }
    t = time.perf_counter()
    emb = LocalEmbedder(device=device).load()
    res["load_s"] = round(time.perf_counter() - t, 2)
    res["device"] = emb.device
    emb.embed(prompts[: batch_sizes[0]])  # warm-up
    for bs in batch_sizes:
        emb.batch_size = bs
        t = time.perf_counter()
        emb.embed(prompts)
        dt = time.perf_counter() - t
        res[f"batch_{bs}_prompts_per_s"] = round(n / dt, 1)
    return res


def _write_cache(root: Path, ident: EmbedderIdentity, keys: list[str], vecs: np.ndarray, n_segments: int) -> None:
    c = EmbeddingCache(root, ident)
    bounds = np.linspace(0, len(keys), n_segments + 1).astype(int)
    c.dir.mkdir(parents=True, exist_ok=True)
    c._write_identity()
    for a, b in zip(bounds[:-1], bounds[1:]):
        c._write_segment(keys[a:b], vecs[a:b])


def bench_cache(n: int, dim: int, tmp: Path) -> dict:
    ident = EmbedderIdentity("hash", "bench", dim, "paper")
    rng = np.random.default_rng(0)
    texts = [f"synthetic prompt {i}" for i in range(n)]
    t = time.perf_counter()
    keys = [prompt_key(s) for s in texts]
    hash_s = time.perf_counter() - t
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    res = {"n_entries": n, "dim": dim, "gigabytes": round(vecs.nbytes / 1e9, 2), "sha256_keys_s": round(hash_s, 2)}
    for label, nseg in (("1_segment", 1), ("100_segments", 100)):
        root = tmp / label
        t = time.perf_counter()
        _write_cache(root, ident, keys, vecs, nseg)
        res[f"write_{label}_s"] = round(time.perf_counter() - t, 2)
        for mmap in (False, True):
            t = time.perf_counter()
            c = EmbeddingCache(root, ident, mmap=mmap)
            dt = time.perf_counter() - t
            assert len(c) == n
            res[f"load_{label}{'_mmap' if mmap else ''}_s"] = round(dt, 2)
            if not mmap and label == "1_segment":
                sample = [texts[i] for i in rng.integers(0, n, 100_000)]
                t = time.perf_counter()
                got = c.get(sample)
                res["lookup_100k_s"] = round(time.perf_counter() - t, 2)
                assert got.shape == (100_000, dim)
            del c
        if label == "100_segments":
            c = EmbeddingCache(root, ident)
            t = time.perf_counter()
            c.consolidate()
            res["consolidate_100_segments_s"] = round(time.perf_counter() - t, 2)
            del c
        shutil.rmtree(root)
    # append speed: 200 segments of 64 vectors each, into an empty cache
    c = EmbeddingCache(tmp / "append", ident)
    extra = rng.standard_normal((64, dim), dtype=np.float32)
    t = time.perf_counter()
    for k in range(200):
        c.add([f"append {k} {j}" for j in range(64)], extra)
    res["append_64_vector_segment_ms"] = round((time.perf_counter() - t) / 200 * 1000, 2)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-prompts", type=int, default=512)
    ap.add_argument("--batch-sizes", default="16,64,128")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-cache", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--skip-cache", action="store_true")
    ap.add_argument("--tmp", default=None, help="scratch directory for the cache benchmark")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "embedding_throughput.json"))
    a = ap.parse_args(argv)
    report = {"cpu_count": os.cpu_count()}
    if not a.skip_model:
        report["local"] = bench_local(a.n_prompts, [int(x) for x in a.batch_sizes.split(",")], a.device)
        print("local embedder:", json.dumps(report["local"], indent=1))
    if not a.skip_cache:
        tmp = Path(tempfile.mkdtemp(prefix="embcache-bench-", dir=a.tmp))
        try:
            report["cache"] = bench_cache(a.n_cache, a.dim, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print("cache:", json.dumps(report["cache"], indent=1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

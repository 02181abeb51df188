"""Signal-level metrics on feature vectors: FID / rFID, precision-recall, density-coverage, CLIP score.

Everything here works on feature matrices ``(N, d)`` (e.g. the 64-d ECG embeddings of
:class:`~diffusets_core.eval.clip.ClipFeaturizer`). Deterministic for a given ``seed``.

Differences from the paper's scripts (the authors' ``test_scripts/evaluation.py``;
book/reference_implementation.md#clip-score-fid-precision-and-recall), on purpose:

* FID always compares sets of the SAME size ``n`` (the larger is subsampled, seeded): FID is biased upwards by
  O(d/n), so an FID between unequal or differently sized sets is not comparable with its floor.
* The real-vs-real floor is computed at that same ``n``: two disjoint random halves of the real set (or a
  separate real reference set). rFID = FID / floor. Counts are returned beside every number.
* Bootstrap CIs (percentile). For FID they are CIs of the *finite-n* estimator: resampling with replacement
  adds duplicate points, so the bootstrap distribution sits above the point estimate; the FID intervals are
  shifted back by that bootstrap bias (reported as ``fid_boot_bias``). For precision /
  recall / density / coverage the manifolds (k-NN radii) are fitted once and the per-point indicators are
  bootstrapped (resampling points with replacement would create zero-radius duplicates).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy import linalg

from ..fileio import l2_normalize

__all__ = [
    "frechet_distance",
    "fid_report",
    "knn_radii",
    "precision_recall",
    "density_coverage",
    "signal_metrics",
    "clip_score",
    "clip_score_report",
]


def _as2d(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, d), got shape {x.shape}")
    return x


def _gaussian(feat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feat.mean(axis=0), np.atleast_2d(np.cov(feat, rowvar=False))


def _frechet_from_stats(mu1, s1, mu2, s2, eps: float = 1e-6) -> float:
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
        if isinstance(covmean, tuple):  # older scipy returns (sqrtm, errest) with disp=False
            covmean = covmean[0]
        if not np.all(np.isfinite(covmean)):
            off = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(covmean):
        # Imaginary parts come from numerical error when a covariance is (near) singular. Drop them, but only
        # when they are small relative to the trace, as pytorch-fid does; otherwise the result is meaningless.
        scale = max(1.0, float(np.abs(np.trace(covmean.real))))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * scale):
            raise ValueError(
                f"sqrtm produced a large imaginary component "
                f"({np.max(np.abs(covmean.imag)):.3g}); too few samples for the feature dimension?"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_distance(feat_a: Any, feat_b: Any, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussian fits (mean, ``np.cov``) of two feature sets (scipy ``sqrtm``)."""
    a, b = _as2d(feat_a), _as2d(feat_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    return _frechet_from_stats(*_gaussian(a), *_gaussian(b), eps=eps)


def _ci(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    return (float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2)))


def _bc_ci(values: np.ndarray, estimate: float, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile CI shifted by the bootstrap bias (``mean(boot) - estimate``).

    Resampling with replacement duplicates points, which shrinks the covariance rank and inflates every
    bootstrap FID by about the same amount; near the floor this bias is larger than the spread and the plain
    percentile interval would not even contain the estimate. Shifting by the estimated bias removes it.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or not np.isfinite(estimate):
        return (math.nan, math.nan)
    bias = float(v.mean() - estimate)
    lo, hi = _ci(v, alpha)
    return (max(0.0, lo - bias), hi - bias)


def fid_report(
    real: Any, gen: Any, real_ref: Any = None, n: int | None = None, seed: int = 0, n_boot: int = 200
) -> dict[str, Any]:
    """FID of ``gen`` against ``real`` with its real-vs-real floor, all at the same sample count ``n``.

    * ``real_ref=None``: ``real`` is shuffled and split into two disjoint halves A, B; ``n <= len(real) // 2``.
      FID = FID(A[:n], gen[:n]); floor = FID(A[:n], B[:n]).
    * ``real_ref`` given: FID = FID(real[:n], gen[:n]); floor = FID(real[:n], real_ref[:n]).

    ``n`` defaults to the largest size all sets allow. Returns ``fid, floor, rfid`` (= fid / floor), their
    bootstrap 95 % CIs (``*_ci``, each replicate resamples every set with replacement; percentile intervals
    shifted by the bootstrap bias, see :func:`_bc_ci`), ``n``, ``n_real``,
    ``n_gen``, ``n_real_ref``, ``dim``, ``seed`` and ``n_boot``.
    """
    real, gen = _as2d(real), _as2d(gen)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(real))
    if real_ref is None:
        half = len(real) // 2
        a_pool, b_pool = real[perm[:half]], real[perm[half : 2 * half]]
        n_ref = None
    else:
        ref = _as2d(real_ref)
        a_pool, b_pool = real[perm], ref[rng.permutation(len(ref))]
        n_ref = len(ref)
    n_max = min(len(a_pool), len(b_pool), len(gen))
    n = n_max if n is None else int(n)
    if n > n_max:
        raise ValueError(
            f"n={n} exceeds what the sets allow ({n_max}: real {len(real)}"
            f"{' halves' if real_ref is None else ''}, gen {len(gen)}"
            f"{'' if n_ref is None else f', real_ref {n_ref}'})"
        )
    if n < 2:
        raise ValueError("need at least 2 samples per set")
    A, B, G = a_pool[:n], b_pool[:n], gen[rng.permutation(len(gen))[:n]]
    fid = frechet_distance(A, G)
    floor = frechet_distance(A, B)
    boots = np.full((n_boot, 2), np.nan)
    for i in range(n_boot):
        ia, ib, ig = rng.integers(0, n, n), rng.integers(0, n, n), rng.integers(0, n, n)
        try:
            boots[i] = frechet_distance(A[ia], G[ig]), frechet_distance(A[ia], B[ib])
        except ValueError:
            pass
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = boots[:, 0] / boots[:, 1]
    rfid = fid / floor if floor > 0 else math.inf
    return {
        "fid": fid,
        "fid_ci": _bc_ci(boots[:, 0], fid),
        "floor": floor,
        "floor_ci": _bc_ci(boots[:, 1], floor),
        "rfid": rfid,
        "rfid_ci": _bc_ci(rb, rfid),
        "fid_boot_bias": float(np.nanmean(boots[:, 0]) - fid) if np.isfinite(boots[:, 0]).any() else math.nan,
        "floor_kind": "real halves" if real_ref is None else "real reference set",
        "n": n,
        "n_real": len(real),
        "n_gen": len(gen),
        "n_real_ref": n_ref,
        "dim": real.shape[1],
        "seed": seed,
        "n_boot": n_boot,
    }


# -- k-NN manifolds ----------------------------------------------------------------------------------------------
def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # direct differences for exactness on small inputs, matmul form for large ones
    return torch.cdist(a, b, compute_mode="use_mm_for_euclid_dist_if_necessary").clamp_min_(0)


def knn_radii(feat: Any, k: int, chunk: int = 1024) -> np.ndarray:
    """Distance of each point to its ``k``-th nearest neighbour within its own set (itself excluded)."""
    x = _t(_as2d(feat))
    if len(x) <= k:
        raise ValueError(f"need more than k={k} points, got {len(x)}")
    out = torch.empty(len(x))
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            d = _cdist(x[i : i + chunk], x)
            # k + 1 smallest: the point itself (distance ~0) is among them
            out[i : i + chunk] = torch.topk(d, k + 1, dim=1, largest=False).values[:, k]
    return out.numpy().astype(np.float64)


def _ball_stats(
    centres: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each query: number of balls containing it; for each ball: whether any query falls inside."""
    counts = torch.zeros(len(queries))
    hit = torch.zeros(len(centres), dtype=torch.bool)
    with torch.no_grad():
        for i in range(0, len(queries), chunk):
            inside = _cdist(queries[i : i + chunk], centres) <= radii[None, :]
            counts[i : i + chunk] = inside.sum(dim=1).float()
            hit |= inside.any(dim=0)
    return counts.numpy(), hit.numpy()


def _pr_indicators(real: np.ndarray, gen: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    R, G = _t(real), _t(gen)
    rr, rg = torch.from_numpy(knn_radii(real, k, chunk)).float(), torch.from_numpy(knn_radii(gen, k, chunk)).float()
    cnt_g_in_real, _ = _ball_stats(R, rr, G, chunk)
    cnt_r_in_gen, _ = _ball_stats(G, rg, R, chunk)
    return cnt_g_in_real > 0, cnt_r_in_gen > 0


def precision_recall(real: Any, gen: Any, k: int = 3, chunk: int = 1024) -> dict[str, float]:
    """Improved precision / recall (Kynkäänniemi et al. 2019), Euclidean k-NN balls (k = 3 as in the paper).

    precision = fraction of generated points inside some real ball; recall = fraction of real points inside
    some generated ball. Distances are computed in chunks of ``chunk`` rows (10k x 10k fits in memory).
    """
    real, gen = _as2d(real), _as2d(gen)
    p_ind, r_ind = _pr_indicators(real, gen, k, chunk)
    p, r = float(p_ind.mean()), float(r_ind.mean())
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0,
        "k": k,
        "n_real": len(real),
        "n_gen": len(gen),
    }


def _dc_indicators(real: np.ndarray, gen: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    rr = torch.from_numpy(knn_radii(real, k, chunk)).float()
    counts, covered = _ball_stats(_t(real), rr, _t(gen), chunk)
    return counts / k, covered


def density_coverage(real: Any, gen: Any, k: int = 5, chunk: int = 1024) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020), real k-NN balls only (robust to real outliers).

    density = (1 / kM) sum_j #{real balls containing gen_j} (can exceed 1); coverage = fraction of real balls
    containing at least one generated point.
    """
    real, gen = _as2d(real), _as2d(gen)
    dens, cov = _dc_indicators(real, gen, k, chunk)
    return {
        "density": float(dens.mean()),
        "coverage": float(cov.mean()),
        "k": k,
        "n_real": len(real),
        "n_gen": len(gen),
    }


def signal_metrics(
    real: Any,
    gen: Any,
    *,
    real_ref: Any = None,
    n: int | None = None,
    k_pr: int = 3,
    k_dc: int = 5,
    seed: int = 0,
    n_boot: int = 200,
    chunk: int = 1024,
    ecg_feat_for_clip: Any = None,
    text_feat: Any = None,
    label: str = "",
) -> dict[str, Any]:
    """One tidy row: FID/floor/rFID, precision/recall/F1, density/coverage (with real-vs-real floors), optional
    CLIP score, each with a bootstrap 95 % CI, and the sample counts.

    All set-vs-set metrics use the same ``n`` (see :func:`fid_report`): the generated set is compared with real
    half A, the floor compares real half B (or ``real_ref``) with A. ``pd.DataFrame([row, ...])`` makes a table.
    """
    real, gen = _as2d(real), _as2d(gen)
    fr = fid_report(real, gen, real_ref=real_ref, n=n, seed=seed, n_boot=n_boot)
    n = fr["n"]
    # re-create the exact subsets fid_report used (same rng calls in the same order)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(real))
    if real_ref is None:
        half = len(real) // 2
        A, B = real[perm[:half]][:n], real[perm[half : 2 * half]][:n]
    else:
        ref = _as2d(real_ref)
        A, B = real[perm][:n], ref[rng.permutation(len(ref))][:n]
    G = gen[rng.permutation(len(gen))[:n]]
    row: dict[str, Any] = {
        "label": label,
        "n": n,
        "n_real": len(real),
        "n_gen": len(gen),
        "floor_kind": fr["floor_kind"],
    }
    for key in ("fid", "floor", "rfid"):
        row[key] = fr[key]
        row[f"{key}_lo"], row[f"{key}_hi"] = fr[f"{key}_ci"]
    brng = np.random.default_rng(seed + 1)
    idx = [brng.integers(0, n, n) for _ in range(n_boot)]

    def boot_mean(ind: np.ndarray) -> tuple[float, float]:
        return _ci(np.array([ind[i].mean() for i in idx]))

    for tag, other in (("", G), ("_floor", B)):
        p_ind, r_ind = _pr_indicators(A, other, k_pr, chunk)
        dens, cov = _dc_indicators(A, other, k_dc, chunk)
        p, r = float(p_ind.mean()), float(r_ind.mean())
        vals = {
            "precision": (p, p_ind),
            "recall": (r, r_ind),
            "density": (float(dens.mean()), dens),
            "coverage": (float(cov.mean()), cov),
        }
        for name, (v, ind) in vals.items():
            row[f"{name}{tag}"] = v
            if tag == "":
                row[f"{name}_lo"], row[f"{name}_hi"] = boot_mean(ind.astype(np.float64))
        row[f"f1{tag}"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    row["k_pr"], row["k_dc"] = k_pr, k_dc
    if ecg_feat_for_clip is not None and text_feat is not None:
        cs = clip_score_report(ecg_feat_for_clip, text_feat, seed=seed, n_boot=n_boot)
        row.update(
            {
                "clip": cs["clip"],
                "clip_lo": cs["clip_ci"][0],
                "clip_hi": cs["clip_ci"][1],
                "clip_shuffled": cs["shuffled"],
                "n_clip": cs["n"],
            }
        )
    row["seed"], row["n_boot"] = seed, n_boot
    return row


# -- CLIP score ---------------------------------------------------------------------------------------------------
def clip_score(ecg_feat: Any, text_feat: Any) -> float:
    """The paper's CLIP score: mean cosine similarity of L2-normalised (ECG, text) feature pairs (row i with i)."""
    e, t = _as2d(ecg_feat), _as2d(text_feat)
    if e.shape != t.shape:
        raise ValueError(f"ECG and text features must be paired: {e.shape} vs {t.shape}")
    return float(np.mean(np.sum(l2_normalize(e) * l2_normalize(t), axis=1)))


def clip_score_report(
    ecg_feat: Any, text_feat: Any, seed: int = 0, n_shuffle: int = 20, n_boot: int = 200
) -> dict[str, Any]:
    """CLIP score with its floor: the same score with the pairs shuffled (mean over ``n_shuffle`` permutations).

    A score is only informative by how far it sits above ``shuffled`` (what unrelated text gets). Also returns
    a bootstrap 95 % CI over pairs and ``n``.
    """
    e, t = l2_normalize(_as2d(ecg_feat)), l2_normalize(_as2d(text_feat))
    if e.shape != t.shape:
        raise ValueError(f"ECG and text features must be paired: {e.shape} vs {t.shape}")
    rng = np.random.default_rng(seed)
    cos = np.sum(e * t, axis=1)
    shuffled = [float(np.mean(np.sum(e * t[rng.permutation(len(t))], axis=1))) for _ in range(n_shuffle)]
    boots = [cos[rng.integers(0, len(cos), len(cos))].mean() for _ in range(n_boot)]
    return {
        "clip": float(cos.mean()),
        "clip_ci": _ci(np.array(boots)),
        "shuffled": float(np.mean(shuffled)),
        "shuffled_sd": float(np.std(shuffled)),
        "gap": float(cos.mean() - np.mean(shuffled)),
        "n": len(cos),
    }

"""VAE recipes side by side: what the autoencoder keeps of held-out test ECGs, and what it costs to train.

    python benchmarks/vae_recipe.py RUN_DIR --steps 1500 \
        --recipe paper_kl='{"model": {"channels": [32, 32, 64], "norm_groups": 8}}' \
        --recipe derived='{"model": {"channels": [32, 32, 64], "norm_groups": 8, "derived_leads": true}}'

``RUN_DIR`` is a prepared run (``data/`` and ``embeddings/``, e.g. from ``make book`` or ``diffusets prepare`` +
``diffusets embed``); it is never written to: each recipe trains under ``--out/<name>`` (a run directory whose
``data`` and ``embeddings`` link to RUN_DIR's). Recipes train one after another with the same threads, so the
seconds column is comparable within one run.

A recipe is ``name=JSON`` with ``model`` (VAEConfig fields), ``train`` (TrainConfig overrides) and ``kl_weight``.
For every recipe it prints, on the TEST split: RMSE (µV), median and worst-lead correlation, P-wave amplitude and
QRS width of the reconstructions as ratios of the real ones, the frontal-lead identity error, and the recall of
each class by the benchmark's classifier (trained on the real training split, thresholds from validation),
beside the same classifier's recall on the real test ECGs (the ``real`` row).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_TRAIN = {
    "max_steps": 1000,
    "batch_size": 32,
    "lr": 5e-4,
    "val_every": 250,
    "checkpoint_every": 10**6,
    "log_every": 100,
    "progress": False,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--recipe", action="append", required=True, help="name=JSON (see above)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/vae_recipe"))
    ap.add_argument("--clf-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--physiology", action="store_true", help="also P amplitude and QRS width (slower)")
    args = ap.parse_args()

    from diffusets_core.data.store import SignalStore, link_prepared
    from diffusets_core.eval.classifiers import labels_for_reports, predict_proba
    from diffusets_core.eval.fit_judges import fit_classifier
    from diffusets_core.eval.reconstruction import reconstruct, reconstruction_metrics
    from diffusets_core.eval.taxonomy import EVAL_CLASSES
    from diffusets_core.models.vae import load_vae
    from diffusets_core.train.vae import PAPER_KL_WEIGHT, train_vae

    store = SignalStore(args.run_dir)
    split = {s: store.records(s) for s in ("train", "val", "test")}
    sigs = {s: np.asarray(store.signals(s), dtype=np.float32) for s in split}
    classes = list(EVAL_CLASSES)
    labs = {s: labels_for_reports(split[s]["report"].tolist(), split[s]["findings"].tolist())[0] for s in split}
    args.out.mkdir(parents=True, exist_ok=True)
    clf, th, valid = fit_classifier(
        args.run_dir, args.out, sigs, labs, classes, seed=args.seed, steps=args.clf_steps, train_batch=64
    )
    y = labs["test"]

    def recall_row(name: str, x: np.ndarray) -> dict:
        pred = predict_proba(clf, x) >= th[None, :]
        row = {"recipe": name}
        for j, c in enumerate(classes):
            m = y[:, j] == 1
            if valid[j] and m.any():
                row[c] = float(pred[m, j].mean())
        return row

    recalls = [recall_row("real", sigs["test"])]
    rows = []
    for spec in args.recipe:
        name, _, js = spec.partition("=")
        recipe = json.loads(js or "{}")
        run = args.out / name
        link_prepared(args.run_dir, run)
        t0 = time.perf_counter()
        summary = train_vae(
            run,
            recipe.get("model", {}),
            {**DEFAULT_TRAIN, "max_steps": args.steps, **recipe.get("train", {})},
            seed=args.seed,
            kl_weight=recipe.get("kl_weight", PAPER_KL_WEIGHT),
            resume=False,
        )
        seconds = time.perf_counter() - t0
        vae = load_vae(run)
        x_hat = reconstruct(vae, sigs["test"])
        m = reconstruction_metrics(sigs["test"], x_hat, store.fs, physiology=args.physiology)
        rec = recall_row(name, x_hat)
        recalls.append(rec)
        rows.append(
            {
                "recipe": name,
                "params_k": round(summary["params"] / 1e3),
                "train_s": round(seconds),
                "best_val": summary["best_val_loss"],
                **{k: v for k, v in m.items() if k != "n"},
                "clf_macro": float(np.mean([v for k, v in rec.items() if k != "recipe"])),
            }
        )
        print(json.dumps(rows[-1], default=str), flush=True)
    res = pd.DataFrame(rows)
    rec = pd.DataFrame(recalls).set_index("recipe")
    rec["macro"] = rec.mean(axis=1)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(res.to_string(index=False))
        print("\nclassifier recall of each class on the test reconstructions (real = the real test ECGs)")
        print(rec.T.to_string())
    res.to_csv(args.out / "vae_recipe.csv", index=False)
    rec.to_csv(args.out / "vae_recipe_recall.csv")


if __name__ == "__main__":
    main()

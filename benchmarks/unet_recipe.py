"""U-Net training recipes side by side: heart-rate accuracy of the generated ECGs against training steps.

    python benchmarks/unet_recipe.py runs/cpu --steps 3000 --every 1000 \
        --recipe paper='{}' --recipe min_snr='{"loss_weighting": "min_snr"}'

Uses a prepared run (latents, embeddings and VAE from `make book` or the CLI) and never writes into it:
each recipe trains its own U-Net under ``--out``. Recipes run in parallel, one process and one thread each,
so they share the machine fairly and the comparison is per training step, measured in one run. Every
``--every`` steps the EMA weights generate ECGs for the same ``--n`` held-out test conditions (DDIM-50, same
seeds) and the heart rate of each is measured with neurokit2. The last table gives the ratio of each
recipe's HR MAE to the first recipe's at every checkpoint.

A recipe is ``name=JSON`` with keys ``model`` (U-Net config fields of the paper network, over
``DEFAULT_MODEL``), ``train`` (TrainConfig overrides) and any keyword of ``train_unet`` (``loss_weighting``,
``snr_gamma``, ``timestep_mode``); a flat JSON of ``train_unet`` keywords is the common case.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_MODEL = {"arch": "paper", "levels": 7, "attn_heads": 8, "cond_dropout": 0.1}
DEFAULT_TRAIN = {"batch_size": 64, "lr": 1e-3}


def _run_recipe(name: str, recipe: dict, args: argparse.Namespace, queue) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from diffusets_core.data.store import SignalStore
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline, PipelineConfig
    from diffusets_core.diffusion.schedules import NoiseSchedule
    from diffusets_core.eval.features import hr_error, measure_features
    from diffusets_core.models.factory import unet_config_from_dict
    from diffusets_core.models.unet import ConditionalUNet1D
    from diffusets_core.models.vae import load_vae
    from diffusets_core.text.embed import CachePlacement, default_cache_dir, load_run_embeddings
    from diffusets_core.text.embedders import make_embedder
    from diffusets_core.train.conditioning import conditioning_arrays
    from diffusets_core.train.datasets import load_latents
    from diffusets_core.train.loop import TensorSource, TrainConfig, Trainer
    from diffusets_core.train.unet import DiffusionLoss

    run = args.run_dir
    recipe = dict(recipe)
    model_kw = {**DEFAULT_MODEL, **recipe.pop("model", {})}
    train_kw = {**DEFAULT_TRAIN, **recipe.pop("train", {})}
    data = {}
    for split in ("train", "val"):
        z, ids = load_latents(run, split)
        text, patient, identity = conditioning_arrays(run, ids, recipe.get("patient_mode", "normalized"))
        data[split] = TensorSource(
            {"z": torch.from_numpy(z), "text": torch.from_numpy(text), "patient": torch.from_numpy(patient)}
        )
    cfg = unet_config_from_dict({**model_kw, "text_dim": int(text.shape[1]), "in_channels": int(z.shape[1])})
    torch.manual_seed(args.seed)
    unet = ConditionalUNet1D(cfg)
    unet.freeze_unused_parameters()
    schedule = NoiseSchedule.paper()
    loss = DiffusionLoss(
        schedule,
        recipe.get("timestep_mode", "uniform"),
        recipe.get("loss_weighting", "uniform"),
        recipe.get("snr_gamma", 5.0),
    )
    tcfg = TrainConfig(
        **{
            "max_steps": args.steps,
            "val_every": args.every,
            "checkpoint_every": 10**9,
            "log_every": 100,
            "progress": False,
            "seed": args.seed,
            "num_threads": 1,
            **train_kw,
        }
    )
    trainer = Trainer(unet, loss, data["train"], args.out / name, tcfg, val=data["val"])
    test = SignalStore(run).records("test").sample(n=args.n, random_state=args.seed)
    vae = load_vae(run, "cpu")
    ident = load_run_embeddings(run)[2]
    emb = make_embedder(
        ident["backend"],
        model=ident.get("model"),
        base_url=ident.get("base_url"),
        prompt_mode=ident.get("prompt_mode", "paper"),
    )
    train_s = 0.0
    for stop in range(args.every, args.steps + 1, args.every):
        t0 = time.perf_counter()
        trainer.fit(stop_at=stop)
        train_s += time.perf_counter() - t0
        pipe = DiffuSETSPipeline(
            copy.deepcopy(trainer.ema.shadow),
            vae,
            emb,
            PipelineConfig(schedule=schedule),
            text_cache=CachePlacement(default_cache_dir(run)),
        )
        out = pipe(
            test["report"].tolist(),
            age=test["age"].tolist(),
            sex=test["sex"].tolist(),
            hr=test["hr"].tolist(),
            num_inference_steps=50,
            sampler="ddim",
            seed=args.seed,
        )
        hr = measure_features(out.signals, out.fs)["hr_nk"].to_numpy()
        err = hr_error(hr, test["hr"].to_numpy())
        ok = np.isfinite(hr)
        val = [h["val_loss"] for h in trainer.history if h.get("val_loss") is not None][-1]
        queue.put(
            {
                "recipe": name,
                "step": stop,
                "train_min": round(train_s / 60, 1),
                "val_loss": val,
                "hr_mae": err["mae"],
                "hr_within_5": err["frac_within_5"],
                "hr_corr": float(np.corrcoef(hr[ok], test["hr"].to_numpy()[ok])[0, 1]),
                "measurable": err["frac_valid"],
            }
        )
        pd.DataFrame([{"step": stop, **err}]).to_csv(
            args.out / name / "hr_curve.csv", mode="a", header=stop == args.every, index=False
        )
    queue.put({"recipe": name, "done": True})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--recipe", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--n", type=int, default=64, help="held-out test conditions generated per checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/unet_recipe"))
    args = ap.parse_args()
    recipes = {}
    for spec in args.recipe or ["paper={}", 'min_snr={"loss_weighting": "min_snr"}']:
        name, sep, js = spec.partition("=")
        if not sep or not name:
            ap.error(f"--recipe {spec!r}: expected NAME=JSON")
        try:
            recipes[name] = json.loads(js or "{}")
        except json.JSONDecodeError as exc:
            ap.error(f"--recipe {name}: not valid JSON ({exc})")
    if not (args.run_dir / "latents" / "train.npy").is_file():
        ap.error(f"{args.run_dir}/latents/train.npy not found: prepare the run first (make book or diffusets encode)")
    args.out.mkdir(parents=True, exist_ok=True)

    import pandas as pd

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_run_recipe, args=(n, r, args, queue)) for n, r in recipes.items()]
    for p in procs:
        p.start()
    rows, done = [], 0
    while done < len(procs):
        msg = queue.get()
        if msg.get("done"):
            done += 1
            continue
        rows.append(msg)
        print(json.dumps(msg), flush=True)
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a recipe process failed (exit code {p.exitcode})")
    table = pd.DataFrame(rows).sort_values(["step", "recipe"])
    table.to_csv(args.out / "results.csv", index=False)
    print(table.to_string(index=False))
    first = next(iter(recipes))
    mae = table.pivot(index="step", columns="recipe", values="hr_mae")
    print(f"\nHR MAE relative to {first!r} (same step, same test conditions and seeds):")
    print((mae.div(mae[first], axis=0)).round(3).to_string())


if __name__ == "__main__":
    main()

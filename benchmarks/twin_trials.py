"""Design trials of the digital twin's reference encoder on a trained run: does the reference change anything?

For each variant, a twin is fine-tuned from ``RUN/unet/model.pt`` on the twin run ``RUN/twin`` (made by chapter 11 or
``diffusets train-twin``) into ``RUN/twin/unet_<variant>``, then read two ways on the twin run's test split:

* the **loss probe**: the diffusion loss of the test latents at t = 100, 400, 700, 900 with no reference, with the
  subject's own earlier record and with another subject's record (a reference the model uses lowers the loss with
  the own record only);
* chapter 11's measures (:func:`diffusets_core.apps.twin_eval.evaluate_twin`): the share of requests closer to their
  own target than to the counterpart, for the twin with and without its reference, beside the reference-free model.

Variants: ``vector`` (the pooled vector, encoder at the U-Net's learning rate, no pre-training), ``vector_lr10`` (10x),
``tokens_lr10`` (also reference tokens read by cross-attention), ``identity_lr10`` (contrastive pre-training, the
chapter's design). Each fine-tune takes about 4-10 min on a 2-core CPU at 300 steps.

    python benchmarks/twin_trials.py runs/cpu --steps 300 --variants vector vector_lr10 tokens_lr10 identity_lr10

Prints one JSON line per variant and writes ``benchmarks/results/twin/trials_<run name>.csv``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from diffusets_core.apps.twin_eval import (
    counterpart_signals,
    evaluate_twin,
    generate_twin_sets,
    twin_requests,
    twin_sampling,
)
from diffusets_core.data.store import SignalStore
from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
from diffusets_core.diffusion.schedules import NoiseSchedule
from diffusets_core.models.factory import unet_from_artifact
from diffusets_core.train.twin import split_tensors, train_twin_unet

VARIANTS = {
    "vector": dict(reference={}, encoder_lr_scale=1.0, identity_steps=0),
    "vector_lr10": dict(reference={}, encoder_lr_scale=10.0, identity_steps=0),
    "tokens_lr10": dict(reference={"tokens": True}, encoder_lr_scale=10.0, identity_steps=0),
    "identity_lr10": dict(reference={}, encoder_lr_scale=10.0, identity_steps=300),
}


@torch.no_grad()
def loss_probe(twin_dir: Path, unet_path: Path, seed: int = 0) -> dict[str, float]:
    """Mean diffusion loss of the test latents (records with another record of their subject) at four timesteps:
    ``none_<t>``, ``own_<t>``, ``other_<t>`` (another subject's reference: the own references rolled by 7)."""
    twin, meta = unet_from_artifact(unet_path)
    twin.eval()
    subjects = SignalStore(twin_dir).records().set_index("record_id")["subject_id"]
    d = split_tensors(twin_dir, "test", subjects, meta.get("patient_mode", "normalized"), twin.cfg.cond_dim)
    ok = d["ref_n"] > 0
    z, text, pat, ref = d["z"][ok], d["text"][ok], d["patient"][ok], d["ref_z"][ok][:, 0]
    other = torch.roll(ref, 7, dims=0)
    sched = NoiseSchedule.from_config(meta["schedule"]) if "schedule" in meta else NoiseSchedule.paper()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for step in (100, 400, 700, 900):
        t = torch.full((len(z),), step)
        noise = torch.randn(z.shape, generator=g)
        xt = sched.add_noise(z, noise, t)
        for name, r in (("none", None), ("own", ref), ("other", other)):
            out[f"{name}_{step}"] = float(((twin(xt, t, text, pat, reference=r) - noise) ** 2).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--sampling-steps", type=int, default=20)
    args = ap.parse_args()
    run, twin_dir = args.run_dir, args.run_dir / "twin"
    train = {
        "max_steps": args.steps,
        "batch_size": 64,
        "lr": 5e-4,
        "val_every": 100,
        "checkpoint_every": 100,
        "log_every": 10,
        "progress": False,
    }
    requests = twin_requests(twin_dir, "test")
    counterparts, table = counterpart_signals(twin_dir, requests)
    base = DiffuSETSPipeline.from_pretrained(run, device="cpu")
    sampling = twin_sampling(base, args.sampling_steps)
    rows = []
    for name in args.variants:
        v = VARIANTS[name]
        t0 = time.time()
        summary = train_twin_unet(
            twin_dir,
            run / "unet" / "model.pt",
            {"channels": [64, 128, 128], **v["reference"]},
            train,
            encoder_lr_scale=v["encoder_lr_scale"],
            identity_steps=v["identity_steps"],
            out_name=f"unet_{name}",
            resume=False,
        )
        probe = loss_probe(twin_dir, twin_dir / f"unet_{name}" / "model.pt")
        pipe = DiffuSETSPipeline.from_pretrained(twin_dir, device="cpu", unet_dir=f"unet_{name}")
        sets = generate_twin_sets(pipe, base, requests, sampling=sampling)
        ev = evaluate_twin(run, requests, sets, counterparts, complete=table["complete"].to_numpy(), n_boot=200)
        c = ev.consistency_summary.set_index("model")["share_closer"]
        row = {
            "variant": name,
            "steps": summary["steps"],
            "train_s": round(time.time() - t0, 1),
            "closer_twin": c["twin"],
            "closer_without_reference": c["twin_without_reference"],
            "closer_reference_free": c["reference_free"],
            **probe,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = Path(__file__).parent / "results" / "twin" / f"trials_{run.name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"written {out}")


if __name__ == "__main__":
    main()

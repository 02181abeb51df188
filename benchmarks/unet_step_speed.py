"""What makes a U-Net training step cheaper on this machine: the same optimiser step timed side by side for
architecture variants, batch sizes, thread counts and torch.compile, printed as samples per second and as a ratio
to the first row (the cpu profile's U-Net). Random data of the real shapes; nothing else should be running.

    python benchmarks/unet_step_speed.py            # all variants
    python benchmarks/unet_step_speed.py --no-compile
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch

from diffusets_core.config import load_profile
from diffusets_core.models.factory import build_unet, unet_config_from_dict


def step_time(
    model_cfg: dict, batch: int, *, latent_ch: int, threads: int, compile_model: bool, reps: int = 8
) -> float:
    torch.set_num_threads(threads)
    cfg = unet_config_from_dict({**model_cfg, "text_dim": 384, "in_channels": latent_ch})
    torch.manual_seed(0)
    m = build_unet(cfg)
    m.freeze_unused_parameters()
    fwd = torch.compile(m) if compile_model else m
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    # a statement-token model reads (B, 1 + K, 384): the prompt and K statements (3 of 6 present, as typical)
    shape = (batch, 1 + cfg.text_tokens, 384) if cfg.text_tokens else (batch, 384)
    x, text, pat = torch.randn(batch, latent_ch, 128), torch.randn(*shape), torch.rand(batch, 3)
    if cfg.text_tokens:
        text[:, 4:] = 0
    t = torch.randint(0, 1000, (batch,))
    for i in range(reps + 3):  # 3 warm-up steps (compilation happens there)
        if i == 3:
            t0 = time.perf_counter()
        loss = (fwd(x, t, text, pat) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    prof = load_profile("cpu")
    base = dict(prof.unet.model)
    latent_ch = int(prof.vae.model.get("latent_channels", 4))
    bs = int(prof.unet.train.get("batch_size", 64))
    # (name, model config, batch, threads, compile, latent channels)
    variants = [
        ("cpu profile", base, bs, 2, False, latent_ch),
        ("batch 32", base, 32, 2, False, latent_ch),
        ("batch 128", base, 128, 2, False, latent_ch),
        ("1 thread", base, bs, 1, False, latent_ch),
        (
            "attention at the deepest level only",
            {**base, "attn_levels": [len(base.get("channel_mults", [1, 2, 2, 4])) - 1]},
            bs,
            2,
            False,
            latent_ch,
        ),
        ("no attention outside the middle", {**base, "attn_levels": []}, bs, 2, False, latent_ch),
        ("1 res-block per level", {**base, "res_blocks": 1}, bs, 2, False, latent_ch),
        # the previous cpu model: paper U-Net on 4-channel latents (its widths scale with the latent channels)
        (
            "previous cpu U-Net (paper, 4 latent ch)",
            {"arch": "paper", "levels": 7, "attn_heads": 8, "cond_dropout": 0.1},
            bs,
            2,
            False,
            4,
        ),
    ]
    if not args.no_compile:
        variants.append(("torch.compile (inductor)", base, bs, 2, True, latent_ch))
    rows = []
    for name, cfg, batch, threads, comp, lat in variants:
        t0 = time.perf_counter()
        s = step_time(cfg, batch, latent_ch=lat, threads=threads, compile_model=comp)
        rows.append(
            {
                "variant": name,
                "batch": batch,
                "threads": threads,
                "s_per_step": s,
                "samples_per_s": batch / s,
                "setup_s": time.perf_counter() - t0 - 11 * s,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    df["throughput_vs_first"] = df["samples_per_s"] / df["samples_per_s"].iloc[0]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(df.to_string(index=False))


if __name__ == "__main__":
    main()

"""The diffusion chapter's comparisons: samplers on the same conditions and seeds, and the guidance choice.

:func:`compare_samplers` times each sampler on the same test conditions (decoding included) and measures the
heart rate of what it generated; :func:`sweep_and_save_guidance` runs the validation-split guidance sweep of
:mod:`diffusets_core.eval.guidance` and saves the chosen settings with the run.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..eval.config import GuidanceSweepConfig
from ..eval.features import hr_error, measure_features
from ..eval.guidance import guidance_sweep, save_chosen_guidance, summarize_guidance
from ..models.factory import DEFAULT_UNET_ARCH
from ..train.unet import train_unet

__all__ = [
    "FAST_SAMPLERS",
    "compare_samplers",
    "rms_difference",
    "sweep_and_save_guidance",
    "guidance_summary",
    "training_setup",
]

#: the two fast deterministic samplers the chapter compares with the paper's ancestral DDPM, as ``(name, steps)``
#: (DDPM's step count is the chapter's parameter)
FAST_SAMPLERS = (("ddim", 50), ("dpmsolver++", 20))


def compare_samplers(
    pipe: Any, conditions: pd.DataFrame, samplers: Sequence[tuple[str, int]], *, seed: int, batch_size: int = 64
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generate ``conditions`` (report, age, sex, hr columns) with each ``(sampler, steps)`` and the same seeds.

    Returns the table (index ``sampler``: ``steps``, ``seconds per ECG`` including decoding, ``HR MAE (bpm)`` and
    ``HR measurable`` from neurokit2 on the generated ECGs, ``speed-up vs DDPM`` relative to the first sampler)
    and the pipeline outputs by sampler name.
    """

    cond = dict(age=conditions["age"].tolist(), sex=conditions["sex"].tolist(), hr=conditions["hr"].tolist())
    rows, outputs = [], {}
    for name, steps in samplers:
        t0 = time.perf_counter()
        out = pipe(
            conditions["report"].tolist(),
            num_inference_steps=steps,
            sampler=name,
            seed=seed,
            batch_size=batch_size,
            **cond,
        )
        dt = time.perf_counter() - t0
        feats = measure_features(out.signals, out.fs)
        err = hr_error(feats["hr_nk"].to_numpy(), conditions["hr"].to_numpy())
        outputs[name] = out
        rows.append(
            {
                "sampler": name,
                "steps": steps,
                "seconds per ECG": dt / len(conditions),
                "HR MAE (bpm)": err["mae"],
                "HR measurable": err["frac_valid"],
            }
        )
    table = pd.DataFrame(rows).set_index("sampler")
    table["speed-up vs DDPM"] = table["seconds per ECG"].iloc[0] / table["seconds per ECG"]
    return table, outputs


def rms_difference(outputs: dict[str, Any], reference: str = "ddpm") -> dict[str, float]:
    """RMS difference (mV) of each output's signals from those of ``reference``, rounded to 3 decimals."""
    diff = {k: float(np.sqrt(((outputs[k].signals - outputs[reference].signals) ** 2).mean())) for k in outputs}
    return {k: round(v, 3) for k, v in diff.items()}


def sweep_and_save_guidance(
    run_dir: Any,
    scales: Sequence[float],
    *,
    n: int,
    seed: int,
    sampler: str,
    steps: int,
    clip_steps: int,
    clf_steps: int,
    workers: int = 0,
) -> tuple[pd.DataFrame | None, dict | None]:
    """:func:`~diffusets_core.eval.guidance.guidance_sweep` over ``scales`` on the validation split, then
    :func:`~diffusets_core.eval.guidance.save_chosen_guidance`; ``(None, None)`` when ``scales`` is empty (the run
    keeps guidance 1)."""
    if not scales:
        return None, None

    config = GuidanceSweepConfig(
        n=n, seed=seed, sampler=sampler, steps=steps, clip_steps=clip_steps, clf_steps=clf_steps, workers=workers
    )
    sweep = guidance_sweep(run_dir, scales, config)
    return sweep, save_chosen_guidance(run_dir, sweep, sampler=sampler, steps=steps)


NO_SWEEP = "No guidance sweep in this build (`sweep_scales = []`): the run samples without guidance."


def guidance_summary(sweep: pd.DataFrame | None, settings: dict | None) -> str:
    """:func:`~diffusets_core.eval.guidance.summarize_guidance`, or :data:`NO_SWEEP` when there was no sweep."""
    if sweep is None:
        return NO_SWEEP

    return summarize_guidance(sweep, settings)


def training_setup(unet_model: dict, unet_extra: dict) -> str:
    """Two lines: the loss weighting (with γ for Min-SNR) and the architecture with its settings. ``unet_extra``
    are keyword arguments of :func:`~diffusets_core.train.unet.train_unet`; what it leaves out is read from
    that function's defaults."""
    defaults = {k: p.default for k, p in inspect.signature(train_unet).parameters.items()}
    weighting = unet_extra.get("loss_weighting", f"{defaults['loss_weighting']} (paper)")
    snr_gamma = unet_extra.get("snr_gamma", defaults["snr_gamma"])
    gamma = f"(gamma {snr_gamma})" if unet_extra.get("loss_weighting") == "min_snr" else ""
    arch = {k: v for k, v in unet_model.items() if k != "arch"}
    return f"loss weighting: {weighting} {gamma}\narchitecture: {unet_model.get('arch', DEFAULT_UNET_ARCH)} {arch}"

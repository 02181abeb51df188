"""The evaluation's command-line sub-commands: ``diffusets evaluate`` (:func:`~.report.evaluate_run`) and
``diffusets guidance-sweep`` (:func:`~.guidance.guidance_sweep`). ``diffusets_core.cli`` adds them with
:func:`add_evaluate_parser` and :func:`add_guidance_parser`."""

from __future__ import annotations

import argparse

import pandas as pd

from ..argtypes import nonnegative_float, nonnegative_int, positive_int
from ..diffusion.samplers import SAMPLERS
from .config import EvalConfig, GuidanceSweepConfig

__all__ = ["add_evaluate_parser", "add_guidance_parser", "eval_config_from_args", "sweep_config_from_args"]


def eval_config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The :class:`~.config.EvalConfig` of the ``diffusets evaluate`` options (``--baselines``: comma-separated)."""
    return EvalConfig(
        n_eval=args.n_eval,
        n_per_class=args.n_per_class,
        min_per_class=args.min_per_class,
        seed=args.seed,
        clip_steps=args.clip_steps,
        clf_steps=args.clf_steps,
        sampler=args.sampler,
        steps=args.steps,
        baselines=tuple(b for b in args.baselines.split(",") if b),
        n_ddpm=args.n_ddpm,
        ddpm_steps=args.ddpm_steps,
        n_tstr=args.n_tstr,
        n_boot=args.n_boot,
        train_batch=args.train_batch,
        workers=args.workers,
        guidance_scale=args.guidance_scale,
        guidance_on=args.guidance_on,
        paraphrase=args.paraphrase,
        per_combination=args.per_combination,
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    # per-subcommand import, as in the CLI: building the parser must not load the benchmark (and the training loop
    # its judges use) for every other command, `diffusets generate` included
    from .report import evaluate_run

    tables = evaluate_run(args.run_dir, eval_config_from_args(args), out_dir=args.out_dir)
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(tables["signal"][["source", "n", "fid", "floor", "rfid", "precision", "recall", "coverage"]])
        print(tables["targets"])
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """``diffusets evaluate RUN_DIR [...]``: add the sub-command to an argparse ``subparsers`` object."""
    c = subparsers.add_parser("evaluate", help="benchmark a trained run (signal/feature/diagnostic + baselines)")
    c.add_argument("run_dir")
    c.add_argument("--n-eval", type=positive_int, default=None, help="test conditions (default: all test records)")
    c.add_argument("--n-per-class", type=positive_int, default=None, help="stratify: up to N test records per class")
    c.add_argument(
        "--min-per-class",
        type=nonnegative_int,
        default=0,
        help="repeat a class's conditions (new seeds) until every class has at least N (default 0)",
    )
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--clip-steps", type=positive_int, default=300)
    c.add_argument("--clf-steps", type=positive_int, default=300)
    c.add_argument("--sampler", default="ddim", choices=list(SAMPLERS))
    c.add_argument("--steps", type=positive_int, default=50)
    c.add_argument(
        "--guidance-scale",
        type=nonnegative_float,
        default=None,
        help="classifier-free guidance of every generated set (1.0: plain conditional sampling; default: "
        "the run's validated scale from `diffusets guidance-sweep --save`, else 1.0)",
    )
    c.add_argument("--guidance-on", default=None, choices=["all", "text"], help="default: the run's setting")
    c.add_argument(
        "--paraphrase",
        action="store_true",
        help="also the other kinds of request: held-out wordings of the wording bank (source 'reworded'), "
        "paraphrases.yaml (source 'paraphrased') and the held-out combinations of findings (tables requests, "
        "requests_summary, combinations)",
    )
    c.add_argument(
        "--per-combination", type=positive_int, default=8, help="with --paraphrase: requests per held-out combination"
    )
    c.add_argument(
        "--baselines",
        default="nn,deepfake,ddpm",
        help="comma-separated subset of nn,deepfake,ddpm,noc (noc: train it first with "
        "`diffusets train-unet RUN_DIR --text-only`)",
    )
    c.add_argument("--n-ddpm", type=positive_int, default=8)
    c.add_argument("--ddpm-steps", type=positive_int, default=1000)
    c.add_argument("--n-tstr", type=nonnegative_int, default=0, help="training conditions generated for TSTR (0: skip)")
    c.add_argument("--n-boot", type=positive_int, default=100)
    c.add_argument("--train-batch", type=positive_int, default=64, help="CLIP / classifier training batch size")
    c.add_argument("--workers", type=nonnegative_int, default=0)
    c.add_argument("--out-dir", default=None)
    c.set_defaults(func=_cmd_evaluate)
    return c


def sweep_config_from_args(args: argparse.Namespace) -> GuidanceSweepConfig:
    """The :class:`~.config.GuidanceSweepConfig` of the ``diffusets guidance-sweep`` options."""
    return GuidanceSweepConfig(
        n=args.n,
        seed=args.seed,
        sampler=args.sampler,
        steps=args.steps,
        clip_steps=args.clip_steps,
        clf_steps=args.clf_steps,
        workers=args.workers,
        guidance_on=args.guidance_on,
    )


def _cmd_guidance_sweep(args: argparse.Namespace) -> int:
    from .guidance import MIN_COVERAGE_RATIO, choose_guidance, guidance_sweep, save_chosen_guidance  # see above

    try:
        scales = [float(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--scales: expected comma-separated numbers, got {args.scales!r}") from None
    df = guidance_sweep(args.run_dir, scales, sweep_config_from_args(args), out_dir=args.out_dir)
    with pd.option_context("display.width", 160, "display.max_columns", 12, "display.precision", 3):
        print(df)
    print(
        f"choose_guidance (highest macro recall keeping >= {MIN_COVERAGE_RATIO * 100:.0f} % of the coverage at "
        "the smallest scale): "
        f"{choose_guidance(df):g}"
    )
    if args.save:
        settings = save_chosen_guidance(
            args.run_dir, df, sampler=args.sampler, steps=args.steps, guidance_on=args.guidance_on
        )
        print(f"saved as the run's sampling settings: {settings}")
    return 0


def add_guidance_parser(subparsers) -> argparse.ArgumentParser:
    """``diffusets guidance-sweep RUN_DIR [...]``: add the sub-command to an argparse ``subparsers`` object."""
    c = subparsers.add_parser("guidance-sweep", help="classifier-free guidance scales compared on the validation split")
    c.add_argument("run_dir")
    c.add_argument("--scales", default="1,1.5,2,3", help="comma-separated guidance scales (default 1,1.5,2,3)")
    c.add_argument("--n", type=positive_int, default=100, help="validation conditions")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--sampler", default="ddim", choices=list(SAMPLERS))
    c.add_argument("--steps", type=positive_int, default=20)
    c.add_argument("--clip-steps", type=positive_int, default=200)
    c.add_argument("--clf-steps", type=positive_int, default=200)
    c.add_argument("--workers", type=nonnegative_int, default=0)
    c.add_argument("--out-dir", default=None)
    c.add_argument(
        "--guidance-on",
        default=None,
        choices=["all", "text"],
        help="default: text for a U-Net trained with separate text/patient dropout, else all",
    )
    c.add_argument(
        "--save",
        action="store_true",
        help="save the chosen scale, sampler and steps as the run's "
        "sampling settings (unet/sampling.json), used by generate, the pipeline and the chapters",
    )
    c.set_defaults(func=_cmd_guidance_sweep)
    return c

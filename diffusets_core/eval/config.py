"""What the benchmark (:func:`~.report.evaluate_run`) computes: one typed :class:`EvalConfig`, built from keyword
arguments, a mapping (:meth:`EvalConfig.from_dict`, unknown keys refused), a chapter's parameters
(:meth:`EvalConfig.from_namespace`) or the ``diffusets evaluate`` options (:mod:`.commands`); and what the guidance
sweep (:func:`~.guidance.guidance_sweep`) computes: :class:`GuidanceSweepConfig`.

Where they write and the test embedder's options are keyword arguments of those functions, not part of the
configs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..diffusion.gaussian import GUIDANCE_TARGETS
from ..settings import dataclass_from_dict

#: Every baseline :func:`~.report.evaluate_run` knows; :data:`DEFAULT_BASELINES` is what it runs unless told otherwise.
BASELINES = ("nn", "deepfake", "ddpm", "noc")
DEFAULT_BASELINES = ("nn", "deepfake", "ddpm")

__all__ = ["BASELINES", "DEFAULT_BASELINES", "EvalConfig", "GuidanceSweepConfig"]


@dataclass
class EvalConfig:
    """The settings of one benchmark of a trained run (:func:`~.report.evaluate_run`; the defaults are the
    ``diffusets evaluate`` defaults).

    Sizes: ``n_eval`` test conditions (None: every test record), optionally stratified with up to ``n_per_class``
    records per class, then topped up with repeats of a class's own conditions (new seeds) until every class has
    ``min_per_class`` conditions (real and ``vae`` rows count each real ECG once); ``n_ddpm`` conditions also
    generated with ``ddpm_steps`` DDPM steps (``"ddpm"`` in ``baselines``); ``n_tstr`` training conditions
    generated for TSTR vs TRTR (0 skips it, None = every training record).

    Raises ValueError (naming the field) for an unknown baseline, a guidance scale that is not a number >= 0 or
    None, and a ``guidance_on`` other than ``all`` / ``text`` / None.
    """

    n_eval: int | None = None  # test conditions; None = every test record
    n_per_class: int | None = None  # stratify: up to this many test records per class (None: no stratification)
    min_per_class: int = 0  # repeat a class's conditions (new seeds) until it has this many
    seed: int = 0  # subsets, judge training and sampling seeds (ECG i of a set: seed + i)
    clip_steps: int = 300  # training steps of the ECG-text CLIP (training split only)
    clf_steps: int = 300  # training steps of the multi-label classifier (training split only)
    sampler: str = "ddim"  # the fast sampler of every generated set but ddpm
    steps: int = 50  # its number of steps
    baselines: Sequence[str] = DEFAULT_BASELINES  # subset of BASELINES (stored as a tuple)
    n_ddpm: int = 8  # conditions also generated with the paper's DDPM sampler
    ddpm_steps: int = 1000  # its number of steps (the paper: 1000)
    n_tstr: int | None = 0  # training conditions generated for TSTR vs TRTR; 0 skips it, None = all
    n_boot: int = 100  # bootstrap replicates of the confidence intervals
    batch_size: int = 64  # generation batch size
    train_batch: int = 64  # batch size of the CLIP / classifier training
    workers: int = 0  # > 1: feature measurement in a process pool of this size
    guidance_scale: float | None = None  # classifier-free guidance of every generated set; None = the run's
    guidance_on: str | None = None  # what the guidance acts on: all / text; None = the run's setting
    vae_ceiling: bool = True  # add the source "vae": the real test ECGs through the run's autoencoder
    paraphrase: bool = False  # add the reworded / paraphrased requests and the held-out combinations
    per_combination: int = 8  # with paraphrase: requests per held-out combination of findings

    def __post_init__(self) -> None:
        self.baselines = tuple(self.baselines)
        problems = []
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            problems.append(f"unknown baselines {sorted(unknown)}; choose from {', '.join(BASELINES)}")
        g = self.guidance_scale
        if g is not None and (isinstance(g, (bool, str)) or not (math.isfinite(float(g)) and float(g) >= 0)):
            problems.append(f"guidance_scale must be a number >= 0 or None (the run's setting), got {g!r}")
        if self.guidance_on is not None and self.guidance_on not in GUIDANCE_TARGETS:
            problems.append(f"guidance_on must be one of {GUIDANCE_TARGETS} or None, got {self.guidance_on!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalConfig:
        """The defaults with the settings of ``d`` applied. Raises ValueError naming any key that is not a field."""
        return dataclass_from_dict(cls, d)

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any], **overrides: Any) -> EvalConfig:
        """The fields found in ``namespace`` (a chapter's parameters: its ``globals()``), then ``overrides``; names
        that are not fields are ignored, fields absent from both keep their defaults. ``overrides`` go through
        :meth:`from_dict` (an unknown one is refused)."""
        found = {f.name: namespace[f.name] for f in fields(cls) if f.name in namespace}
        return cls.from_dict({**found, **overrides})


@dataclass
class GuidanceSweepConfig:
    """The settings of a guidance sweep on the validation split (:func:`~.guidance.guidance_sweep`; the defaults
    are the ``diffusets guidance-sweep`` defaults).

    Raises ValueError (naming the field) for a ``guidance_on`` other than ``all`` / ``text`` / None.
    """

    n: int = 100  # validation conditions (capped at the validation split)
    seed: int = 0  # subset, judge training and sampling seed (the same for every scale)
    sampler: str = "ddim"
    steps: int = 20  # sampler steps
    clip_steps: int = 200  # training steps of the ECG-text CLIP (training split only)
    clf_steps: int = 200  # training steps of the multi-label classifier (training split only)
    train_batch: int = 64  # batch size of the CLIP / classifier training
    batch_size: int = 64  # generation batch size
    workers: int = 0  # > 1: feature measurement in a process pool of this size
    guidance_on: str | None = None  # all / text; None = the run's default (DiffuSETSPipeline)
    extend: bool = True  # while the rule picks the largest swept scale, add one 1.5 times larger ...
    max_scale: float = 12.0  # ... up to this scale

    def __post_init__(self) -> None:
        if self.guidance_on is not None and self.guidance_on not in GUIDANCE_TARGETS:
            raise ValueError(f"guidance_on must be one of {GUIDANCE_TARGETS} or None, got {self.guidance_on!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GuidanceSweepConfig:
        """The defaults with the settings of ``d`` applied. Raises ValueError naming any key that is not a field."""
        return dataclass_from_dict(cls, d)

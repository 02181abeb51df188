"""The sampler base class: timestep selection, x0 clipping, argument checks, the step prologue and the loop.

A sampler implements :meth:`Sampler.step` (one reverse step from ``t`` to ``prev_t``); everything they share is
here, written once: :meth:`Sampler.timesteps` (diffusers' spacings and ``logsnr``), :meth:`Sampler._begin_step`
(the checks every step starts with), :meth:`Sampler._variance_noise` and the sampling loop :meth:`Sampler.sample`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from tqdm import tqdm

from ..schedules import NoiseSchedule
from .rng import GeneratorLike, make_generators, randn

__all__ = [
    "ClipSample",
    "ModelFn",
    "Sampler",
    "StepOutput",
    "TIMESTEP_SPACINGS",
    "UNSET",
    "as_timestep",
    "check_num_steps",
    "clip_x0",
    "validate_clip",
]

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ClipSample = Union[None, float, tuple[float, float]]
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace", "logsnr")


class _Unset:
    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "<unset>"


#: Default of ``clip_sample`` in :meth:`Sampler.step`/:meth:`Sampler.sample`: use the sampler's own setting.
UNSET: Any = _Unset()


@dataclass
class StepOutput:
    """Result of one reverse step.

    prev_sample: the sample at the previous (less noisy) timestep.
    pred_x0: the (clipped, if clipping is on) x0 prediction used by the step.
    state: sampler state to pass to the next ``step`` (multistep samplers only; else None).
    """

    prev_sample: torch.Tensor
    pred_x0: torch.Tensor
    state: Any = None


def validate_clip(clip_sample: Any) -> ClipSample:
    if clip_sample is None or clip_sample is False:
        return None
    if clip_sample is True:
        raise TypeError("clip_sample=True is ambiguous; pass the range, e.g. clip_sample=1.0 (paper)")
    if isinstance(clip_sample, (int, float, np.floating, np.integer)):
        c = float(clip_sample)
        if not (c > 0 and math.isfinite(c)):
            raise ValueError(f"clip_sample must be a positive finite float, got {clip_sample!r}")
        return c
    if isinstance(clip_sample, Sequence) and len(clip_sample) == 2:
        lo, hi = float(clip_sample[0]), float(clip_sample[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"clip_sample range must be finite with lo < hi, got {clip_sample!r}")
        return (lo, hi)
    raise TypeError(f"clip_sample must be None, a float or a (lo, hi) pair, got {clip_sample!r}")


def clip_x0(x0: torch.Tensor, clip_sample: ClipSample) -> torch.Tensor:
    if clip_sample is None:
        return x0
    if isinstance(clip_sample, tuple):
        return x0.clamp(clip_sample[0], clip_sample[1])
    return x0.clamp(-clip_sample, clip_sample)


def as_timestep(t: int | torch.Tensor, name: str = "t") -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer timestep, got dtype {t.dtype}")
        if t.ndim > 1:
            raise ValueError(f"{name} must be a scalar or a (B,) tensor, got shape {tuple(t.shape)}")
        return t.detach().to("cpu", torch.long)
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        return torch.tensor(int(t), dtype=torch.long)
    raise TypeError(f"{name} must be an int or an integer tensor, got {type(t).__name__}")


def check_num_steps(n: Any, T: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"num_inference_steps must be an int, got {n!r}")
    n = int(n)
    if n <= 0:
        raise ValueError(f"num_inference_steps must be >= 1, got {n}")
    if n > T:
        raise ValueError(
            f"num_inference_steps={n} cannot exceed num_train_timesteps={T}: the model was trained on "
            f"{T} noise levels only"
        )
    return n


class Sampler:
    """Base class: timestep selection, x0 clipping, noise handling and the sampling loop.

    Subclasses implement :meth:`step` (and may override :meth:`timesteps`).
    """

    name: str = "base"
    #: steps when none are asked for; None means every training timestep
    default_num_inference_steps: int | None = 50
    default_spacing: str = "leading"

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        timestep_spacing: str | None = None,
        steps_offset: int = 0,
        clip_sample: ClipSample = None,
        num_inference_steps: int | None = None,
    ) -> None:
        self.schedule = schedule if schedule is not None else NoiseSchedule()
        if not isinstance(self.schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(self.schedule).__name__}")
        spacing = timestep_spacing if timestep_spacing is not None else self.default_spacing
        if spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"unknown timestep_spacing {spacing!r}; expected one of {TIMESTEP_SPACINGS}")
        self.timestep_spacing = spacing
        if isinstance(steps_offset, bool) or not isinstance(steps_offset, int) or steps_offset < 0:
            raise ValueError(f"steps_offset must be a non-negative int, got {steps_offset!r}")
        self.steps_offset = steps_offset
        self.clip_sample: ClipSample = validate_clip(clip_sample)
        if num_inference_steps is not None:
            self.default_num_inference_steps = check_num_steps(num_inference_steps, self.schedule.num_train_timesteps)
        elif self.default_num_inference_steps is None:  # a class default of None: every training timestep (DDPM)
            self.default_num_inference_steps = self.schedule.num_train_timesteps

    # ------------------------------------------------------------------ config
    def to_config(self) -> dict[str, Any]:
        clip = list(self.clip_sample) if isinstance(self.clip_sample, tuple) else self.clip_sample
        return {
            "sampler": self.name,
            "schedule": self.schedule.to_config(),
            "timestep_spacing": self.timestep_spacing,
            "steps_offset": self.steps_offset,
            "clip_sample": clip,
            "num_inference_steps": self.default_num_inference_steps,
            **self._extra_config(),
        }

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        cfg = self.to_config()
        cfg.pop("sampler")
        inner = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"{type(self).__name__}({inner})"

    # ------------------------------------------------------------------ timesteps
    @property
    def num_train_timesteps(self) -> int:
        return self.schedule.num_train_timesteps

    def timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """Descending LongTensor of the timesteps at which the model is evaluated (diffusers' rules).

        leading:  ``arange(n) * (T // n)`` reversed, plus ``steps_offset`` (T=1000, n=50: 980, ..., 0).
        trailing: ``round(arange(T, 0, -T/n)) - 1`` (n=50: 999, 979, ..., 19).
        linspace: ``round(linspace(0, T-1, n))`` reversed (n=50: 999, 979, ..., 0).
        logsnr:   ``n`` points uniform in ``lambda = log(sqrt(ab / (1 - ab)))`` from t = T-1 to t = 0, each
                  rounded to the nearest training timestep (collisions near t = 0 are pushed up to keep
                  ``n`` distinct values). Not in diffusers; the recommended spacing for DPM-Solver
                  (Lu et al. 2022) and much more accurate with few steps (see tests).
        """
        T = self.num_train_timesteps
        n = check_num_steps(self.default_num_inference_steps if num_inference_steps is None else num_inference_steps, T)
        if self.timestep_spacing == "leading":
            ts = (np.arange(0, n) * (T // n)).round()[::-1].astype(np.int64) + self.steps_offset
        elif self.timestep_spacing == "trailing":
            ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
        elif self.timestep_spacing == "linspace":
            ts = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
        else:
            ts = self._logsnr_timesteps(n)
        return self._finish_timesteps(ts, n)

    def _logsnr_timesteps(self, n: int) -> np.ndarray:
        ab = self.schedule.alphas_cumprod.double().numpy()
        lam = 0.5 * (np.log(ab) - np.log1p(-ab))  # decreasing in t
        if n == 1:
            return np.array([len(ab) - 1], dtype=np.int64)
        targets = np.linspace(lam[-1], lam[0], n)  # from t = T-1 (low lambda) to t = 0 (high lambda)
        # lam is decreasing; search on the increasing reversed array and pick the nearer neighbour
        rev = lam[::-1]
        idx = np.clip(np.searchsorted(rev, targets), 1, len(rev) - 1)
        nearer = np.where(np.abs(rev[idx - 1] - targets) <= np.abs(rev[idx] - targets), idx - 1, idx)
        ts = np.sort((len(ab) - 1 - nearer).astype(np.int64))  # ascending, starts at 0
        for i in range(1, len(ts)):  # make strictly increasing from t = 0 upwards
            ts[i] = max(ts[i], ts[i - 1] + 1)
        return ts[::-1].copy()

    def _finish_timesteps(self, ts: np.ndarray, n: int) -> torch.Tensor:
        T = self.num_train_timesteps
        ts = np.ascontiguousarray(ts)
        if len(ts) != n or ts.min() < 0 or ts.max() >= T or np.any(np.diff(ts) >= 0):
            raise ValueError(
                f"{self.timestep_spacing!r} spacing with num_inference_steps={n}, steps_offset="
                f"{self.steps_offset} does not give {n} distinct timesteps in [0, {T - 1}] (got "
                f"{ts.tolist() if len(ts) <= 12 else str(ts[:6].tolist()) + '...'}); use fewer steps or "
                "another spacing"
            )
        return torch.from_numpy(ts.copy())

    def prev_timesteps(self, timesteps: torch.Tensor) -> torch.Tensor:
        """The timestep each step moves to: the next entry, and -1 (clean data) after the last."""
        return torch.cat([timesteps[1:], torch.tensor([-1], dtype=torch.long)])

    # ------------------------------------------------------------------ coefficients
    def _alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """float32 ``alpha_bar[t]`` (1 for t < 0), shaped to broadcast against ``like``.

        Scalar t gives a 0-dim tensor, exactly the value diffusers indexes, so arithmetic order and
        precision match diffusers; a (B,) t gives shape (B, 1, ..., 1).
        """
        T = self.num_train_timesteps
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= T):
            raise ValueError(f"timesteps must lie in [0, {T - 1}] (or -1 for 'clean'), got {t.tolist()}")
        ac = self.schedule.alphas_cumprod
        ab = torch.where(t >= 0, ac[t.clamp(min=0)], torch.ones((), dtype=ac.dtype))
        if t.ndim == 1:
            if t.shape[0] not in (1, like.shape[0]):
                raise ValueError(f"t has {t.shape[0]} entries for a batch of {like.shape[0]}")
            ab = ab.reshape((-1,) + (1,) * (like.ndim - 1))
        return ab.to(like.device)

    @staticmethod
    def _batched_mask(cond: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if cond.ndim == 1:
            cond = cond.reshape((-1,) + (1,) * (like.ndim - 1))
        return cond.to(like.device)

    # ------------------------------------------------------------------ the step prologue, written once
    def _begin_step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        x_t: torch.Tensor,
        prev_t: int | torch.Tensor | None,
        clip_sample: ClipSample,
        *,
        same_shape: bool = False,
    ) -> tuple[ClipSample, torch.Tensor, torch.Tensor]:
        """What every :meth:`step` checks first: ``model_output`` has ``x_t``'s shape; the clipping in force
        (``clip_sample``, or the sampler's own when :data:`UNSET`); ``t`` and ``prev_t`` (default ``t - 1``) as
        integer tensors with ``prev_t < t`` (``same_shape``: and of the same shape when both are batched).

        Returns ``(clip, t, prev_t)``. Raises ValueError / TypeError naming the bad argument.
        """
        if model_output.shape != x_t.shape:
            raise ValueError(f"model_output {tuple(model_output.shape)} and x_t {tuple(x_t.shape)} differ")
        clip = self.clip_sample if clip_sample is UNSET else validate_clip(clip_sample)
        t_idx = as_timestep(t)
        prev_idx = t_idx - 1 if prev_t is None else as_timestep(prev_t, "prev_t")
        if same_shape and prev_idx.shape != t_idx.shape and prev_idx.ndim and t_idx.ndim:
            raise ValueError("t and prev_t must have the same shape")
        if bool(torch.any(prev_idx >= t_idx)):
            raise ValueError(f"prev_t must be smaller than t (got t={t_idx.tolist()}, prev_t={prev_idx.tolist()})")
        return clip, t_idx, prev_idx

    def _eps_to_x0(
        self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prev_t: torch.Tensor, clip: ClipSample
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The opening of an epsilon-prediction step on the float32 schedule (DDPM, DDIM; diffusers' arithmetic
        order): ``(alpha_bar[t], alpha_bar[prev_t], x0)`` with ``x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)``,
        clipped when ``clip`` is set (:func:`clip_x0`)."""
        alpha_prod_t = self._alpha_bar(t, x_t)
        alpha_prod_t_prev = self._alpha_bar(prev_t, x_t)
        pred_x0 = (x_t - (1 - alpha_prod_t) ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        return alpha_prod_t, alpha_prod_t_prev, clip_x0(pred_x0, clip)

    @staticmethod
    def _variance_noise(noise: torch.Tensor | None, generator: GeneratorLike, x_t: torch.Tensor) -> torch.Tensor:
        """The step's noise z: ``noise`` (checked against ``x_t``'s shape), else drawn from ``generator``."""
        if noise is None:
            return randn(x_t.shape, generator, device=x_t.device, dtype=x_t.dtype)
        if noise.shape != x_t.shape:
            raise ValueError(f"noise {tuple(noise.shape)} and x_t {tuple(x_t.shape)} differ")
        return noise

    # ------------------------------------------------------------------ API
    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        x_t: torch.Tensor,
        prev_t: int | torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: GeneratorLike = None,
        clip_sample: ClipSample = UNSET,
        state: Any = None,
    ) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def _step_kwargs(self, index: int, num_steps: int) -> dict[str, Any]:
        return {}

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        shape: Sequence[int],
        *,
        generator: GeneratorLike = None,
        seed: int | Sequence[int] | None = None,
        num_inference_steps: int | None = None,
        x_T: torch.Tensor | None = None,
        progress: bool = False,
        clip_sample: ClipSample = UNSET,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from ``x_T`` (default: standard normal noise) and return ``x_0``.

        model_fn: ``model_fn(x_t, t) -> eps`` with ``t`` a ``(B,)`` LongTensor on ``device``.
        shape: ``(B, ...)``; must equal ``x_T.shape`` when ``x_T`` is given.
        generator / seed: see the module docstring. x_T, when not given, is the first draw.
        num_inference_steps: default per sampler (DDPM: T, DDIM: 50, DPM-Solver++: 20); 1 <= n <= T.
        clip_sample: overrides the sampler's setting for this call (None = off).
        device / dtype: where and in which precision the state lives (default: x_T's, else CPU float32).
        callback: called as ``callback(i, t, x_prev, pred_x0)`` after each step.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) < 1 or any(s <= 0 for s in shape):
            raise ValueError(f"shape must be (B, ...) with positive sizes, got {shape}")
        if not callable(model_fn):
            raise TypeError("model_fn must be callable: model_fn(x_t, t) -> eps")
        clip = self.clip_sample if clip_sample is UNSET else validate_clip(clip_sample)
        gen = make_generators(seed, generator, batch_size=shape[0])
        if x_T is not None:
            if tuple(x_T.shape) != shape:
                raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape={shape}")
            device = x_T.device if device is None else torch.device(device)
            x = x_T.to(device=device, dtype=dtype)
        else:
            device = torch.device(device) if device is not None else torch.device("cpu")
            x = randn(shape, gen, device=device, dtype=dtype)

        timesteps = self.timesteps(num_inference_steps)
        prevs = self.prev_timesteps(timesteps)
        n = len(timesteps)
        iterator: Any = range(n)
        if progress:
            iterator = tqdm(iterator, desc=f"{self.name} sampling", total=n)
        state = None
        for i in iterator:
            t = int(timesteps[i])
            t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
            eps = model_fn(x, t_batch)
            if not isinstance(eps, torch.Tensor) or tuple(eps.shape) != shape:
                got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
                raise ValueError(f"model_fn returned {got}; expected a tensor of shape {shape}")
            out = self.step(
                eps.to(dtype),
                t,
                x,
                int(prevs[i]),
                generator=gen,
                clip_sample=clip,
                state=state,
                **self._step_kwargs(i, n),
            )
            x, state = out.prev_sample, out.state
            if callback is not None:
                callback(i, t, x, out.pred_x0)
        return x

"""Samplers (reverse processes) for epsilon-prediction diffusion models.

All samplers share one interface and are independent of any network: they call
``model_fn(x_t, t) -> eps`` where ``x_t`` is the current batch ``(B, ...)`` and ``t`` a ``(B,)``
LongTensor filled with the current timestep (what the reference's U-Net expects). Classifier-free
guidance, conditioning and autocast belong to the caller's ``model_fn``.

* :class:`DDPMSampler` — ancestral DDPM, identical to diffusers' ``DDPMScheduler`` with the reference's
  settings (epsilon prediction, ``fixed_small`` variance, ``leading`` spacing, ``steps_offset`` 0; paper
  mode clips x0 to [-1, 1]). With 1000 steps the timesteps are 999..0; with fewer, ``leading`` spacing
  (e.g. 200 steps: 995, 990, ..., 0). Its float32 arithmetic follows diffusers' operation order, so one
  step reproduces the reference bitwise.
* :class:`DDIMSampler` — DDIM (Song et al. 2021); ``eta=0`` (default) is deterministic, ``eta>0`` adds
  noise (``eta=1`` has DDPM's variance). Same formulas as diffusers' ``DDIMScheduler`` (with
  ``set_alpha_to_one=True``).
* :class:`DPMSolverMultistepSampler` — DPM-Solver++(2M) with data prediction (Lu et al. 2022,
  arXiv:2211.01095, Algorithm 2), final step to sigma = 0.

x0 clipping (DESIGN.md §6) is a setting: ``clip_sample=None`` (default, off), a float ``c`` (clip the
predicted x0 to ``[-c, c]``; the paper uses 1.0 — see :meth:`DDPMSampler.paper`), or a pair ``(lo, hi)``
(a data-derived range). The reference's [-1, 1] clip is harmless only for latents with std ~0.17.

Randomness: pass ``seed`` (int, or one int per sample) or ``generator`` (a ``torch.Generator``, or a list
with one generator per sample). With one generator/seed the whole batch is drawn at once (as diffusers),
so sample ``i`` depends on the batch size. With per-sample seeds/generators every sample draws its own
noise (each draw has shape ``(1, ...)``, as diffusers' ``randn_tensor`` does for generator lists), so
sample ``i`` is the same whatever batch it is in (given a batch-independent ``model_fn``). Noise is
drawn on the generator's device (CPU for seeds) and moved to ``device``, so a seed gives the same noise
on CPU and GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
import torch

from .schedules import NoiseSchedule

__all__ = [
    "ClipSample",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverMultistepSampler",
    "ModelFn",
    "SAMPLERS",
    "Sampler",
    "StepOutput",
    "TIMESTEP_SPACINGS",
    "get_sampler",
    "make_generators",
    "randn",
]

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GeneratorLike = Union[torch.Generator, Sequence[torch.Generator], None]
ClipSample = Union[None, float, tuple[float, float]]
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace", "logsnr")


class _Unset:
    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "<unset>"


_UNSET: Any = _Unset()


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


# ---------------------------------------------------------------------------------------------------------
# randomness
# ---------------------------------------------------------------------------------------------------------
def make_generators(
    seed: int | Sequence[int] | None = None,
    generator: GeneratorLike = None,
    batch_size: int | None = None,
) -> GeneratorLike:
    """Resolve ``seed`` / ``generator`` into what :func:`randn` takes.

    ``seed`` int -> one CPU generator; a sequence of ints -> one CPU generator per sample (its length must
    equal ``batch_size``). Passing both ``seed`` and ``generator`` is an error.
    """
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if seed is not None:
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return torch.Generator("cpu").manual_seed(int(seed))
        if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence):
            raise TypeError(f"seed must be an int or a sequence of ints, got {type(seed).__name__}")
        seeds = list(seed)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
            raise TypeError("every per-sample seed must be an int")
        generator = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    if isinstance(generator, (list, tuple)):
        if batch_size is not None and len(generator) != batch_size:
            raise ValueError(
                f"got {len(generator)} per-sample seeds/generators for a batch of {batch_size}; "
                "pass one per sample or a single one"
            )
        if not all(isinstance(g, torch.Generator) for g in generator):
            raise TypeError("generator list must contain torch.Generator objects")
        return list(generator)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    return generator


def randn(
    shape: Sequence[int],
    generator: GeneratorLike = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, drawn like diffusers' ``randn_tensor``.

    A single generator draws the full shape on its own device; a list draws ``(1, *shape[1:])`` per
    generator and concatenates. The result is moved to ``device``.
    """
    shape = tuple(int(s) for s in shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        parts = [torch.randn((1,) + shape[1:], generator=g, device=g.device, dtype=dtype) for g in generator]
        return torch.cat([p.to(device) for p in parts], dim=0)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
def _validate_clip(clip_sample: Any) -> ClipSample:
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


def _clip(x0: torch.Tensor, clip_sample: ClipSample) -> torch.Tensor:
    if clip_sample is None:
        return x0
    if isinstance(clip_sample, tuple):
        return x0.clamp(clip_sample[0], clip_sample[1])
    return x0.clamp(-clip_sample, clip_sample)


def _as_t(t: int | torch.Tensor, name: str = "t") -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer timestep, got dtype {t.dtype}")
        if t.ndim > 1:
            raise ValueError(f"{name} must be a scalar or a (B,) tensor, got shape {tuple(t.shape)}")
        return t.detach().to("cpu", torch.long)
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        return torch.tensor(int(t), dtype=torch.long)
    raise TypeError(f"{name} must be an int or an integer tensor, got {type(t).__name__}")


def _check_num_steps(n: Any, T: int) -> int:
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
    default_num_inference_steps: int = 50
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
        self.clip_sample: ClipSample = _validate_clip(clip_sample)
        if num_inference_steps is not None:
            self.default_num_inference_steps = _check_num_steps(
                num_inference_steps, self.schedule.num_train_timesteps
            )

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
        n = _check_num_steps(
            self.default_num_inference_steps if num_inference_steps is None else num_inference_steps, T
        )
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
        clip_sample: ClipSample = _UNSET,
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
        clip_sample: ClipSample = _UNSET,
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
        clip = self.clip_sample if clip_sample is _UNSET else _validate_clip(clip_sample)
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
            from tqdm import tqdm

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


# ---------------------------------------------------------------------------------------------------------
# DDPM
# ---------------------------------------------------------------------------------------------------------
class DDPMSampler(Sampler):
    """Ancestral DDPM (Ho et al. 2020), epsilon prediction, ``fixed_small`` variance.

    Equals diffusers' ``DDPMScheduler.step`` with the reference's settings; the paper configuration is
    :meth:`paper` (clip x0 to [-1, 1], leading spacing, 1000 steps). One step from ``t`` to ``p = prev_t``:

        x0   = clip((x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t))
        mean = sqrt(ab_p) (1 - ab_t/ab_p) / (1 - ab_t) * x0 + sqrt(ab_t/ab_p) (1 - ab_p) / (1 - ab_t) * x_t
        x_p  = mean + sqrt(max((1 - ab_p) / (1 - ab_t) (1 - ab_t/ab_p), 1e-20)) * z   (no noise at t = 0)

    with ``ab_{-1} = 1``. No noise is drawn at the last step (t = 0), so a generator is consumed exactly
    as in a diffusers DDPM loop.
    """

    name = "ddpm"
    default_spacing = "leading"

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        timestep_spacing: str | None = None,
        steps_offset: int = 0,
        clip_sample: ClipSample = None,
        num_inference_steps: int | None = None,
    ) -> None:
        super().__init__(
            schedule,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            clip_sample=clip_sample,
            num_inference_steps=num_inference_steps,
        )
        if num_inference_steps is None:
            self.default_num_inference_steps = self.schedule.num_train_timesteps

    @classmethod
    def paper(cls, schedule: NoiseSchedule | None = None) -> "DDPMSampler":
        """The reference's sampler: 1000-step ancestral DDPM, x0 clipped to [-1, 1], leading spacing."""
        return cls(
            schedule if schedule is not None else NoiseSchedule.paper(),
            timestep_spacing="leading",
            steps_offset=0,
            clip_sample=1.0,
        )

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        x_t: torch.Tensor,
        prev_t: int | torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: GeneratorLike = None,
        clip_sample: ClipSample = _UNSET,
        state: Any = None,
    ) -> StepOutput:
        """One ancestral step from ``t`` to ``prev_t`` (default ``t - 1``).

        ``t``/``prev_t``: ints, or (B,) integer tensors (one timestep per sample). ``noise``: the variance
        noise z (same shape as x_t); drawn from ``generator`` when not given, and only if some t > 0.
        """
        if model_output.shape != x_t.shape:
            raise ValueError(f"model_output {tuple(model_output.shape)} and x_t {tuple(x_t.shape)} differ")
        clip = self.clip_sample if clip_sample is _UNSET else _validate_clip(clip_sample)
        tt = _as_t(t)
        pt = tt - 1 if prev_t is None else _as_t(prev_t, "prev_t")
        if pt.shape != tt.shape and pt.ndim and tt.ndim:
            raise ValueError("t and prev_t must have the same shape")
        if bool(torch.any(pt >= tt)):
            raise ValueError(f"prev_t must be smaller than t (got t={tt.tolist()}, prev_t={pt.tolist()})")

        alpha_prod_t = self._alpha_bar(tt, x_t)
        alpha_prod_t_prev = self._alpha_bar(pt, x_t)
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t

        pred_x0 = (x_t - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        pred_x0 = _clip(pred_x0, clip)

        x0_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        xt_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
        prev_sample = x0_coeff * pred_x0 + xt_coeff * x_t

        add_noise = tt > 0
        if bool(torch.any(add_noise)):
            if noise is None:
                noise = randn(x_t.shape, generator, device=x_t.device, dtype=x_t.dtype)
            elif noise.shape != x_t.shape:
                raise ValueError(f"noise {tuple(noise.shape)} and x_t {tuple(x_t.shape)} differ")
            variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
            noisy = prev_sample + (variance ** (0.5)) * noise
            if tt.ndim == 0:
                prev_sample = noisy
            else:
                prev_sample = torch.where(self._batched_mask(add_noise, x_t), noisy, prev_sample)
        return StepOutput(prev_sample.to(x_t.dtype), pred_x0.to(x_t.dtype))


# ---------------------------------------------------------------------------------------------------------
# DDIM
# ---------------------------------------------------------------------------------------------------------
class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021), epsilon prediction; deterministic for ``eta=0`` (default).

    One step from ``t`` to ``p``: ``x0 = clip((x_t - sqrt(1-ab_t) eps) / sqrt(ab_t))``,
    ``sigma = eta * sqrt((1-ab_p)/(1-ab_t) * (1 - ab_t/ab_p))``,
    ``x_p = sqrt(ab_p) x0 + sqrt(1 - ab_p - sigma^2) eps + sigma z`` with ``ab_{-1} = 1``
    (diffusers' ``set_alpha_to_one=True``). As in diffusers, the direction term uses the model's eps even
    when x0 was clipped unless ``use_clipped_model_output=True``. With ``eta > 0`` noise is drawn at every
    step (also the last, where sigma = 0), as diffusers does. The step goes to the next timestep of the
    schedule; diffusers uses ``t - T // n``, which is the same whenever ``n`` divides ``T`` (with
    ``trailing`` spacing and e.g. n = 30 diffusers steps 966 -> 933 while the schedule's next level is 932).
    """

    name = "ddim"
    default_num_inference_steps = 50
    default_spacing = "leading"

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        eta: float = 0.0,
        timestep_spacing: str | None = None,
        steps_offset: int = 0,
        clip_sample: ClipSample = None,
        use_clipped_model_output: bool = False,
        num_inference_steps: int | None = None,
    ) -> None:
        super().__init__(
            schedule,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            clip_sample=clip_sample,
            num_inference_steps=num_inference_steps,
        )
        eta = float(eta)
        if not (eta >= 0 and math.isfinite(eta)):
            raise ValueError(f"eta must be a finite float >= 0, got {eta}")
        self.eta = eta
        self.use_clipped_model_output = bool(use_clipped_model_output)

    def _extra_config(self) -> dict[str, Any]:
        return {"eta": self.eta, "use_clipped_model_output": self.use_clipped_model_output}

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        x_t: torch.Tensor,
        prev_t: int | torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: GeneratorLike = None,
        clip_sample: ClipSample = _UNSET,
        state: Any = None,
    ) -> StepOutput:
        """One DDIM step from ``t`` to ``prev_t`` (default ``t - 1``; :meth:`sample` passes the schedule's)."""
        if model_output.shape != x_t.shape:
            raise ValueError(f"model_output {tuple(model_output.shape)} and x_t {tuple(x_t.shape)} differ")
        clip = self.clip_sample if clip_sample is _UNSET else _validate_clip(clip_sample)
        tt = _as_t(t)
        pt = tt - 1 if prev_t is None else _as_t(prev_t, "prev_t")
        if bool(torch.any(pt >= tt)):
            raise ValueError(f"prev_t must be smaller than t (got t={tt.tolist()}, prev_t={pt.tolist()})")

        alpha_prod_t = self._alpha_bar(tt, x_t)
        alpha_prod_t_prev = self._alpha_bar(pt, x_t)
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev

        pred_x0 = (x_t - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        pred_eps = model_output
        pred_x0 = _clip(pred_x0, clip)

        variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
        std_dev_t = self.eta * variance ** (0.5)
        if self.use_clipped_model_output and clip is not None:
            pred_eps = (x_t - alpha_prod_t ** (0.5) * pred_x0) / beta_prod_t ** (0.5)
        direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_eps
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_x0 + direction
        if self.eta > 0:
            if noise is None:
                noise = randn(x_t.shape, generator, device=x_t.device, dtype=x_t.dtype)
            elif noise.shape != x_t.shape:
                raise ValueError(f"noise {tuple(noise.shape)} and x_t {tuple(x_t.shape)} differ")
            prev_sample = prev_sample + std_dev_t * noise
        return StepOutput(prev_sample.to(x_t.dtype), pred_x0.to(x_t.dtype))


# ---------------------------------------------------------------------------------------------------------
# DPM-Solver++(2M)
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _DPMState:
    pred_x0: torch.Tensor  # data prediction at the previous evaluation point
    lam: torch.Tensor  # lambda (float64, broadcastable) at the previous evaluation point


class DPMSolverMultistepSampler(Sampler):
    """DPM-Solver++(2M): second-order multistep solver of the diffusion ODE in data prediction.

    Lu et al. 2022 (arXiv:2211.01095), Algorithm 2. With ``alpha_t = sqrt(ab_t)``,
    ``sigma_t = sqrt(1 - ab_t)``, ``lambda_t = log(alpha_t / sigma_t)`` and the data prediction
    ``x0_i = (x_{t_i} - sigma_{t_i} eps_i) / alpha_{t_i}`` (clipped if clipping is on), one step from
    ``s = t_{i-1}`` to ``t = t_i`` with ``h = lambda_t - lambda_s``:

        first order (first step):  x_t = (sigma_t / sigma_s) x_s - alpha_t (exp(-h) - 1) x0_s
        second order:  r = h_prev / h,  D = (1 + 1/(2r)) x0_s - 1/(2r) x0_{s'}
                       x_t = (sigma_t / sigma_s) x_s - alpha_t (exp(-h) - 1) D

    The last step goes to sigma = 0 (``prev_t = -1``) and returns the data prediction (first order, as
    diffusers' ``final_sigmas_type="zero"``, where h is infinite). Coefficients are
    computed in float64 and cast to the sample dtype.

    Timesteps: the default ``logsnr`` spacing (uniform in lambda, t = 999 ... 0, then the jump to sigma 0)
    converges at second order; ``linspace``/``leading``/``trailing`` follow diffusers'
    ``DPMSolverMultistepScheduler`` exactly (its default ``linspace``: n=20 -> 999, 949, ..., 50, then
    sigma 0) and match diffusers to ~1e-6, but their last evaluated level is t ~ T/n, and the first-order
    jump from there to sigma 0 shrinks the sample spread by O(1/n) (on a Gaussian toy with std 0.5 and 20
    steps: -10% std with ``linspace`` vs +0.6% with ``logsnr``).
    """

    name = "dpmsolver++"
    default_num_inference_steps = 20
    default_spacing = "logsnr"

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        timestep_spacing: str | None = None,
        steps_offset: int = 0,
        clip_sample: ClipSample = None,
        num_inference_steps: int | None = None,
    ) -> None:
        super().__init__(
            schedule,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            clip_sample=clip_sample,
            num_inference_steps=num_inference_steps,
        )
        ab = self.schedule.alphas_cumprod.double()
        self._alpha = ab.sqrt()
        self._sigma = (1 - ab).sqrt()
        self._lambda = self._alpha.log() - self._sigma.log()

    def timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """diffusers' DPM-Solver spacing: ``n + 1`` points of which the last (t = 0 side) is dropped,
        because the final step goes to sigma = 0 instead."""
        T = self.num_train_timesteps
        n = _check_num_steps(
            self.default_num_inference_steps if num_inference_steps is None else num_inference_steps, T
        )
        if self.timestep_spacing == "logsnr":
            ts = self._logsnr_timesteps(n)
        elif self.timestep_spacing == "linspace":
            ts = np.linspace(0, T - 1, n + 1).round()[::-1][:-1].astype(np.int64)
        elif self.timestep_spacing == "leading":
            ratio = T // (n + 1)
            ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].astype(np.int64) + self.steps_offset
        else:
            ts = np.arange(T, 0, -T / n).round().astype(np.int64) - 1
        return self._finish_timesteps(ts, n)

    def _coef(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor, clean: float) -> torch.Tensor:
        T = self.num_train_timesteps
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= T):
            raise ValueError(f"timesteps must lie in [0, {T - 1}] (or -1 for 'clean'), got {t.tolist()}")
        v = torch.where(t >= 0, table[t.clamp(min=0)], torch.tensor(clean, dtype=torch.float64))
        if t.ndim == 1:
            v = v.reshape((-1,) + (1,) * (like.ndim - 1))
        return v

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        x_t: torch.Tensor,
        prev_t: int | torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: GeneratorLike = None,
        clip_sample: ClipSample = _UNSET,
        state: _DPMState | None = None,
        lower_order: bool = False,
    ) -> StepOutput:
        """One DPM-Solver++ step from ``t`` to ``prev_t`` (-1 = sigma 0). Pass the returned ``state`` to the
        next call; ``state=None`` (first step) or ``lower_order=True`` gives the first-order update.
        ``noise``/``generator`` are accepted for interface symmetry and ignored (deterministic)."""
        if model_output.shape != x_t.shape:
            raise ValueError(f"model_output {tuple(model_output.shape)} and x_t {tuple(x_t.shape)} differ")
        clip = self.clip_sample if clip_sample is _UNSET else _validate_clip(clip_sample)
        tt = _as_t(t)
        pt = tt - 1 if prev_t is None else _as_t(prev_t, "prev_t")
        if bool(torch.any(pt >= tt)):
            raise ValueError(f"prev_t must be smaller than t (got t={tt.tolist()}, prev_t={pt.tolist()})")
        if bool(torch.any(tt < 0)):
            raise ValueError("t must be >= 0")

        dev, dt = x_t.device, x_t.dtype
        a_s = self._coef(self._alpha, tt, x_t, 1.0)
        s_s = self._coef(self._sigma, tt, x_t, 0.0)
        lam_s = self._coef(self._lambda, tt, x_t, math.inf)
        a_t = self._coef(self._alpha, pt, x_t, 1.0)
        s_t = self._coef(self._sigma, pt, x_t, 0.0)
        lam_t = self._coef(self._lambda, pt, x_t, math.inf)

        x0 = (x_t - s_s.to(dev, dt) * model_output) / a_s.to(dev, dt)
        x0 = _clip(x0, clip)

        h = lam_t - lam_s  # +inf when going to sigma = 0
        ratio = s_t / s_s  # 0 when going to sigma = 0
        phi = -a_t * torch.expm1(-h)  # alpha_t (1 - exp(-h)); -> 1 at sigma = 0
        final = pt < 0
        if bool(torch.any(final)) and not bool(torch.all(final)):
            raise ValueError("a batch mixing final (prev_t=-1) and non-final steps is not supported")
        if state is None or lower_order or bool(torch.all(final)):
            D = x0
        else:
            r = (lam_s - state.lam) / h  # h_prev / h
            c = 1.0 / (2.0 * r)
            D = (1.0 + c).to(dev, dt) * x0 - c.to(dev, dt) * state.pred_x0
        prev_sample = ratio.to(dev, dt) * x_t + phi.to(dev, dt) * D
        return StepOutput(prev_sample.to(dt), x0.to(dt), _DPMState(pred_x0=x0, lam=lam_s))


# ---------------------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------------------
SAMPLERS: dict[str, type[Sampler]] = {
    "ddpm": DDPMSampler,
    "ddim": DDIMSampler,
    "dpmsolver++": DPMSolverMultistepSampler,
}
_SAMPLER_ALIASES = {
    "dpm++": "dpmsolver++",
    "dpm++2m": "dpmsolver++",
    "dpm-solver++": "dpmsolver++",
    "dpmsolver": "dpmsolver++",
    "dpm": "dpmsolver++",
}


def get_sampler(
    name: str | Mapping[str, Any],
    schedule: NoiseSchedule | None = None,
    **kwargs: Any,
) -> Sampler:
    """Build a sampler by name (``ddpm``, ``ddim``, ``dpmsolver++``/``dpm++2m``) or from ``to_config()``.

    ``get_sampler("ddpm", paper=True)`` gives :meth:`DDPMSampler.paper`.
    """
    if isinstance(name, Mapping):
        cfg = dict(name)
        cfg.update(kwargs)
        kind = cfg.pop("sampler")
        sched_cfg = cfg.pop("schedule", None)
        if schedule is None and sched_cfg is not None:
            schedule = NoiseSchedule.from_config(sched_cfg)
        if isinstance(cfg.get("clip_sample"), list):
            cfg["clip_sample"] = tuple(cfg["clip_sample"])
        return get_sampler(kind, schedule, **cfg)
    key = str(name).lower().replace("_", "").replace(" ", "")
    key = _SAMPLER_ALIASES.get(key, key)
    if key not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS) + sorted(_SAMPLER_ALIASES)}")
    cls = SAMPLERS[key]
    if kwargs.pop("paper", False):
        if cls is not DDPMSampler:
            raise ValueError("paper=True applies to the DDPM sampler only")
        if kwargs:
            raise ValueError(f"paper=True takes no other options, got {sorted(kwargs)}")
        return DDPMSampler.paper(schedule)
    return cls(schedule, **kwargs)

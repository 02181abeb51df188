"""Noise schedules for discrete-time (DDPM-style) diffusion.

The paper's model (the authors' ``DiffuSETS_train.py`` with ``config/all.json``;
book/reference_implementation.md#noise-schedule-training-and-samplers) uses diffusers'
``DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012)``: a *linear* beta
schedule (not Stable Diffusion's ``scaled_linear``). diffusers holds every constant in float32:
``torch.linspace(..., dtype=float32)`` for the betas, ``1 - betas`` and a float32 ``torch.cumprod``.
:class:`NoiseSchedule` computes them the same way, so ``betas`` and ``alphas_cumprod`` are bitwise equal
to the reference's arrays (checked against ``tests/fixtures/reference/golden.npz``). The same constants
evaluated entirely in float64 are available as ``alphas_cumprod_f64`` (they differ by at most ~1.5e-7 for the
paper's schedule).

Conventions
-----------
* Timesteps are integers ``t = 0 .. T-1`` (``T = num_train_timesteps``); ``t = 0`` is the least noisy
  training level, ``alpha_bar[t] = prod_{s<=t} (1 - beta_s)``.
* ``x_t = sqrt(alpha_bar[t]) * x_0 + sqrt(1 - alpha_bar[t]) * eps`` (:meth:`NoiseSchedule.add_noise`).
* Samplers use ``alpha_bar[-1] := 1`` for "after the last step" (clean data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["BETA_SCHEDULES", "TIMESTEP_SAMPLING_MODES", "NoiseSchedule"]

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
#: ``uniform``: t ~ U{0, ..., T-1} (default). ``paper``: t ~ U{1, ..., T-2} = ``randint(1, T-1)``,
#: as the reference trains (the authors' ``utils/train.py``: never 0 nor T-1, although sampling visits both;
#: book/reference_implementation.md#noise-schedule-training-and-samplers).
TIMESTEP_SAMPLING_MODES = ("uniform", "paper")

_ALIASES = {"squaredcos_cap_v2": "cosine"}


def _cosine_betas(num_steps: int, max_beta: float = 0.999, s: float = 0.008) -> torch.Tensor:
    """Improved-DDPM cosine schedule (Nichol & Dhariwal 2021), as diffusers' ``squaredcos_cap_v2``.

    ``alpha_bar(u) = cos((u + s) / (1 + s) * pi / 2) ** 2`` on ``u in [0, 1]``;
    ``beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta)`` in float64, then float32.
    """

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1.0 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float32)


@dataclass(frozen=True)
class _Config:
    num_train_timesteps: int
    beta_start: float
    beta_end: float
    beta_schedule: str


class NoiseSchedule:
    """Discrete variance-preserving noise schedule.

    Parameters
    ----------
    num_train_timesteps:
        ``T``; timesteps are ``0 .. T-1``. Paper: 1000.
    beta_start, beta_end:
        End points for ``linear`` (betas linear) and ``scaled_linear`` (sqrt(betas) linear). Ignored by
        ``cosine``. Paper: 0.00085 and 0.012.
    beta_schedule:
        ``"linear"`` (paper, default), ``"scaled_linear"`` (Stable Diffusion) or ``"cosine"``
        (improved DDPM; alias ``"squaredcos_cap_v2"``).

    Attributes (all 1-D CPU tensors of length ``T``)
    ------------------------------------------------
    betas, alphas, alphas_cumprod:
        float32, computed exactly as diffusers does (bitwise equal to the reference).
    alphas_cumprod_f64:
        the same quantity computed entirely in float64 (for analysis; samplers use the float32 values).
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "linear",
    ) -> None:
        if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, int):
            raise TypeError(f"num_train_timesteps must be an int, got {num_train_timesteps!r}")
        if num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
        beta_schedule = _ALIASES.get(beta_schedule, beta_schedule)
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"unknown beta_schedule {beta_schedule!r}; expected one of {BETA_SCHEDULES}")
        beta_start, beta_end = float(beta_start), float(beta_end)
        if beta_schedule != "cosine" and not (0.0 < beta_start <= beta_end < 1.0):
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}")
        self._config = _Config(int(num_train_timesteps), beta_start, beta_end, beta_schedule)
        T = self.num_train_timesteps

        if beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
            betas64 = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        elif beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2
            betas64 = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
        else:  # cosine
            betas = _cosine_betas(T)
            betas64 = betas.double()
        self.betas: torch.Tensor = betas
        self.alphas: torch.Tensor = 1.0 - betas
        self.alphas_cumprod: torch.Tensor = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_f64: torch.Tensor = torch.cumprod(1.0 - betas64, dim=0)
        self._device_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    # ------------------------------------------------------------------ config
    @property
    def num_train_timesteps(self) -> int:
        return self._config.num_train_timesteps

    @property
    def beta_start(self) -> float:
        return self._config.beta_start

    @property
    def beta_end(self) -> float:
        return self._config.beta_end

    @property
    def beta_schedule(self) -> str:
        return self._config.beta_schedule

    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``NoiseSchedule.from_config(s.to_config())`` rebuilds ``s``."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": self.beta_schedule,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NoiseSchedule:
        known = {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown NoiseSchedule config keys: {sorted(unknown)}")
        return cls(**dict(config))

    @classmethod
    def paper(cls) -> NoiseSchedule:
        """The reference's schedule: linear betas 0.00085 -> 0.012 over 1000 steps."""
        return cls(1000, 0.00085, 0.012, "linear")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoiseSchedule) and self._config == other._config

    def __hash__(self) -> int:
        return hash(self._config)

    def __repr__(self) -> str:
        c = self._config
        return (
            f"NoiseSchedule(num_train_timesteps={c.num_train_timesteps}, beta_start={c.beta_start}, "
            f"beta_end={c.beta_end}, beta_schedule={c.beta_schedule!r})"
        )

    # ------------------------------------------------------------------ helpers
    def _check_t(self, t: torch.Tensor) -> None:
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"timesteps must be integers, got dtype {t.dtype}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_train_timesteps):
            raise ValueError(
                f"timesteps must lie in [0, {self.num_train_timesteps - 1}], got range [{int(t.min())}, {int(t.max())}]"
            )

    def alphas_cumprod_on(self, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        """``alphas_cumprod`` (length ``T``) cast to ``dtype`` on ``device``, cached per (device, dtype): index it
        with a timestep tensor on that device (the training loss's SNR weights, :meth:`add_noise`)."""
        key = (torch.device(device), dtype)
        ac = self._device_cache.get(key)
        if ac is None:
            ac = self.alphas_cumprod.to(device=device, dtype=dtype)
            self._device_cache[key] = ac
        return ac

    def alpha_bar(self, t: int | torch.Tensor) -> torch.Tensor:
        """``alphas_cumprod[t]`` (float32), with ``alpha_bar(-1) = 1`` (clean data)."""
        t = torch.as_tensor(t, dtype=torch.long)
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= self.num_train_timesteps):
            raise ValueError(f"t must lie in [-1, {self.num_train_timesteps - 1}]")
        return torch.where(t >= 0, self.alphas_cumprod[t.clamp(min=0)], torch.ones((), dtype=torch.float32))

    def sqrt_alpha_bar(self, t: int | torch.Tensor) -> torch.Tensor:
        """Signal coefficient ``sqrt(alpha_bar[t])`` of ``x_t``."""
        return self.alpha_bar(t) ** 0.5

    @property
    def sqrt_alpha_bar_T(self) -> float:
        """``sqrt(alpha_bar[T-1])``: how much of x_0 survives in the terminal latent.

        Paper schedule: 0.0397, i.e. x_T is close to (not exactly) pure noise, so sampling from
        ``N(0, I)`` is a small, documented mismatch.
        """
        return float(self.alphas_cumprod_f64[-1].sqrt())

    def snr(self, t: int | torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` (float64) at ``t`` (for loss weighting)."""
        t = torch.as_tensor(t, dtype=torch.long)
        self._check_t(t)
        ab = self.alphas_cumprod.double()[t]
        return ab / (1.0 - ab)

    # ------------------------------------------------------------------ forward process
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Forward process ``x_t = sqrt(ab[t]) * x0 + sqrt(1 - ab[t]) * noise`` (diffusers' ``add_noise``).

        ``t`` is an int (same level for the batch) or an integer tensor of shape ``(B,)`` (one level per
        sample). The constants are cast to ``x0.dtype`` first, as diffusers does, so in float32 the result is
        bitwise equal to ``DDPMScheduler.add_noise``.
        """
        if x0.shape != noise.shape:
            raise ValueError(f"x0 and noise must have the same shape, got {tuple(x0.shape)} and {tuple(noise.shape)}")
        t = torch.as_tensor(t, dtype=torch.long) if not isinstance(t, torch.Tensor) else t
        self._check_t(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, x0.shape[0])):
            raise ValueError(f"t must be a scalar or have shape (B,) with B={x0.shape[0]}, got {tuple(t.shape)}")
        ac = self.alphas_cumprod_on(x0.device, x0.dtype)
        ab = ac[t.to(x0.device)]
        sqrt_ab = (ab**0.5).flatten()
        sqrt_1m = ((1 - ab) ** 0.5).flatten()
        view = (-1,) + (1,) * (x0.ndim - 1)
        return sqrt_ab.reshape(view) * x0 + sqrt_1m.reshape(view) * noise

    # ------------------------------------------------------------------ training timesteps
    def sample_timesteps(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        mode: str = "uniform",
    ) -> torch.Tensor:
        """Training timesteps, a ``(batch_size,)`` LongTensor.

        ``mode="uniform"`` (default): uniform on ``{0, ..., T-1}``, every level the sampler visits is trained.
        ``mode="paper"``: ``randint(1, T-1)`` = uniform on ``{1, ..., T-2}`` as the reference trains
        (never 0 nor T-1, although its sampler uses both; the authors' ``utils/train.py``,
        book/reference_implementation.md#noise-schedule-training-and-samplers).
        Drawn on the generator's device (CPU when none is given), then moved to ``device``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
        T = self.num_train_timesteps
        if mode == "uniform":
            low, high = 0, T
        elif mode == "paper":
            if T < 3:
                raise ValueError("mode='paper' needs num_train_timesteps >= 3")
            low, high = 1, T - 1
        else:
            raise ValueError(f"unknown timestep sampling mode {mode!r}; expected one of {TIMESTEP_SAMPLING_MODES}")
        gen_device = generator.device if generator is not None else torch.device("cpu")
        t = torch.randint(low, high, (batch_size,), generator=generator, device=gen_device, dtype=torch.long)
        return t.to(device) if device is not None else t

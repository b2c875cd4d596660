"""Flow-matching noise schedules of Wan2.1 (official `wan/utils/fm_solvers_unipc.py`
`FlowUniPCMultistepScheduler.set_timesteps`, `wan/utils/fm_solvers.py` `get_sampling_sigmas`).

A schedule is a decreasing list of sigmas in [0, 1] ending at 0 (σ = 1 is pure noise) and the
timesteps the model is called with. Two families are offered:

- ``kind="official"`` reproduces the official Wan2.1 code (`wan/utils/fm_solvers*.py`):
  UniPC and Euler use ``linspace(σ_max, 0, steps + 1)[:-1]`` with σ_max = float32(0.999) from the
  1000-step training table; DPM++ uses ``linspace(1, 0, steps + 1)[:steps]`` (first σ exactly 1.0),
  as `get_sampling_sigmas` does. Timesteps are ``int64(σ·1000)`` (truncated).
- ``kind="diffusers"`` reproduces the arrays of diffusers' schedulers in flow mode, for parity checks:
  `UniPCMultistepScheduler` / `DPMSolverMultistepScheduler` with ``prediction_type="flow_prediction",
  use_flow_sigmas=True, flow_shift=shift`` and `FlowMatchEulerDiscreteScheduler(shift=shift)`, all with
  ``num_train_timesteps=1000`` and their other defaults. diffusers' Euler feeds fractional float32
  timesteps (σ·1000), so that one schedule has float32 timesteps; every other schedule has int64.

The shift is applied in float64 numpy and the sigmas are stored as float32, as in the reference code.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .solvers import SOLVERS, FlowSolver, make_solver

NUM_TRAIN_TIMESTEPS = 1000
SCHEDULE_KINDS = ("official", "diffusers")
# First sigma of the 1000-step training table, 1 - 1/1000, as the float32 the official code reads back.
OFFICIAL_SIGMA_MAX = float(np.float32(1.0 - 1.0 / NUM_TRAIN_TIMESTEPS))
# diffusers' UniPC lowers a first sigma of 1.0 by this much to keep log(alpha) finite.
DIFFUSERS_UNIPC_SIGMA_EPS = 1e-6


@dataclass(frozen=True)
class Schedule:
    """Sigmas and model timesteps of one sampling run.

    sigmas: float32 [n + 1], strictly decreasing; ``sigmas[i]`` is the noise level of the latent fed
    to the model at step i, ``sigmas[n]`` the level the run ends at (0 unless cut by ``end_step``).
    timesteps: int64 [n] (float32 only for kind="diffusers" with Euler), what the model receives.
    solver: the solver name this schedule was built for.
    """

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    solver: str

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def __len__(self) -> int:
        return self.num_steps

    def new_solver(self) -> FlowSolver:
        """A fresh solver of this schedule's kind over its sigmas."""
        return make_solver(self.solver, self.sigmas)


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """σ' = shift·σ / (1 + (shift − 1)·σ), evaluated in this order in float64 like the reference."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def make_schedule(
    steps: int | None,
    shift: float = 5.0,
    kind: str = "official",
    solver: str = "unipc",
    sigmas: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    denoise: float = 1.0,
    start_step: int = 0,
    end_step: int | None = None,
) -> Schedule:
    """Build the schedule of one sampling run.

    steps: number of steps of the full schedule (may be None when ``sigmas`` is given).
    shift: flow shift (3.0 for 480p, 5.0 for 720p in the official I2V defaults); must be > 0.
    kind: "official" (default) or "diffusers", see the module docstring.
    solver: "unipc" (default), "dpm++" or "euler"; selects the official DPM++ schedule and the
        diffusers scheduler whose arrays are reproduced.
    sigmas: custom sigmas used as given (no shift; ``kind`` and ``shift`` are ignored): strictly
        decreasing values in [0, 1]; a final 0 is appended when missing. Timesteps are int64(σ·1000).
    denoise: in (0, 1]; keeps the last ``round(steps·denoise)`` steps (rounding halves up), for
        video-to-video. Noise the input to ``sigmas[0]`` with `add_noise`.
    start_step, end_step: run only steps [start_step, end_step) of the (denoised) schedule, e.g. one
        stage of a two-stage split; the schedule then ends at ``sigmas[end_step]``. Each such part
        is solved on its own (a fresh solver, first order at its first and last step), as diffusers
        does when given those sigmas.

    Returns a `Schedule`; ``schedule.new_solver()`` gives the matching solver.
    """
    _check_choice("solver", solver, SOLVERS)
    _check_choice("kind", kind, SCHEDULE_KINDS)
    if sigmas is not None:
        full_sigmas, timesteps = _custom_schedule(sigmas, steps)
    else:
        _check_steps_and_shift(steps, shift)
        full_sigmas, timesteps = _BUILDERS[kind, solver](int(steps), float(shift))
    full_sigmas, timesteps = _keep_denoised_tail(full_sigmas, timesteps, denoise)
    start, end = _check_step_range(start_step, end_step, len(timesteps))
    return Schedule(full_sigmas[start:end + 1].clone(), timesteps[start:end].clone(), solver)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The latent at noise level σ: x = (1 − σ)·x0 + σ·noise, computed in float32."""
    if x0.shape != noise.shape:
        raise ValueError(f"add_noise: x0 has shape {tuple(x0.shape)} but noise has shape {tuple(noise.shape)}")
    sigma = float(sigma)
    if not 0.0 <= sigma <= 1.0:
        raise ValueError(f"add_noise: sigma must lie in [0, 1], found {sigma}")
    return (1.0 - sigma) * x0.float() + sigma * noise.float()


# --------------------------------------------------------------------------------------------
# Schedules. Each returns (sigmas float32 [n + 1] ending at 0, timesteps [n]).

def _official_unipc(steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`FlowUniPCMultistepScheduler(shift=1).set_timesteps(steps, shift=shift)`; also used for Euler."""
    sigmas = np.linspace(OFFICIAL_SIGMA_MAX, 0.0, steps + 1)[:-1]
    return _finish(shift_sigmas(sigmas, shift))


def _official_dpm(steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`get_sampling_sigmas(steps, shift)` passed to `FlowDPMSolverMultistepScheduler(shift=1)`."""
    sigmas = np.linspace(1.0, 0.0, steps + 1)[:steps]
    return _finish(shift_sigmas(sigmas, shift))


def _diffusers_unipc(steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """UniPCMultistepScheduler(flow_prediction, use_flow_sigmas=True, flow_shift=shift)."""
    sigmas = shift_sigmas(np.linspace(1.0, 1.0 / NUM_TRAIN_TIMESTEPS, steps + 1)[:-1], shift)
    if abs(sigmas[0] - 1.0) < DIFFUSERS_UNIPC_SIGMA_EPS:
        sigmas[0] -= DIFFUSERS_UNIPC_SIGMA_EPS
    return _finish(sigmas)


def _diffusers_dpm(steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPMSolverMultistepScheduler(flow_prediction, use_flow_sigmas=True, flow_shift=shift)."""
    sigmas = 1.0 - np.linspace(1.0, 1.0 / NUM_TRAIN_TIMESTEPS, steps + 1)
    return _finish(np.flip(shift_sigmas(sigmas, shift))[:-1].copy())


def _diffusers_euler(steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FlowMatchEulerDiscreteScheduler(shift=shift): linspace from 1 to the shifted float32 training
    sigma_min, shifted (again); float32 timesteps σ·1000."""
    table_min = torch.ones(1, dtype=torch.float32) / NUM_TRAIN_TIMESTEPS   # last training sigma
    sigma_min = (shift * table_min / (1 + (shift - 1) * table_min)).item()  # shifted in float32
    sigmas = np.linspace(1.0 * NUM_TRAIN_TIMESTEPS, sigma_min * NUM_TRAIN_TIMESTEPS, steps)
    sigmas = torch.from_numpy(shift_sigmas(sigmas / NUM_TRAIN_TIMESTEPS, shift)).float()
    return torch.cat([sigmas, sigmas.new_zeros(1)]), sigmas * NUM_TRAIN_TIMESTEPS


_BUILDERS = {
    ("official", "unipc"): _official_unipc,
    ("official", "euler"): _official_unipc,
    ("official", "dpm++"): _official_dpm,
    ("diffusers", "unipc"): _diffusers_unipc,
    ("diffusers", "dpm++"): _diffusers_dpm,
    ("diffusers", "euler"): _diffusers_euler,
}


def _finish(sigmas: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 sigmas [n] → (float32 sigmas [n + 1] with a final 0, int64 timesteps int(σ·1000) [n])."""
    timesteps = torch.from_numpy((sigmas * NUM_TRAIN_TIMESTEPS).astype(np.int64))
    return torch.from_numpy(np.append(sigmas, 0.0).astype(np.float32)), timesteps


def _custom_schedule(sigmas, steps: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate user sigmas (strictly decreasing, in [0, 1]) and append the final 0 if missing."""
    if isinstance(sigmas, torch.Tensor):
        sigmas = sigmas.detach().cpu().double().numpy()
    values = np.asarray(sigmas, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"sigmas: expected a non-empty 1-D list of floats, found shape {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"sigmas: every value must lie in [0, 1], found min {values.min()} and max {values.max()}")
    if np.any(np.diff(values) >= 0):
        i = int(np.argmax(np.diff(values) >= 0))
        raise ValueError(f"sigmas: must be strictly decreasing, found sigmas[{i}]={values[i]} "
                         f"followed by sigmas[{i + 1}]={values[i + 1]}")
    if values[-1] != 0.0:
        values = np.append(values, 0.0)
    n = values.size - 1
    if n < 1:
        raise ValueError("sigmas: need at least one value above 0 (one step), found only [0.0]")
    if steps is not None and steps != n:
        raise ValueError(f"steps: {steps} does not match the {n} steps of the given sigmas; pass steps=None")
    return _finish(values[:-1])


def _keep_denoised_tail(sigmas: torch.Tensor, timesteps: torch.Tensor, denoise: float):
    """Keep the last round(n·denoise) steps (half rounds up), as in image/video-to-video."""
    if not _is_real(denoise) or not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise: expected a number in (0, 1], found {denoise!r}")
    n = len(timesteps)
    keep = math.floor(n * denoise + 0.5)
    if keep < 1:
        raise ValueError(f"denoise: {denoise} of {n} steps keeps no step; use denoise >= {0.5 / n:.4g} "
                         "or more steps")
    return sigmas[n - keep:], timesteps[n - keep:]


def _check_step_range(start_step: int, end_step: int | None, n: int) -> tuple[int, int]:
    end = n if end_step is None else end_step
    if not _is_int(start_step) or not 0 <= start_step < n:
        raise ValueError(f"start_step: expected an integer in [0, {n - 1}] for a {n}-step schedule, "
                         f"found {start_step!r}")
    if not _is_int(end) or not start_step < end <= n:
        raise ValueError(f"end_step: expected an integer in [{start_step + 1}, {n}] (after start_step "
                         f"{start_step}, at most the {n} steps of the schedule) or None, found {end_step!r}")
    return int(start_step), int(end)


def _check_steps_and_shift(steps, shift) -> None:
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, found {steps!r}")
    if not _is_real(shift) or not math.isfinite(shift) or shift <= 0:
        raise ValueError(f"shift: expected a finite number > 0, found {shift!r}")


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, found {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)

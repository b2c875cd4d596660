"""Flow-matching ODE solvers of Wan2.1: UniPC (bh2), DPM++ 2M and Euler (official
`wan/utils/fm_solvers_unipc.py`, `wan/utils/fm_solvers.py`; Euler is not in the official code).

The model predicts the velocity v = ε − x0, so the data prediction is x0 = x − σ·v. With α = 1 − σ
and λ = log α − log σ, UniPC and DPM++ are the multistep exponential integrators of the official
`FlowUniPCMultistepScheduler` / `FlowDPMSolverMultistepScheduler` (the diffusers ones in flow mode)
with their Wan settings: order 2, data prediction, lower order at the first and the last step, final σ
as given. Per-step scalars (α, σ, λ, h and the coefficients) are computed in float32 tensors, as in the
reference; σ = 1 (λ = −∞) and σ = 0 (λ = +∞) are handled through IEEE infinities.

Usage, with ``sigmas`` float32 [n + 1] from a `Schedule`:

    solver = make_solver("unipc", sigmas)
    for i, t in enumerate(timesteps):
        x = solver.step(model(x, t), x, i)      # solver.x0_estimate: the current x0 prediction

State and outputs are float32 whatever the dtype of the model output. A run starts at step 0:
calling ``step(..., 0)`` (or `reset`) clears the history, so one solver can serve several runs.
"""
from __future__ import annotations

import torch

SOLVERS = ("unipc", "dpm++", "euler")


class FlowSolver:
    """Common part: sigma tables, step bookkeeping and the x0 estimate of the last step."""

    name = ""

    def __init__(self, sigmas: torch.Tensor):
        sigmas = _checked_sigmas(sigmas, self.name)
        self.sigmas = sigmas                                   # float32 [n + 1], on CPU
        self.alphas = 1.0 - sigmas                             # α = 1 − σ
        self.lambdas = torch.log(self.alphas) - torch.log(sigmas)  # λ: −∞ at σ = 1, +∞ at σ = 0
        self.reset()

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    def reset(self) -> None:
        """Forget the history; the next call must be step 0."""
        self.step_index = 0
        self.x0_estimate: torch.Tensor | None = None

    def step(self, velocity: torch.Tensor, x: torch.Tensor, i: int) -> torch.Tensor:
        """Advance the latent ``x`` at sigmas[i] to sigmas[i + 1] given the model velocity at step i.

        Returns the next latent in float32; sets ``x0_estimate`` to x − sigmas[i]·v (float32).
        """
        if i == 0:
            self.reset()
        if i != self.step_index:
            raise ValueError(f"{self.name} solver: expected step {self.step_index} (steps run in order "
                             f"from 0 to {self.num_steps - 1}), found step {i}")
        if i >= self.num_steps:
            raise ValueError(f"{self.name} solver: the schedule has only {self.num_steps} steps, found step {i}")
        if velocity.shape != x.shape:
            raise ValueError(f"{self.name} solver: velocity has shape {tuple(velocity.shape)} but the latent "
                             f"has shape {tuple(x.shape)}")
        x = x.float()
        velocity = velocity.float()
        x_next = self._advance(velocity, x, i)
        self.step_index = i + 1
        return x_next

    def _advance(self, velocity: torch.Tensor, x: torch.Tensor, i: int) -> torch.Tensor:
        raise NotImplementedError

    def _data_prediction(self, velocity: torch.Tensor, x: torch.Tensor, i: int) -> torch.Tensor:
        """x0 = x − σ_i·v, kept as the preview estimate."""
        self.x0_estimate = x - self.sigmas[i].item() * velocity
        return self.x0_estimate

    def _order(self, i: int) -> int:
        """Order 2 except at the first step (no history) and the last step (lower_order_final)."""
        return min(2, i + 1, self.num_steps - i)


class EulerSolver(FlowSolver):
    """x_{i+1} = x_i + (σ_{i+1} − σ_i)·v (diffusers' FlowMatchEulerDiscreteScheduler)."""

    name = "euler"

    def _advance(self, velocity, x, i):
        self._data_prediction(velocity, x, i)
        dt = (self.sigmas[i + 1] - self.sigmas[i]).item()
        return x + dt * velocity


class DPMSolver(FlowSolver):
    """Multistep DPM-Solver++ 2M, midpoint form, in data prediction.

    First order: x_t = (σ_t/σ_s)·x − α_t(e^{−h} − 1)·m0, with h = λ_t − λ_s.
    Second order adds −0.5·α_t(e^{−h} − 1)·D1, D1 = (m0 − m1)/r0, r0 = (λ_s − λ_{s−1})/h.
    """

    name = "dpm++"

    def reset(self) -> None:
        super().reset()
        self.previous_x0: torch.Tensor | None = None

    def _advance(self, velocity, x, i):
        m0 = self._data_prediction(velocity, x, i)
        lam_t, lam_s = self.lambdas[i + 1], self.lambdas[i]
        h = lam_t - lam_s
        ratio = (self.sigmas[i + 1] / self.sigmas[i]).item()
        phi = (self.alphas[i + 1] * (torch.exp(-h) - 1.0)).item()     # α_t(e^{−h} − 1)
        x_next = ratio * x - phi * m0
        if self._order(i) == 2:
            inv_r0 = (1.0 / ((lam_s - self.lambdas[i - 1]) / h)).item()  # 0 when σ_{i−1} = 1
            x_next = x_next - (0.5 * phi) * (inv_r0 * (m0 - self.previous_x0))
        self.previous_x0 = m0
        return x_next


class UniPCSolver(FlowSolver):
    """UniPC with B(h) = e^{h'} − 1 (bh2), data prediction, order 2, with the UniC corrector.

    At step i the sample coming from the previous predictor is first corrected with the new data
    prediction m_i (UniC, of the previous predictor's order), then the UniP predictor moves it to
    σ_{i+1}. With h' = −(λ_t − λ_s):
        x_t = (σ_t/σ_s)·x_s − α_t(e^{h'} − 1)·m_s − α_t·B(h')·Σ_k ρ_k·D_k.
    """

    name = "unipc"

    def reset(self) -> None:
        super().reset()
        self.history: list[torch.Tensor] = []        # data predictions m_{i−2}, m_{i−1}
        self.last_sample: torch.Tensor | None = None  # input of the previous predictor
        self.last_order = 0

    def _advance(self, velocity, x, i):
        m = self._data_prediction(velocity, x, i)
        if i > 0:
            x = self._correct(m, i)
        self.history = (self.history + [m])[-2:]
        self.last_order = self._order(i)
        self.last_sample = x
        return self._predict(x, i, self.last_order)

    def _predict(self, x: torch.Tensor, i: int, order: int) -> torch.Tensor:
        """UniP from σ_i to σ_{i+1}; order 2 uses ρ = 0.5 on D1 = (m_{i−1} − m_i)/r."""
        m0 = self.history[-1]
        h = self.lambdas[i + 1] - self.lambdas[i]
        x_next, b_h = self._exponential_step(x, m0, src=i, dst=i + 1, h=h)
        if order == 2:
            rk = ((self.lambdas[i - 1] - self.lambdas[i]) / h).item()
            d1 = (self.history[-2] - m0) / rk
            x_next = x_next - b_h * (0.5 * d1)
        return x_next

    def _correct(self, m_now: torch.Tensor, i: int) -> torch.Tensor:
        """UniC: redo the last step σ_{i−1} → σ_i with the data prediction m_i at its end."""
        m0 = self.history[-1]
        h = self.lambdas[i] - self.lambdas[i - 1]
        x_corr, b_h = self._exponential_step(self.last_sample, m0, src=i - 1, dst=i, h=h)
        d_now = m_now - m0
        if self.last_order == 1:
            return x_corr - b_h * (0.5 * d_now)
        rk = (self.lambdas[i - 2] - self.lambdas[i - 1]) / h
        rho_prev, rho_now = _unic_order2_rhos(-h, rk)
        d_prev = (self.history[-2] - m0) / rk.item()
        return x_corr - b_h * (rho_prev * d_prev + rho_now * d_now)

    def _exponential_step(self, x, m0, src: int, dst: int, h: torch.Tensor) -> tuple[torch.Tensor, float]:
        """First-order part (σ_dst/σ_src)·x − α_dst(e^{−h} − 1)·m0, and the factor α_dst·B(h)."""
        h_phi_1 = torch.expm1(-h)                                       # = B(h) for bh2
        ratio = (self.sigmas[dst] / self.sigmas[src]).item()
        alpha_b = (self.alphas[dst] * h_phi_1).item()
        return ratio * x - alpha_b * m0, alpha_b


def _unic_order2_rhos(hh: torch.Tensor, rk: torch.Tensor) -> tuple[float, float]:
    """Solve [[1, 1], [rk, 1]]·ρ = b for the order-2 corrector, b from the φ-function recursion.

    b_1 = (φ_1/h' − 1)/B, b_2 = 2·((φ_1/h' − 1)/h' − 1/2)/B with φ_1 = B = e^{h'} − 1. Closed form;
    rk = −∞ (previous σ = 1) gives ρ = (0, b_1), the limit of the system.
    """
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b1 = h_phi_k / h_phi_1
    b2 = (h_phi_k / hh - 0.5) * 2 / h_phi_1
    rho_prev = (b1 - b2) / (1 - rk)
    return rho_prev.item(), (b1 - rho_prev).item()


def make_solver(name: str, sigmas: torch.Tensor) -> FlowSolver:
    """A fresh solver ("unipc", "dpm++" or "euler") over float32 sigmas [n + 1] ending the run."""
    classes = {"unipc": UniPCSolver, "dpm++": DPMSolver, "euler": EulerSolver}
    if name not in classes:
        raise ValueError(f"solver: expected one of {', '.join(map(repr, SOLVERS))}, found {name!r}")
    return classes[name](sigmas)


def _checked_sigmas(sigmas, solver: str) -> torch.Tensor:
    """float32 CPU copy of a strictly decreasing 1-D sigma list in [0, 1] with at least 2 entries."""
    sigmas = torch.as_tensor(sigmas).detach().to("cpu", torch.float32).clone()
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(f"{solver} solver: sigmas must be 1-D with at least 2 values (one step), "
                         f"found shape {tuple(sigmas.shape)}")
    if not torch.isfinite(sigmas).all() or sigmas.min() < 0 or sigmas.max() > 1:
        raise ValueError(f"{solver} solver: sigmas must lie in [0, 1], found min {sigmas.min().item()} "
                         f"and max {sigmas.max().item()}")
    if not (sigmas[1:] < sigmas[:-1]).all():
        raise ValueError(f"{solver} solver: sigmas must be strictly decreasing, found {sigmas.tolist()}")
    return sigmas

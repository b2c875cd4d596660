"""Flow-matching schedules and solvers (wan21_core.sampling.sigmas, wan21_core.sampling.solvers).

References: the timesteps of the official Wan2.1 code (`wan/utils/fm_solvers_unipc.py`
`FlowUniPCMultistepScheduler.set_timesteps`, `wan/utils/fm_solvers.py` `get_sampling_sigmas`),
diffusers' flow-mode schedulers (sigma and timestep arrays; step-by-step states on the same sigmas),
and hand computations of the first-order steps in float64.
"""
import ast
import math
import pathlib

import numpy as np
import pytest
import torch

from wan21_core.sampling.sigmas import OFFICIAL_SIGMA_MAX, Schedule, add_noise, make_schedule
from wan21_core.sampling.solvers import SOLVERS, make_solver

diffusers_schedulers = pytest.importorskip("diffusers.schedulers")
# diffusers' DPM-Solver builds an unused beta table through a NumPy-2-deprecated path.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RUNS = [(10, 3.0), (40, 5.0), (20, 8.0)]
# Parity bound: max |ours − diffusers| over all elements and steps, relative to max |diffusers|.
PARITY_RTOL = 1e-6


def diffusers_scheduler(solver: str, shift: float):
    """The diffusers scheduler whose flow-mode schedule kind="diffusers" reproduces."""
    if solver == "unipc":
        return diffusers_schedulers.UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift, num_train_timesteps=1000)
    if solver == "dpm++":
        return diffusers_schedulers.DPMSolverMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift, num_train_timesteps=1000)
    return diffusers_schedulers.FlowMatchEulerDiscreteScheduler(shift=shift, num_train_timesteps=1000)


def fake_velocity(x: torch.Tensor, t) -> torch.Tensor:
    """A deterministic nonlinear stand-in for the DiT: v = f(x, t)."""
    t = float(t)
    return torch.sin(1.3 * x + t / 700.0) * (0.6 + t / 2000.0) + 0.25 * x - 0.1 * x.roll(1, dims=-1)


def initial_latent(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def run_ours(schedule: Schedule, x: torch.Tensor) -> list[torch.Tensor]:
    solver = schedule.new_solver()
    states = []
    for i, t in enumerate(schedule.timesteps):
        x = solver.step(fake_velocity(x, t), x, i)
        states.append(x)
    return states


def run_diffusers(schedule: Schedule, shift: float, x: torch.Tensor) -> list[torch.Tensor]:
    """Drive the diffusers scheduler over exactly our sigmas and timesteps."""
    reference = diffusers_scheduler(schedule.solver, shift)
    reference.set_timesteps(schedule.num_steps)
    reference.sigmas = schedule.sigmas.clone()
    reference.timesteps = schedule.timesteps.clone()
    reference.set_begin_index(0)
    states = []
    for t in schedule.timesteps:
        t_arg = t.float() if schedule.solver == "euler" else t  # FlowMatchEuler rejects integer tensors
        x = reference.step(fake_velocity(x, t), t_arg, x).prev_sample
        states.append(x)
    return states


def assert_runs_agree(ours: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    assert len(ours) == len(reference)
    for i, (a, b) in enumerate(zip(ours, reference)):
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        error = (a - b).abs().max().item() / b.abs().max().item()
        assert error <= PARITY_RTOL, f"step {i}: relative max error {error:.3e}"


# ------------------------------------------------------------------------------------------
# Official schedules (spec values).

def test_official_unipc_timesteps_40_steps_shift_5():
    t = make_schedule(40, shift=5.0).timesteps
    assert t.dtype == torch.int64 and len(t) == 40
    assert t[:6].tolist() == [999, 994, 989, 983, 978, 972]
    assert t[-4:].tolist() == [356, 288, 208, 113]


def test_official_unipc_timesteps_40_steps_shift_3():
    t = make_schedule(40, shift=3.0).timesteps
    assert t[:6].tolist() == [999, 991, 982, 973, 963, 954]
    assert t[-4:].tolist() == [249, 195, 136, 71]


def test_official_unipc_10_steps_shift_3():
    schedule = make_schedule(10, shift=3.0)
    assert schedule.timesteps.tolist() == [999, 963, 922, 874, 817, 749, 666, 562, 428, 249]
    assert schedule.sigmas.dtype == torch.float32 and schedule.sigmas.shape == (11,)
    assert schedule.sigmas[0].item() == pytest.approx(0.99967, abs=1e-5)
    assert schedule.sigmas[-1].item() == 0.0
    assert OFFICIAL_SIGMA_MAX == 0.9990000128746033


def test_official_euler_uses_the_unipc_schedule():
    unipc, euler = make_schedule(20, 5.0), make_schedule(20, 5.0, solver="euler")
    assert torch.equal(unipc.sigmas, euler.sigmas) and torch.equal(unipc.timesteps, euler.timesteps)


def test_official_dpm_schedule_starts_at_one():
    schedule = make_schedule(10, shift=3.0, solver="dpm++")
    assert schedule.sigmas[0].item() == 1.0 and schedule.timesteps[0].item() == 1000
    raw = np.linspace(1, 0, 11)[:10]
    expected = 3.0 * raw / (1 + 2.0 * raw)
    assert torch.equal(schedule.sigmas[:-1], torch.from_numpy(expected.astype(np.float32)))
    assert schedule.timesteps.tolist() == (expected * 1000).astype(np.int64).tolist()


# ------------------------------------------------------------------------------------------
# diffusers schedules: identical arrays.

@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps,shift", RUNS + [(1, 5.0), (7, 1.0), (50, 5.3)])
def test_diffusers_schedule_arrays_are_identical(solver, steps, shift):
    ours = make_schedule(steps, shift, kind="diffusers", solver=solver)
    reference = diffusers_scheduler(solver, shift)
    reference.set_timesteps(steps)
    assert torch.equal(ours.sigmas, reference.sigmas)
    assert ours.timesteps.dtype == reference.timesteps.dtype
    assert torch.equal(ours.timesteps, reference.timesteps)


def test_diffusers_and_official_timesteps_differ_by_about_one():
    official = make_schedule(10, 3.0).timesteps
    diffusers = make_schedule(10, 3.0, kind="diffusers").timesteps
    assert diffusers.tolist() == [999, 964, 923, 875, 818, 750, 667, 563, 429, 251]
    assert (diffusers - official).abs().max().item() <= 2


# ------------------------------------------------------------------------------------------
# Solver steps against diffusers over whole runs on the same sigmas.

@pytest.mark.parametrize("kind", ["official", "diffusers"])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps,shift", RUNS)
def test_solver_matches_diffusers_step_by_step(kind, solver, steps, shift):
    schedule = make_schedule(steps, shift, kind=kind, solver=solver)
    x = initial_latent()
    assert_runs_agree(run_ours(schedule, x), run_diffusers(schedule, shift, x))


@pytest.mark.parametrize("solver", SOLVERS)
def test_solver_matches_diffusers_on_a_sub_range_and_custom_sigmas(solver):
    stage = make_schedule(20, 5.0, solver=solver, start_step=3, end_step=12)
    assert stage.sigmas[-1].item() > 0
    assert_runs_agree(run_ours(stage, initial_latent(1)), run_diffusers(stage, 5.0, initial_latent(1)))
    custom = make_schedule(None, solver=solver, sigmas=[1.0, 0.9, 0.75, 0.5, 0.3, 0.12, 0.05])
    assert_runs_agree(run_ours(custom, initial_latent(2)), run_diffusers(custom, 1.0, initial_latent(2)))


# ------------------------------------------------------------------------------------------
# Independent hand computations (float64) of the first-order updates.

def lam(sigma: float) -> float:
    return math.log(1 - sigma) - math.log(sigma) if sigma < 1 else -math.inf


def test_euler_step_by_hand():
    schedule = make_schedule(10, 3.0, solver="euler")
    x = initial_latent().double()
    s0, s1 = schedule.sigmas[0].item(), schedule.sigmas[1].item()
    v = fake_velocity(x, schedule.timesteps[0])
    solver = make_solver("euler", schedule.sigmas)
    out = solver.step(v.float(), x.float(), 0)
    torch.testing.assert_close(out.double(), x + (s1 - s0) * v, rtol=0, atol=2e-6)
    torch.testing.assert_close(solver.x0_estimate.double(), x - s0 * v, rtol=0, atol=2e-6)


@pytest.mark.parametrize("solver,kind", [("dpm++", "official"), ("dpm++", "diffusers"), ("unipc", "official")])
def test_first_step_is_the_first_order_exponential_integrator(solver, kind):
    """x1 = (σ1/σ0)·x + α1(1 − e^{−h})·x0, h = λ1 − λ0 (σ0 = 1 for official DPM++: x1 = σ1·x + α1·x0)."""
    schedule = make_schedule(10, 3.0, kind=kind, solver=solver)
    s0, s1 = schedule.sigmas[0].item(), schedule.sigmas[1].item()
    x = initial_latent().double()
    v = fake_velocity(x, schedule.timesteps[0])
    x0 = x - s0 * v
    h = lam(s1) - lam(s0)
    expected = (s1 / s0) * x + (1 - s1) * (1 - math.exp(-h)) * x0
    out = make_solver(solver, schedule.sigmas).step(v.float(), x.float(), 0)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=2e-6)


def test_unipc_first_corrector_by_hand():
    """Step 1 first applies UniC of order 1: x1 ← (σ1/σ0)x0 − α1·B·m0 − α1·B·0.5·(m1 − m0), B = e^{−h} − 1."""
    schedule = make_schedule(10, 3.0)
    s0, s1, s2 = (schedule.sigmas[i].item() for i in range(3))
    x = initial_latent().double()
    solver = make_solver("unipc", schedule.sigmas)
    v0 = fake_velocity(x, schedule.timesteps[0])
    x1_pred = solver.step(v0.float(), x.float(), 0).double()
    v1 = fake_velocity(x1_pred, schedule.timesteps[1])
    m0, m1 = x - s0 * v0, x1_pred - s1 * v1
    b = math.expm1(-(lam(s1) - lam(s0)))
    x1 = (s1 / s0) * x - (1 - s1) * b * m0 - (1 - s1) * b * 0.5 * (m1 - m0)
    # then UniP of order 2 from σ1 to σ2 with ρ = 0.5 on D1 = (m0 − m1)/r, r = (λ0 − λ1)/h
    h = lam(s2) - lam(s1)
    b = math.expm1(-h)
    d1 = (m0 - m1) / ((lam(s0) - lam(s1)) / h)
    expected = (s2 / s1) * x1 - (1 - s2) * b * m1 - (1 - s2) * b * 0.5 * d1
    out = solver.step(v1.float(), x1_pred.float(), 1)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=3e-6)


def test_last_step_to_zero_returns_the_x0_estimate():
    for solver in SOLVERS:
        schedule = make_schedule(5, 5.0, solver=solver)
        states = run_ours(schedule, initial_latent())
        x_last_input = states[-2]
        v = fake_velocity(x_last_input, schedule.timesteps[-1])
        expected = x_last_input - schedule.sigmas[-2].item() * v
        torch.testing.assert_close(states[-1], expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Solver state, dtypes, x0 estimate.

@pytest.mark.parametrize("solver", SOLVERS)
def test_solver_reuse_restarts_at_step_zero_and_keeps_float32(solver):
    schedule = make_schedule(6, 3.0, solver=solver)
    instance = schedule.new_solver()
    finals = []
    for _ in range(2):   # two runs through one solver: step 0 clears the history
        x = initial_latent().to(torch.bfloat16)
        for i, t in enumerate(schedule.timesteps):
            x = instance.step(fake_velocity(x.float(), t).to(torch.bfloat16), x, i)
            assert x.dtype == torch.float32 and instance.x0_estimate.dtype == torch.float32
        finals.append(x)
    assert torch.equal(finals[0], finals[1])
    float32_run = run_ours(schedule, initial_latent())[-1]
    assert 0 < (finals[0] - float32_run).abs().max().item() < 0.1   # bf16 model output, same trajectory


def test_x0_estimate_is_the_data_prediction_of_the_step():
    schedule = make_schedule(8, 5.0)
    solver = schedule.new_solver()
    x = initial_latent()
    assert solver.x0_estimate is None
    for i, t in enumerate(schedule.timesteps[:3]):
        v = fake_velocity(x, t)
        expected = x - schedule.sigmas[i].item() * v
        x = solver.step(v, x, i)
        torch.testing.assert_close(solver.x0_estimate, expected, rtol=0, atol=0)


def test_two_stage_euler_equals_one_run():
    full = make_schedule(12, 5.0, solver="euler")
    first = make_schedule(12, 5.0, solver="euler", end_step=5)
    second = make_schedule(12, 5.0, solver="euler", start_step=5)
    assert torch.equal(torch.cat([first.sigmas[:-1], second.sigmas]), full.sigmas)
    assert torch.equal(torch.cat([first.timesteps, second.timesteps]), full.timesteps)
    x = initial_latent()
    y = run_ours(second, run_ours(first, x)[-1])[-1]
    assert torch.equal(y, run_ours(full, x)[-1])


# ------------------------------------------------------------------------------------------
# Denoise, custom sigmas, add_noise.

@pytest.mark.parametrize("steps,denoise,kept", [(10, 0.5, 5), (5, 0.5, 3), (7, 0.5, 4), (40, 0.3, 12), (10, 1.0, 10)])
def test_denoise_keeps_the_tail(steps, denoise, kept):
    full = make_schedule(steps, 3.0)
    part = make_schedule(steps, 3.0, denoise=denoise)
    assert part.num_steps == kept
    assert torch.equal(part.sigmas, full.sigmas[steps - kept:])
    assert torch.equal(part.timesteps, full.timesteps[steps - kept:])


def test_denoise_then_sub_range():
    part = make_schedule(20, 3.0, denoise=0.5, start_step=2, end_step=6)
    full = make_schedule(20, 3.0)
    assert torch.equal(part.sigmas, full.sigmas[12:17])


def test_add_noise_interpolates_to_sigma():
    x0, noise = initial_latent(3), initial_latent(4)
    sigma = make_schedule(10, 3.0, denoise=0.4).sigmas[0]
    noisy = add_noise(x0.half(), noise, sigma)
    assert noisy.dtype == torch.float32
    torch.testing.assert_close(noisy, (1 - sigma) * x0.half().float() + sigma * noise)
    assert torch.equal(add_noise(x0, noise, 0.0), x0) and torch.equal(add_noise(x0, noise, 1.0), noise)


def test_custom_sigmas_append_zero_and_truncate_timesteps():
    schedule = make_schedule(None, sigmas=[0.9, 0.61, 0.3005])
    assert schedule.sigmas.tolist() == pytest.approx([0.9, 0.61, 0.3005, 0.0])
    assert schedule.timesteps.tolist() == [900, 610, 300]
    same = make_schedule(3, sigmas=torch.tensor([0.9, 0.61, 0.3005, 0.0], dtype=torch.float64))
    assert torch.equal(same.sigmas, schedule.sigmas) and torch.equal(same.timesteps, schedule.timesteps)


# ------------------------------------------------------------------------------------------
# Errors.

@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=10, solver="ddim"), r"solver: expected one of 'unipc', 'dpm\+\+', 'euler', found 'ddim'"),
    (dict(steps=10, kind="comfy"), r"kind: expected one of 'official', 'diffusers', found 'comfy'"),
    (dict(steps=0), r"steps: expected an integer >= 1, found 0"),
    (dict(steps=2.5), r"steps: expected an integer >= 1"),
    (dict(steps=10, shift=0.0), r"shift: expected a finite number > 0, found 0.0"),
    (dict(steps=10, shift=-2), r"shift: expected a finite number > 0"),
    (dict(steps=10, denoise=0.0), r"denoise: expected a number in \(0, 1\], found 0.0"),
    (dict(steps=10, denoise=1.5), r"denoise: expected a number in \(0, 1\]"),
    (dict(steps=10, denoise=0.04), r"keeps no step"),
    (dict(steps=10, start_step=10), r"start_step: expected an integer in \[0, 9\]"),
    (dict(steps=10, start_step=-1), r"start_step"),
    (dict(steps=10, start_step=4, end_step=4), r"end_step: expected an integer in \[5, 10\]"),
    (dict(steps=10, end_step=11), r"end_step"),
    (dict(steps=None), r"steps: expected an integer >= 1, found None"),
    (dict(steps=None, sigmas=[0.5, 0.7, 0.0]), r"strictly decreasing, found sigmas\[0\]=0.5 followed by sigmas\[1\]=0.7"),
    (dict(steps=None, sigmas=[0.8, 0.8, 0.0]), r"strictly decreasing"),
    (dict(steps=None, sigmas=[1.2, 0.5]), r"sigmas: every value must lie in \[0, 1\]"),
    (dict(steps=None, sigmas=[0.5, float("nan")]), r"sigmas: every value must lie in \[0, 1\]"),
    (dict(steps=None, sigmas=[]), r"sigmas: expected a non-empty 1-D"),
    (dict(steps=None, sigmas=[[0.5, 0.0]]), r"sigmas: expected a non-empty 1-D"),
    (dict(steps=None, sigmas=[0.0]), r"need at least one value above 0"),
    (dict(steps=4, sigmas=[0.9, 0.5, 0.0]), r"steps: 4 does not match the 2 steps"),
])
def test_make_schedule_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(**kwargs)


def test_solver_errors():
    sigmas = make_schedule(4, 3.0).sigmas
    with pytest.raises(ValueError, match=r"solver: expected one of 'unipc', 'dpm\+\+', 'euler', found 'heun'"):
        make_solver("heun", sigmas)
    with pytest.raises(ValueError, match=r"strictly decreasing"):
        make_solver("unipc", sigmas.flip(0))
    with pytest.raises(ValueError, match=r"at least 2 values"):
        make_solver("euler", sigmas[:1])
    solver = make_solver("dpm++", sigmas)
    x = initial_latent()
    with pytest.raises(ValueError, match=r"dpm\+\+ solver: expected step 0 .* found step 2"):
        solver.step(x, x, 2)
    with pytest.raises(ValueError, match=r"velocity has shape \(1, 16, 3, 8, 4\) but the latent has shape"):
        solver.step(x[..., :4], x, 0)
    for i in range(4):
        x = solver.step(fake_velocity(x, 0), x, i)
    with pytest.raises(ValueError, match=r"found step 4"):
        solver.step(x, x, 4)


def test_core_scheduler_modules_do_not_import_diffusers():
    root = pathlib.Path(__file__).resolve().parents[2] / "wan21_core" / "sampling"
    for name in ("sigmas.py", "solvers.py"):
        tree = ast.parse((root / name).read_text())
        modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(m.split(".")[0] == "diffusers" for m in modules), (name, modules)

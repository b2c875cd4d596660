"""The guided sampling loop (wan21_core.sampling.sampler) on the tiny i2v DiT.

The reference is a plain loop written here after the official `wan/image2video.py` `WanI2V.generate`
and `wan/utils/fm_solvers_unipc.py` `FlowUniPCMultistepScheduler.set_timesteps`: integer timesteps of the
official shifted schedule, two separate batch-1 forwards `dit(x, t, context=[ctx], clip_fea, y)` per
step, the CFG mix, and the scheduler step of diffusers' flow-mode schedulers (the official
FlowUniPC / FlowDPM schedulers are copies of them) driven over those sigmas, or the Euler formula.
`sampler.sample` instead batches cond and uncond in one forward over a prepared context cache.
"""
import numpy as np
import pytest
import torch

from i2v_models import CallCounter, random_conditioning, rel_l2, tiny_dit
from wan21_core.models.configs import LATENT_MEAN, LATENT_STD
from wan21_core.sampling.preview import latent_to_rgb, preview_image
from wan21_core.sampling.sampler import SamplerHooks, SamplingOptions, make_noise, sample
from wan21_core.sampling.sigmas import make_schedule

diffusers_schedulers = pytest.importorskip("diffusers.schedulers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS, SHIFT, GUIDANCE = 5, 3.0, 5.0
LOOP_TOL = 1e-5          # relative L2, float32 (issue requirement)


# ------------------------------------------------------------------------------------ reference

def official_schedule(steps: int, shift: float, solver: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Official `FlowUniPCMultistepScheduler.set_timesteps` (`wan/utils/fm_solvers_unipc.py`; dpm++:
    `wan/utils/fm_solvers.py` `get_sampling_sigmas`): float32 sigmas [steps + 1] ending at 0 and int64
    timesteps int(σ·1000)."""
    if solver == "dpm++":
        base = np.linspace(1.0, 0.0, steps + 1)[:steps]                    # get_sampling_sigmas
    else:
        base = np.linspace(float(np.float32(0.999)), 0.0, steps + 1)[:-1]  # σ_max from the training table
    shifted = shift * base / (1 + (shift - 1) * base)
    timesteps = torch.from_numpy((shifted * 1000).astype(np.int64))
    return torch.from_numpy(np.append(shifted, 0.0).astype(np.float32)), timesteps


class EulerStep:
    def __init__(self, sigmas):
        self.sigmas = sigmas

    def __call__(self, v, i, x):
        return x + (self.sigmas[i + 1] - self.sigmas[i]).item() * v


class DiffusersStep:
    """A diffusers flow-mode multistep scheduler over the given sigmas and timesteps."""

    def __init__(self, solver: str, sigmas: torch.Tensor, timesteps: torch.Tensor):
        kind = (diffusers_schedulers.UniPCMultistepScheduler if solver == "unipc"
                else diffusers_schedulers.DPMSolverMultistepScheduler)
        self.scheduler = kind(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=1.0,
                              num_train_timesteps=1000)
        self.scheduler.set_timesteps(len(timesteps))
        self.scheduler.sigmas = sigmas.clone()
        self.scheduler.timesteps = timesteps.clone()
        self.scheduler.set_begin_index(0)
        self.timesteps = timesteps

    def __call__(self, v, i, x):
        return self.scheduler.step(v, self.timesteps[i], x).prev_sample


def reference_loop(dit, cond, noise, steps=STEPS, shift=SHIFT, guidance=GUIDANCE, solver="unipc") -> torch.Tensor:
    sigmas, timesteps = official_schedule(steps, shift, solver)
    step = EulerStep(sigmas) if solver == "euler" else DiffusersStep(solver, sigmas, timesteps)
    mean = torch.tensor(LATENT_MEAN).view(1, 16, 1, 1, 1)
    std = torch.tensor(LATENT_STD).view(1, 16, 1, 1, 1)
    y = torch.cat([cond.mask, (cond.latent_image - mean) / std], dim=1)      # [1, 20, T, h, w]
    x = noise.clone()
    for i, t in enumerate(timesteps):
        t = t.reshape(1)
        v = dit(x, t, context=[cond.context], clip_fea=cond.clip_fea, y=y)
        if guidance != 1.0:
            v_uncond = dit(x, t, context=[cond.context_null], clip_fea=cond.clip_fea, y=y)
            v = v_uncond + guidance * (v - v_uncond)
        x = step(v, i, x)
    return x


@pytest.fixture(scope="module")
def dit():
    return tiny_dit("i2v")


@pytest.fixture(scope="module")
def cond():
    return random_conditioning()


@pytest.fixture(scope="module")
def noise(cond):
    return make_noise((1, *cond.latent_shape), seed=11)


def options(**overrides) -> SamplingOptions:
    values = dict(steps=STEPS, guidance=GUIDANCE, shift=SHIFT)
    values.update(overrides)
    return SamplingOptions(**values)


# ------------------------------------------------------------------------------------ loop semantics

def test_official_schedule_of_the_reference_is_the_one_the_sampler_uses():
    for solver in ("unipc", "dpm++", "euler"):
        sigmas, timesteps = official_schedule(STEPS, SHIFT, solver)
        ours = make_schedule(STEPS, shift=SHIFT, solver=solver)
        assert torch.equal(ours.timesteps, timesteps) and torch.equal(ours.sigmas, sigmas)
    assert official_schedule(40, 5.0, "unipc")[1][:6].tolist() == [999, 994, 989, 983, 978, 972]  # spec §7.2


@pytest.mark.parametrize("solver, cfg_mode, guidance", [
    ("unipc", "batched", GUIDANCE), ("dpm++", "batched", GUIDANCE), ("euler", "batched", GUIDANCE),
    ("unipc", "split", GUIDANCE), ("dpm++", "split", GUIDANCE), ("unipc", "auto", 1.0)])
def test_sampler_matches_the_plain_official_loop(dit, cond, noise, solver, cfg_mode, guidance):
    expected = reference_loop(dit, cond, noise, guidance=guidance, solver=solver)
    with CallCounter(dit) as counter:
        result = sample(dit, cond, options(solver=solver, guidance=guidance, cfg_mode=cfg_mode), noise=noise)
    assert result.shape == (1, *cond.latent_shape) and result.dtype == torch.float32
    assert rel_l2(result, expected) <= LOOP_TOL
    batched = cfg_mode != "split" and guidance != 1.0
    per_step = 1 if batched or guidance == 1.0 else 2
    assert counter.calls == STEPS * per_step
    assert counter.batches == [2 if batched else 1] * counter.calls
    assert counter.timesteps[::per_step] == official_schedule(STEPS, SHIFT, solver)[1].tolist()
    assert not torch.equal(result, noise)


def test_guidance_changes_the_result(dit, cond, noise):
    a = sample(dit, cond, options(guidance=1.0), noise=noise)
    b = sample(dit, cond, options(guidance=GUIDANCE), noise=noise)
    assert rel_l2(a, b) > 1e-3


def test_t2v_dit_samples_without_image_and_rejects_image_conditioning(cond, noise):
    t2v = tiny_dit("t2v")
    text_only = cond.__class__(cond.context, cond.context_null, None, None, None, cond.latent_shape)
    out = sample(t2v, text_only, options(steps=2), noise=noise)
    assert out.shape == noise.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"text-to-video \(t2v\) DiT, but the conditioning carries an image"):
        sample(t2v, cond, options(steps=2), noise=noise)
    with pytest.raises(ValueError, match="the DiT is i2v and needs a start image"):
        sample(tiny_dit("i2v"), text_only, options(steps=2), noise=noise)


def test_first_last_frame_features_need_an_flf2v_dit(dit, noise):
    flf = random_conditioning(image_tokens=514)
    with pytest.raises(ValueError, match="i2v DiT takes 257 image tokens .* needs an flf2v checkpoint"):
        sample(dit, flf, options(steps=1), noise=noise)
    out = sample(tiny_dit("flf2v"), flf, options(steps=2), noise=noise)
    assert torch.isfinite(out).all()


def test_noise_of_the_wrong_shape_is_refused(dit, cond):
    with pytest.raises(ValueError, match=r"noise: expected shape \(1, 16, 3, 4, 6\) .*, found \(1, 16, 3, 4, 8\)"):
        sample(dit, cond, options(steps=1), noise=torch.zeros(1, 16, 3, 4, 8))


# ------------------------------------------------------------------------------------ determinism

def test_same_seed_is_bit_identical_and_another_seed_differs(dit, cond):
    first = sample(dit, cond, options(steps=3, seed=42))
    again = sample(dit, cond, options(steps=3, seed=42))
    other = sample(dit, cond, options(steps=3, seed=43))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    expected_noise = torch.randn(1, *cond.latent_shape, generator=torch.Generator().manual_seed(42))
    assert torch.equal(make_noise((1, *cond.latent_shape), 42), expected_noise)


# ------------------------------------------------------------------------------------ callbacks and hooks

def test_callback_sees_every_step_with_an_x0_preview(dit, cond, noise):
    seen = []
    result = sample(dit, cond, options(), noise=noise, callback=seen.append)
    assert [info.step for info in seen] == list(range(1, STEPS + 1))
    assert all(info.total == STEPS for info in seen)
    sigmas = [info.sigma for info in seen]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[0] < 1.0
    assert [info.timestep for info in seen] == official_schedule(STEPS, SHIFT, "unipc")[1].tolist()
    for info in seen:
        assert info.x0.shape == result.shape and torch.isfinite(info.x0).all()
    assert rel_l2(seen[-1].x0, result) <= 1e-6          # the last step lands on its x0 estimate (σ = 0)
    assert rel_l2(seen[0].x0, result) > 1e-3            # an early estimate is still rough
    rgb = latent_to_rgb(seen[0].x0)
    assert rgb.shape == (3, 4, 6, 3) and rgb.min() >= 0 and rgb.max() <= 1


def test_an_exception_from_the_callback_stops_sampling_at_once(dit, cond, noise):
    class Interrupted(Exception):
        pass

    def interrupt(info):
        if info.step == 2:
            raise Interrupted

    with CallCounter(dit) as counter, pytest.raises(Interrupted):
        sample(dit, cond, options(), noise=noise, callback=interrupt)
    assert counter.calls == 2                            # one batched forward per step, none after step 2


def test_identity_x0_hooks_give_exactly_the_hook_free_result(dit, cond, noise):
    plain = sample(dit, cond, options(), noise=noise)
    seen = []

    def identity(x0, info):
        seen.append((info.step, info.total))
        return x0

    hooked = sample(dit, cond, options(), noise=noise, hooks=SamplerHooks(x0_hooks=[identity, identity]))
    assert torch.equal(hooked, plain)
    assert seen[::2] == [(i, STEPS) for i in range(1, STEPS + 1)]   # 1-based step, before the solver step


def test_an_x0_hook_steers_the_sample(dit, cond, noise):
    target = torch.zeros(1, *cond.latent_shape)
    plain = sample(dit, cond, options(solver="euler"), noise=noise)
    pulled = sample(dit, cond, options(solver="euler"), noise=noise,
                    hooks=SamplerHooks(x0_hooks=[lambda x0, info: 0.5 * x0]))
    assert (pulled - target).norm() < (plain - target).norm()


def test_predict_wrapper_wraps_the_guided_model(dit, cond, noise):
    calls = []

    def wrapper(predict, x, timestep):
        calls.append(int(timestep))
        return predict(x, timestep)

    wrapped = sample(dit, cond, options(), noise=noise, hooks=SamplerHooks(predict_wrapper=wrapper))
    assert torch.equal(wrapped, sample(dit, cond, options(), noise=noise))
    assert calls == official_schedule(STEPS, SHIFT, "unipc")[1].tolist()


# ------------------------------------------------------------------------------------ partial schedules

def test_denoise_runs_the_last_steps_from_a_noised_init_latent(dit, cond, noise):
    init = torch.randn(1, *cond.latent_shape, generator=torch.Generator().manual_seed(3))
    full = make_schedule(6, shift=SHIFT)
    with CallCounter(dit) as counter:
        out = sample(dit, cond, options(steps=6, denoise=0.5), init_latent=init, noise=noise)
    assert counter.timesteps == full.timesteps[3:].tolist()          # round(6 * 0.5) = 3 steps
    assert torch.isfinite(out).all()
    with CallCounter(dit) as counter:
        sample(dit, cond, options(steps=6, denoise=0.75), init_latent=init, noise=noise)
    assert counter.calls == 5                                        # round(4.5) rounds half up
    closer = sample(dit, cond, options(steps=6, denoise=0.34), init_latent=init, noise=noise)
    assert (closer - init).norm() < (out - init).norm()              # less denoising stays nearer the input
    with pytest.raises(ValueError, match="init_latent: a latent to start from is required when denoise < 1"):
        sample(dit, cond, options(steps=6, denoise=0.5), noise=noise)
    with pytest.raises(ValueError, match=r"init_latent: expected shape \(1, 16, 3, 4, 6\)"):
        sample(dit, cond, options(steps=6, denoise=0.5), init_latent=init[:, :, :2], noise=noise)


@pytest.mark.parametrize("solver", ["euler", "unipc"])
def test_two_stage_split_runs_the_whole_schedule(dit, cond, noise, solver):
    whole = sample(dit, cond, options(steps=6, solver=solver), noise=noise)
    with CallCounter(dit) as counter:
        first = sample(dit, cond, options(steps=6, solver=solver, end_step=2), noise=noise)
        second = sample(dit, cond, options(steps=6, solver=solver, start_step=2), init_latent=first, noise=noise)
    assert counter.timesteps == make_schedule(6, shift=SHIFT, solver=solver).timesteps.tolist()
    if solver == "euler":        # memoryless: the split is exactly one run
        assert rel_l2(second, whole) <= 1e-6
    else:                        # each part is solved on its own (first order at its ends): close, not equal
        assert rel_l2(second, whole) <= 0.1
    with pytest.raises(ValueError, match="init_latent: a latent to start from is required"):
        sample(dit, cond, options(steps=6, start_step=2), noise=noise)


# ------------------------------------------------------------------------------------ options and previews

def test_bad_sampling_options_are_named():
    with pytest.raises(ValueError, match=r"cfg_mode: expected one of \('auto', 'batched', 'split'\), found 'x'"):
        SamplingOptions(cfg_mode="x")
    with pytest.raises(ValueError, match="guidance: expected a number >= 0, found -1"):
        SamplingOptions(guidance=-1)


def test_latent_previews():
    latent = torch.randn(1, 16, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    rgb = latent_to_rgb(latent)
    assert rgb.shape == (3, 5, 7, 3) and rgb.dtype == torch.float32
    assert rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0.05
    assert torch.equal(latent_to_rgb(latent[0]), rgb)
    image = preview_image(latent, frame=1, max_size=64)
    assert image.size == (7 * 9, 5 * 9) and image.mode == "RGB"
    with pytest.raises(ValueError, match=r"latent: expected \[16, T, h, w\], found \(4, 3, 5, 7\)"):
        latent_to_rgb(latent[0, :4])

"""The sampler's temporal-coherence options (wan21_core.sampling.coherence) on the tiny i2v DiT: every
option off is bit-identical to plain sampling, the options compose with the caller's hooks, the
statistics alignment sees the whole blended clip, a continued clip anchors to its given frames, and
bad options are refused by name before any model work."""
import pytest
import torch

from i2v_models import CallCounter, random_conditioning, tiny_dit
from wan21_core import ContextWindows, FrameAlignment, I2VPipeline
from wan21_core.sampling import SamplerHooks, SamplingOptions, make_noise, sample, sample_batch
from wan21_core.sampling.coherence import statistics_anchor


@pytest.fixture(scope="module")
def dit():
    return tiny_dit("i2v")


@pytest.fixture(scope="module")
def cond():
    return random_conditioning(latent_shape=(16, 5, 4, 6))


@pytest.fixture(scope="module")
def noise(cond):
    return make_noise((1, *cond.latent_shape), 9)


def options(**overrides):
    return SamplingOptions(**({"steps": 4} | overrides))


@pytest.mark.parametrize("solver", ["unipc", "euler"])
def test_every_option_off_is_bit_identical_to_plain_sampling(dit, cond, noise, solver):
    plain = sample(dit, cond, options(solver=solver), noise=noise)
    for alignment in (None, FrameAlignment(), FrameAlignment(stats_window=7, anchor_start=0.5, stats_start=0.0)):
        out = sample(dit, cond, options(solver=solver), noise=noise, alignment=alignment, windows=None)
        assert torch.equal(out, plain), alignment


def test_sample_batch_with_options_off_is_bit_identical(dit, cond):
    samples = torch.zeros(2, *cond.latent_shape)
    plain = sample_batch(dit, cond, options(steps=2), samples)
    assert torch.equal(sample_batch(dit, cond, options(steps=2), samples, alignment=FrameAlignment()), plain)
    aligned = sample_batch(dit, cond, options(steps=2), samples, alignment=FrameAlignment(anchor_strength=1.0))
    assert aligned.shape == plain.shape and not torch.equal(aligned, plain)


def test_options_compose_with_the_callers_hooks_and_see_the_whole_clip(dit, cond, noise):
    seen_x0, wrapped = [], []

    def after_ours(x0, info):
        seen_x0.append(tuple(x0.shape))
        return x0

    def outer(predict, x, timestep):
        wrapped.append(tuple(x.shape))
        return predict(x, timestep)

    hooks = SamplerHooks(x0_hooks=[after_ours], predict_wrapper=outer)
    with CallCounter(dit) as counter:
        out = sample(dit, cond, options(), noise=noise, hooks=hooks, windows=ContextWindows(length=3, overlap=1),
                     alignment=FrameAlignment(stats_strength=1.0, stats_start=0.0))
    full = (1, *cond.latent_shape)
    assert seen_x0 == [full] * 4 and wrapped == [full] * 4                # blended, whole-clip tensors
    assert counter.calls == 4 * 2                                          # two windows of 3 per step
    assert torch.isfinite(out).all()


def test_statistics_alignment_runs_across_windows_and_changes_the_clip(dit, cond, noise):
    windows = ContextWindows(length=3, overlap=1)
    windowed = sample(dit, cond, options(), noise=noise, windows=windows)
    aligned = sample(dit, cond, options(), noise=noise, windows=windows,
                     alignment=FrameAlignment(stats_strength=1.0, stats_start=0.5))
    assert not torch.equal(aligned, windowed) and torch.isfinite(aligned).all()


def test_a_continued_clip_takes_its_statistics_anchor_from_the_last_given_frame():
    continued = random_conditioning(latent_shape=(16, 4, 4, 6), start_frames=5)
    anchor, frame = statistics_anchor(continued)
    assert frame == 1 and anchor.shape == (32,)
    assert statistics_anchor(random_conditioning())[1] == 0
    text_only = random_conditioning()
    text_only = text_only.__class__(text_only.context, text_only.context_null, None, None, None, text_only.latent_shape)
    assert statistics_anchor(text_only) == (None, 0)


@pytest.mark.parametrize("make, message", [
    (lambda: FrameAlignment(anchor_strength=1.5),
     r"FrameAlignment: anchor_strength: expected a number in \[0, 1\], found 1.5"),
    (lambda: FrameAlignment(stats_start=0.8, stats_end=0.5),
     r"FrameAlignment: stats_start/stats_end: expected start < end .*, found 0.8 >= 0.5"),
    (lambda: FrameAlignment(stats_window=0), "FrameAlignment: stats_window: expected an integer >= 1, found 0"),
    (lambda: FrameAlignment(anchor_end="1"), r"FrameAlignment: anchor_end: expected a number in \[0, 1\], found '1'"),
    (lambda: ContextWindows(length=21, overlap=21), "ContextWindows: overlap: expected fewer latent frames than "
                                                    "length=21, found 21"),
    (lambda: ContextWindows(length=0), "ContextWindows: length: expected an integer >= 1, found 0"),
    (lambda: ContextWindows(closed_loop=1), "ContextWindows: closed_loop: expected True or False, found 1"),
    (lambda: ContextWindows.from_video_frames(80), r"ContextWindows.from_video_frames: frames: expected 4n\+1"),
])
def test_bad_options_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sample_refuses_bad_options_before_running_the_model(dit, cond, noise):
    text_only = cond.__class__(cond.context, cond.context_null, None, None, None, cond.latent_shape)
    with CallCounter(dit) as counter:
        with pytest.raises(ValueError, match="sample: alignment: expected a FrameAlignment or None, found dict"):
            sample(dit, cond, options(), noise=noise, alignment={"anchor_strength": 1})
        with pytest.raises(ValueError, match="sample_batch: windows: expected a ContextWindows or None, found int"):
            sample_batch(dit, cond, options(), torch.zeros(1, *cond.latent_shape), windows=21)
        with pytest.raises(ValueError, match="sample: alignment.anchor_strength: expected 0 for a conditioning whose "
                                             "first latent frame is not given .*, found 0.5"):
            sample(tiny_dit("t2v"), text_only, options(), noise=noise, alignment=FrameAlignment(anchor_strength=0.5))
    assert counter.calls == 0


def test_the_pipeline_refuses_bad_options_before_encoding(dit):
    pipe = I2VPipeline(dit, vae=None, text_encoder=None, image_encoder=None)
    with pytest.raises(ValueError, match="I2VPipeline: windows: expected a ContextWindows or None, found str"):
        pipe(torch.rand(1, 32, 48, 3), "a prompt", windows="long")

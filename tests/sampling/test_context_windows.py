"""Context windows (wan21_core.sampling.context_windows): placement, blend weights, the windowed model
call, and windowed sampling with the tiny i2v DiT (one window = plain sampling, exactly)."""
import pytest
import torch

from i2v_models import CallCounter, random_conditioning, tiny_dit
from wan21_core.sampling import ContextWindows, SamplingOptions, make_noise, sample
from wan21_core.sampling.context_windows import WindowedPrediction, blend_weights, window_frames

LAYOUTS = [(41, 21, 5, False), (41, 21, 5, True), (30, 21, 5, True), (9, 4, 2, False), (9, 4, 2, True),
           (22, 21, 0, False), (12, 5, 4, False), (7, 3, 1, True)]


def coverage(windows, weights, total):
    summed = torch.zeros(total, dtype=torch.float64)
    for frames, weight in zip(windows, weights):
        summed.index_add_(0, frames, weight.double())
    return summed


@pytest.mark.parametrize("total, length, overlap, closed_loop", LAYOUTS)
def test_weights_cover_every_frame_and_sum_to_one(total, length, overlap, closed_loop):
    windows = window_frames(total, length, overlap, closed_loop)
    weights = blend_weights(windows, total, closed_loop)
    assert all(frames.shape == (length,) and frames.unique().numel() == length for frames in windows)
    assert torch.allclose(coverage(windows, weights, total), torch.ones(total, dtype=torch.float64), atol=1e-6)
    assert all(((w > 0) & (w <= 1)).all() for w in weights)
    for before, after in zip(windows, windows[1:] + (windows[:1] if closed_loop else [])):
        assert torch.isin(after, before).sum() >= overlap          # neighbours share at least `overlap` frames


def test_open_windows_start_and_end_at_the_clip_ends_and_ramp_smoothly():
    assert [int(w[0]) for w in window_frames(41, 21, 5)] == [0, 10, 20]   # evenly spread, ending at frame 40
    windows = window_frames(37, 21, 5)
    weights = blend_weights(windows, 37)
    assert [int(w[0]) for w in windows] == [0, 16] and int(windows[-1][-1]) == 36
    assert (weights[0][:16] == 1).all() and (weights[1][5:] == 1).all()   # one window: full weight
    first, second = weights[0][16:], weights[1][:5]                    # frames 16..20 shared
    assert (first.diff() < 0).all() and (second.diff() > 0).all()
    assert torch.allclose(first + second, torch.ones(5), atol=1e-6)


def test_closed_loop_windows_wrap_from_the_end_to_the_start():
    windows = window_frames(30, 21, 5, closed_loop=True)
    weights = blend_weights(windows, 30, closed_loop=True)
    last = windows[-1]
    assert 29 in last and 0 in last and last.tolist() == list(range(15, 30)) + list(range(6))
    assert weights[0][0] < 1                                          # frame 0 is blended with the wrapped window
    open_weights = blend_weights(window_frames(30, 21, 5), 30)
    assert open_weights[0][0] == 1


def test_a_clip_that_fits_is_one_window_of_weight_one():
    for closed_loop in (False, True):
        windows = window_frames(5, 21, 5, closed_loop)
        assert len(windows) == 1 and torch.equal(windows[0], torch.arange(5))
        assert torch.equal(blend_weights(windows, 5, closed_loop)[0], torch.ones(5))


def test_windowed_prediction_runs_one_window_at_a_time_and_blends_exactly():
    x = torch.randn(1, 16, 9, 2, 2, generator=torch.Generator().manual_seed(0))
    seen = []

    def predict(window, timestep, frames):
        seen.append(frames.tolist())
        assert torch.equal(window, x[:, :, frames])
        return 3 * window + frames.view(1, 1, -1, 1, 1)                 # depends on the frame's position in the clip

    windowed = WindowedPrediction(9, 4, 2)
    out = windowed(predict, x, torch.tensor(500))
    assert seen == [w.tolist() for w in windowed.windows] and max(len(s) for s in seen) == 4
    expected = 3 * x + torch.arange(9.0).view(1, 1, -1, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)


# ------------------------------------------------------------------------------------ with the DiT

@pytest.fixture(scope="module")
def dit():
    return tiny_dit("i2v")


@pytest.fixture(scope="module")
def long_cond():
    return random_conditioning(latent_shape=(16, 7, 4, 6))


def options(**overrides):
    return SamplingOptions(**({"steps": 3} | overrides))


@pytest.mark.parametrize("solver, cfg_mode", [("unipc", "auto"), ("euler", "split")])
def test_one_window_covering_the_clip_is_plain_sampling_exactly(dit, long_cond, solver, cfg_mode):
    noise = make_noise((1, *long_cond.latent_shape), 5)
    plain = sample(dit, long_cond, options(solver=solver, cfg_mode=cfg_mode), noise=noise)
    for windows in (ContextWindows(length=7, overlap=2), ContextWindows(length=21), ContextWindows(7, 3, True)):
        windowed = sample(dit, long_cond, options(solver=solver, cfg_mode=cfg_mode), noise=noise, windows=windows)
        assert torch.equal(windowed, plain), windows


def test_windows_run_the_dit_on_window_slices_conditioned_without_jumping_back(dit, long_cond):
    calls = []

    def record(module, args, kwargs):
        x, y = args[0], kwargs["y"]
        calls.append((x.shape[2], y[0, :4].amax(dim=(0, 2, 3)).tolist()))   # frames, mask per frame

    handle = dit.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with CallCounter(dit) as counter:
            out = sample(dit, long_cond, options(), windows=ContextWindows(length=3, overlap=1))
    finally:
        handle.remove()
    assert counter.calls == 3 * 3 and torch.isfinite(out).all()          # 3 windows per step, one forward each
    assert {frames for frames, _ in calls} == {3}                          # activations of one window only
    masks = [mask for _, mask in calls[:3]]
    assert masks[0] == [1.0, 0.0, 0.0]                                     # the first window holds the start image
    assert masks[1] == masks[2] == [0.0, 0.0, 0.0]                         # later windows: no frame forced to it
    assert not torch.equal(out, sample(dit, long_cond, options()))

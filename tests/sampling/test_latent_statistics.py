"""Latent statistics alignment (wan21_core.sampling.latent_statistics) on constructed latents: it removes
fast changes of the per-frame channel statistics (flicker, jitter, a climb over the last frames), keeps a
slow ramp (it never matches the frames to frame 0) and starts the reference at the anchor."""
import torch

from wan21_core.sampling import StepInfo
from wan21_core.sampling.latent_statistics import LatentStatisticsAlignment, anchored_lowpass, frame_statistics
from wan21_core.sampling.step_range import StepRange

FRAMES, CHANNELS = 16, 16


def clip_with_statistics(means: torch.Tensor, log_stds: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A latent [1, C, T, 8, 8] whose frame t, channel c has exactly mean means[t, c] and std exp(log_stds[t, c])."""
    base = torch.randn(1, CHANNELS, means.shape[0], 8, 8, generator=torch.Generator().manual_seed(seed))
    flat = base.flatten(3)
    base = ((flat - flat.mean(-1, keepdim=True)) / flat.std(-1, unbiased=False, keepdim=True)).view_as(base)
    return base * log_stds.t().exp()[None, :, :, None, None] + means.t()[None, :, :, None, None]


def ramp_slopes() -> torch.Tensor:
    return torch.linspace(-0.04, 0.06, CHANNELS)


def slow_ramp() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(FRAMES, dtype=torch.float32)[:, None]
    slope = ramp_slopes()[None, :]
    return 0.3 + slope * t, -0.2 + 0.5 * slope * t                         # means, log-stds [T, C]


def align(latent, strength=1.0, window=3, anchor=None, anchor_frame=0):
    hook = LatentStatisticsAlignment(strength, window, StepRange(), anchor, anchor_frame)
    return hook(latent, StepInfo(1, 1, 0.5, 500, latent))


def test_frame_statistics_are_the_per_frame_channel_means_and_log_stds():
    means, log_stds = slow_ramp()
    stats = frame_statistics(clip_with_statistics(means, log_stds))
    assert stats.shape == (FRAMES, 2 * CHANNELS)
    assert torch.allclose(stats[:, :CHANNELS], means, atol=1e-5)
    assert torch.allclose(stats[:, CHANNELS:], log_stds, atol=1e-5)


def test_a_slow_ramp_is_kept_not_matched_to_frame_zero():
    means, log_stds = slow_ramp()
    latent = clip_with_statistics(means, log_stds)
    window = 3
    out = align(latent, window=window)
    before, after = frame_statistics(latent), frame_statistics(out)
    inner = FRAMES - window                                                # frames with a two-sided window
    assert torch.allclose(after[:inner], before[:inner], atol=1e-4)
    assert torch.allclose(out[:, :, :inner], latent[:, :, :inner], atol=1e-4)
    lag = (after[inner:] - before[inner:]).abs().max()                     # the one-sided end lags a little
    assert lag < 0.06 * window / 3 * 1.2
    drift = (after[-1] - after[0]).abs()
    assert drift[:CHANNELS].max() > 0.5                                    # the last frame is far from frame 0


def drifting_clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A slow ramp plus what drift and flicker add: frame-to-frame jitter and a climb over the last frames."""
    means, log_stds = slow_ramp()
    t = torch.arange(FRAMES, dtype=torch.float32)[:, None]
    g = torch.Generator().manual_seed(1)
    jitter = 0.25 * torch.sign(torch.randn(FRAMES, CHANNELS, generator=g)) * (t > 0)
    climb = 0.8 * torch.sign(ramp_slopes())[None, :] * (t >= FRAMES - 2)   # runs away the way it drifts
    return clip_with_statistics(means + jitter + climb, log_stds + 0.5 * jitter), means, log_stds


def test_drift_and_flicker_are_lowered_and_the_ramp_stays():
    latent, ramp_means, _ = drifting_clip()
    before, after = frame_statistics(latent), frame_statistics(align(latent))
    first_to_last = lambda s: (s[-1] - s[0]).abs().mean().item()          # per-channel drift, means and log-stds
    flicker = lambda s: (s[1:] - s[:-1]).abs().mean().item()
    beyond_ramp = lambda s: (s[-1, :CHANNELS] - ramp_means[-1]).abs().mean().item()   # the climb at the end
    assert first_to_last(after) < 0.9 * first_to_last(before)
    assert beyond_ramp(after) < 0.8 * beyond_ramp(before)
    assert flicker(after) < 0.5 * flicker(before)
    ramp_error = lambda s: (s[:, :CHANNELS] - ramp_means).abs().mean().item()
    assert ramp_error(after) < 0.5 * ramp_error(before)                   # closer to the slow component ...
    body = FRAMES - 3                                                      # before the climb
    slope = lambda s: torch.linalg.lstsq(torch.stack([torch.ones(body), torch.arange(float(body))], 1),
                                         s[:body, :CHANNELS]).solution[1]
    assert (slope(after) - ramp_slopes()).abs().mean() < 0.02                # ... whose trend is kept
    half = align(latent, strength=0.5)
    assert flicker(after) < flicker(frame_statistics(half)) < flicker(before)


def test_the_reference_starts_at_the_anchor_and_earlier_frames_are_left_alone():
    means, log_stds = slow_ramp()
    latent = clip_with_statistics(means, log_stds)
    anchor = frame_statistics(latent)[2] + 0.3                           # e.g. the previous clip's last frame
    out = align(latent, anchor=anchor, anchor_frame=2)
    stats = frame_statistics(out)
    assert torch.allclose(out[:, :, :2], latent[:, :, :2], atol=1e-5)
    assert torch.allclose(stats[2], anchor, atol=1e-4)
    assert (stats[3] - frame_statistics(latent)[3]).abs().mean() > 0.1   # its neighbours follow the anchor


def test_the_anchored_lowpass_pulls_a_jump_after_the_start_back_near_the_start():
    stats = torch.zeros(FRAMES, 2)
    stats[1:] = 1.0                                                       # everything after frame 0 jumps
    reference = anchored_lowpass(stats, torch.zeros(2), 0, window=4)
    assert reference[0].abs().max() < 1e-6
    assert reference[1, 0] < 0.6 and (reference[:, 0].diff() >= -1e-6).all() and reference[-1, 0] > 0.95


def test_outside_its_steps_the_hook_returns_x0_unchanged():
    latent, _, _ = drifting_clip()
    hook = LatentStatisticsAlignment(1.0, 3, StepRange(0.5, 1.0))
    assert hook(latent, StepInfo(1, 4, 0.9, 900, latent)) is latent
    assert not torch.equal(hook(latent, StepInfo(3, 4, 0.3, 300, latent)), latent)
    single = latent[:, :, :1]
    assert hook(single, StepInfo(3, 4, 0.3, 300, single)) is single       # one frame: nothing to steady

"""Latent statistics alignment: steady each latent frame's per-channel mean and spread over time.

An x0 hook of the sampler (meant for the late steps). Per latent frame and channel it measures the
mean and the log standard deviation of the x0 estimate over the frame's pixels, computes a
reference that keeps only their slow component, and moves each frame's statistics towards it:

    x0_t <- (x0_t − mean_t) · exp(s · (ref_logstd_t − logstd_t)) + mean_t + s · (ref_mean_t − mean_t)

The reference is a temporal low-pass anchored to the start: the deviation of the statistics from the
anchor (the last given latent frame of the conditioning: the start image, or the last frame of a
previous clip being continued; without an image, x0's frame 0) is extended before the anchor by its
odd reflection and averaged with Gaussian weights over ±window latent frames (σ = window / 2, the
weights of `alignment.temporal`). No robust re-weighting: on clean statistics it would single out
the frames at the clip's end, whose one-sided average lags a ramp, and break the symmetry that
pins the reference to the anchor. The odd reflection
makes the reference pass through the anchor and leaves a straight ramp from it untouched; flicker,
jitter and a jump away from the start image are pulled in; a slow, legitimate change of light
stays: the frames are never matched to frame 0. At the clip's end the window is one-sided and the
plain average does not extrapolate: a fast climb over the last frames (drift that runs away) is
pulled back, and a slow ramp's last frames lag it by about slope × window / 3. (A local-linear
fit, as `align_frames` uses on images, would follow such a climb.) Frames before the anchor (the
other given frames) are left alone.
"""
from __future__ import annotations

import torch

from ..alignment.temporal import gaussian_weights
from .step_range import StepRange

MIN_STD = 1e-6


def frame_statistics(latent: torch.Tensor) -> torch.Tensor:
    """Per-frame means and log-stds of every channel.  [1, C, T, h, w] -> [T, 2C] float32 (means first)"""
    flat = latent[0].float().flatten(2)                                  # [C, T, h·w]
    mean = flat.mean(dim=2)
    log_std = flat.std(dim=2, unbiased=False).clamp_min(MIN_STD).log()
    return torch.cat([mean, log_std]).t().contiguous()                   # [T, 2C]


def gaussian_kernel(frames: int, window: int, device: torch.device) -> torch.Tensor:
    """Row-stochastic kernel K [N, N] of a Gaussian average over ±window frames (one-sided at the ends)."""
    weights = gaussian_weights(frames, window, torch.zeros(frames, dtype=torch.int64, device=device))
    return weights / weights.sum(1, keepdim=True)


def anchored_lowpass(statistics: torch.Tensor, anchor: torch.Tensor, anchor_frame: int, window: int) -> torch.Tensor:
    """Slow component of per-frame statistics through the anchor.  [T, D], [D] -> [T, D]

    Frames before `anchor_frame` keep their own statistics.
    """
    deviation = statistics[anchor_frame:] - anchor                      # [N, D]
    deviation[0] = 0                                                     # the curve starts at the anchor
    reach = min(window, deviation.shape[0] - 1)
    mirrored = -deviation[1:reach + 1].flip(0)                           # [reach, D]: odd reflection
    extended = torch.cat([mirrored, deviation])                          # [reach + N, D]
    kernel = gaussian_kernel(extended.shape[0], window, extended.device)   # [reach + N, reach + N]
    reference = statistics.clone()
    reference[anchor_frame:] = anchor + (kernel @ extended)[reach:]
    return reference


def broadcastable(statistics: torch.Tensor, channels: int) -> torch.Tensor:
    """[T, 2C] -> [2, C, T, 1, 1]: means and log-stds shaped like a clip's [C, T, h, w]."""
    return statistics.t().reshape(2, channels, -1)[..., None, None]


def move_statistics(latent: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Give each frame and channel the target mean and log-std.  [1, C, T, h, w], [T, 2C] ×2 -> like latent"""
    channels = latent.shape[1]
    (mean, log_std), (new_mean, new_log_std) = broadcastable(source, channels), broadcastable(target, channels)
    moved = (latent[0].float() - mean) * torch.exp(new_log_std - log_std) + new_mean
    return moved[None].to(latent.dtype)


class LatentStatisticsAlignment:
    """x0 hook: pulls each latent frame's channel statistics towards their anchored slow component.

    anchor: [2C] statistics of the anchor frame (`frame_statistics` of the conditioning latent's
    last given frame), or None to take x0's frame 0; anchor_frame: its latent frame index.
    """

    def __init__(self, strength: float, window: int, steps: StepRange, anchor: torch.Tensor | None = None,
                 anchor_frame: int = 0):
        self.strength = strength
        self.window = window
        self.steps = steps
        self.anchor = anchor
        self.anchor_frame = anchor_frame

    def __call__(self, x0: torch.Tensor, info) -> torch.Tensor:
        if x0.shape[2] < 2 or not self.steps.contains(info.step, info.total):
            return x0
        return torch.cat([self.align(x0[b:b + 1]) for b in range(x0.shape[0])])

    def align(self, x0: torch.Tensor) -> torch.Tensor:
        """One clip [1, C, T, h, w]."""
        statistics = frame_statistics(x0)                                 # [T, 2C]
        anchor = statistics[0] if self.anchor is None else self.anchor.to(statistics.device)
        reference = anchored_lowpass(statistics, anchor, self.anchor_frame, self.window)
        target = torch.lerp(statistics, reference, self.strength)
        return move_statistics(x0, statistics, target)

"""Luminance deflicker over a temporal window, like ffmpeg's `deflicker` filter in mode `am`.

Each frame gets one gain, so that its mean BT.601 luma equals the arithmetic mean of the mean
lumas of the frames within ±half_width of it (the window is centred and, at the clip's ends and at
shot cuts, shortened to the frames that exist; ffmpeg's window looks `size` frames ahead instead).
The gain multiplies R, G and B alike, which scales the luma exactly and keeps the hue.
"""
from __future__ import annotations

import torch

from .shots import luma
from .temporal import frame_offsets

MIN_LUMA = 1e-3       # near-black frames are left alone rather than amplified


def box_weights(frames: int, half_width: int, shots: torch.Tensor) -> torch.Tensor:
    """Equal weights over ±half_width frames of the same shot, rows summing to 1.  [F, F]"""
    d = frame_offsets(frames, shots.device)
    w = (d.abs() <= half_width).float() * (shots[:, None] == shots[None, :])
    return w / w.sum(dim=1, keepdim=True)


def mean_luma(frames: torch.Tensor) -> torch.Tensor:
    """Mean BT.601 luma of each frame.  [F, H, W, 3] -> [F]"""
    return luma(frames).flatten(1).mean(dim=1)


def deflicker_gains(frames: torch.Tensor, half_width: int, shots: torch.Tensor) -> torch.Tensor:
    """Per-frame gains that set each mean luma to its window's average.  [F, H, W, 3], [F] -> [F]"""
    means = mean_luma(frames)
    targets = box_weights(frames.shape[0], half_width, shots) @ means
    gains = targets / means.clamp_min(MIN_LUMA)
    return torch.where(means > MIN_LUMA, gains, torch.ones_like(gains))

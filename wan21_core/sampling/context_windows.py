"""Context windows: sampling clips longer than the DiT was trained on (81 frames = 21 latent frames).

At every step the guided model runs on overlapping windows of the latent time axis, one window at a
time (so activations are those of one window), and the window velocities are blended into one
velocity of the whole clip. Every frame gets weights that sum to 1: 1 where one window covers it,
complementary raised-cosine ramps where two overlap (more windows: the ramps normalised).

Placement: windows of `length` latent frames, spread evenly from the first frame to the last, as
few as keep at least `overlap` frames shared by neighbours. With `closed_loop` they are spread over
the circle instead: the last window runs past the end into the first frames, so the end blends
into the start (a looping clip). One window covering the clip is plain sampling, exactly.

Conditioning of a window: the DiT sees the window's own slice of the conditioning channels `y`
(mask and latent of the conditioning clip at the window's frames) and the start image's features
(cross-attention, shared by every window). A window that does not contain frame 0 therefore
carries no "given" frame (mask 0, the conditioning clip's grey-frame latents), so it follows the
start image's content through the image features without being pulled back to the start image
itself; a window that contains frame 0 (or, with several start frames, the given frames) keeps
them given. (ComfyUI's context windows slice the concat latent the same way; WanVideoWrapper
instead writes the start image into every window's first frame, which restarts each window at the
start image.) The RoPE positions of every window start at 0, the range the DiT was trained on.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def window_frames(total: int, length: int, overlap: int, closed_loop: bool = False) -> list[torch.Tensor]:
    """Latent frame indices of each window: a list of int64 [length] tensors (one [total] when it fits)."""
    if length >= total:
        return [torch.arange(total)]
    stride = length - overlap
    if closed_loop:
        count = math.ceil(total / stride)
        starts = [round(k * total / count) for k in range(count)]
        return [(start + torch.arange(length)) % total for start in starts]
    count = math.ceil((total - length) / stride) + 1
    starts = [round(k * (total - length) / (count - 1)) for k in range(count)]
    return [start + torch.arange(length) for start in starts]


def raised_cosine_rise(length: int, ramp: int) -> torch.Tensor:
    """[length] weights rising as 0.5 − 0.5·cos(π (j+1)/(ramp+1)) over the first `ramp` positions, then 1.

    The rise of one window and the fall (the flipped rise) of its neighbour over the same shared frames
    add up to exactly 1, and no weight is 0, so every covered frame keeps a share.
    """
    position = torch.arange(length, dtype=torch.float64)
    rise = 0.5 - 0.5 * torch.cos(math.pi * (position + 1) / (ramp + 1))
    return torch.where(position < ramp, rise, torch.ones_like(rise))


def shared_run(frames: torch.Tensor, neighbour: torch.Tensor | None) -> int:
    """How many leading frames of a window the neighbouring window also covers (0 without a neighbour).

    Only the leading run counts: in a closed loop of two windows each shares both its ends with the other.
    """
    if neighbour is None:
        return 0
    shared = torch.isin(frames, neighbour).to(torch.int64)
    return int(shared.cumprod(0).sum())


def blend_weights(windows: list[torch.Tensor], total: int, closed_loop: bool = False) -> list[torch.Tensor]:
    """float32 [length] weights of each window; at every covered frame the weights of all windows sum to 1."""
    count = len(windows)
    raw = []
    for k, frames in enumerate(windows):
        before = windows[k - 1] if (k > 0 or closed_loop) and count > 1 else None
        after = windows[(k + 1) % count] if (k + 1 < count or closed_loop) and count > 1 else None
        length = frames.shape[0]
        rise = raised_cosine_rise(length, shared_run(frames, before))
        fall = raised_cosine_rise(length, shared_run(frames.flip(0), after)).flip(0)
        raw.append(rise * fall)
    coverage = torch.zeros(total, dtype=torch.float64)
    for frames, weight in zip(windows, raw):
        coverage.index_add_(0, frames, weight)
    return [(weight / coverage[frames]).float() for frames, weight in zip(windows, raw)]


class WindowedPrediction:
    """A `predict_wrapper` of the sampler: the guided model window by window, blended.

    `predict(x, timestep, frames=indices)` must evaluate x (the window's latent) with the
    conditioning at those latent frames (the sampler's `GuidedModel` does).
    """

    def __init__(self, total: int, length: int, overlap: int, closed_loop: bool = False):
        self.windows = window_frames(total, length, overlap, closed_loop)
        self.weights = blend_weights(self.windows, total, closed_loop)

    def __call__(self, predict: Callable, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Blended velocity [1, 16, T, h, w] (float32)."""
        velocity = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for frames, weight in zip(self.windows, self.weights):
            frames = frames.to(x.device)
            window_velocity = predict(x.index_select(2, frames), timestep, frames=frames)   # [1, 16, L, h, w]
            velocity.index_add_(2, frames, window_velocity * weight.to(x.device).view(1, 1, -1, 1, 1))
        return velocity

"""Gain jitter measured on matching pixels: the fast part of each frame's global R, G, B gains.

Frame statistics (means, spreads, histograms) change when the picture changes: a car drives in,
the camera pans. Comparing statistics with their temporal average mistakes such content change for
flicker. Flicker and colour jitter, however, scale every pixel of a frame alike, so they show in the
pixels that did not change: for two nearby frames t and s the median over co-located pixels of
log I_t − log I_s (per channel, on small area-pooled thumbnails, ignoring near-black and clipped
pixels) is their gain ratio, and moving content, a minority of the pixels, does not move the
median. The jitter of frame t is its log gain relative to the kernel-weighted neighbourhood,
j_t = Σ_s K[t, s] · (log g_t − log g_s), with the robust temporal kernel K of `temporal` (rows
sum to 1, zero across shot cuts), so slow changes — anything the kernel follows — are kept.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .temporal import frame_offsets

THUMB_SIZE = 48              # pairs are compared on at most 48×48 area-pooled thumbnails
DARKEST, BRIGHTEST = 0.03, 0.97   # pixels outside are too noisy in log (dark) or clipped (bright)
MIN_VALID = 0.05             # a pair with fewer usable pixels than this fraction is not measured (0)


def log_thumbnails(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel log thumbnails and their usable-pixel mask.  [F, h, w, 3] -> ([F, 3, P], [F, 3, P])"""
    size = (min(THUMB_SIZE, grid.shape[1]), min(THUMB_SIZE, grid.shape[2]))
    thumbs = F.adaptive_avg_pool2d(grid.movedim(-1, 1), size).flatten(2)        # [F, 3, P]
    usable = (thumbs > DARKEST) & (thumbs < BRIGHTEST)
    return thumbs.clamp_min(DARKEST).log(), usable


def pair_log_ratios(logs: torch.Tensor, usable: torch.Tensor, lag: int) -> torch.Tensor:
    """Median log gain ratio of every frame t to frame t − lag, per channel.  -> [F − lag, 3]"""
    both = usable[lag:] & usable[:-lag]
    difference = torch.where(both, logs[lag:] - logs[:-lag], torch.nan)
    ratio = difference.nanmedian(dim=-1).values.nan_to_num(0.0)
    return torch.where(both.float().mean(dim=-1) >= MIN_VALID, ratio, torch.zeros_like(ratio))


def relative_log_gains(grid: torch.Tensor, max_lag: int) -> torch.Tensor:
    """R[t, s] = log g_t − log g_s for |t − s| <= max_lag (0 elsewhere).  [F, h, w, 3] -> [F, F, 3]"""
    frames = grid.shape[0]
    logs, usable = log_thumbnails(grid)
    ratios = torch.zeros(frames, frames, 3, device=grid.device)
    for lag in range(1, min(max_lag, frames - 1) + 1):
        later = torch.arange(lag, frames, device=grid.device)
        measured = pair_log_ratios(logs, usable, lag)
        ratios[later, later - lag] = measured
        ratios[later - lag, later] = -measured
    return ratios


def gain_jitter(grid: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Log gain of each frame relative to its kernel neighbourhood.  [F, h, w, 3], [F, F] -> [F, 3]"""
    offsets = frame_offsets(kernel.shape[0], kernel.device).abs()
    reach = int(offsets[kernel != 0].max())              # the farthest neighbour any frame uses
    ratios = relative_log_gains(grid, reach)
    return (kernel[:, :, None] * ratios).sum(dim=1)

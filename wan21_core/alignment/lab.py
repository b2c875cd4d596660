"""Method "lab": per-channel mean / standard-deviation transfer in CIELAB (Reinhard-style).

Statistics of a frame: the mean and std of L*, a*, b* over its pixels, [F, 6]. The transfer maps
each channel affinely, (v − μ_src) · σ_tgt / σ_src + μ_tgt, and converts back to sRGB.
"""
from __future__ import annotations

import torch

from .colorspace import lab_to_rgb, rgb_to_lab

MIN_STD = 0.5        # Lab units: a flat channel is not stretched into invented contrast


def statistics(pixels: torch.Tensor) -> torch.Tensor:
    """Mean and std of L*, a*, b*.  [F, N, 3] -> [F, 6]"""
    lab = rgb_to_lab(pixels)
    return torch.cat([lab.mean(dim=1), lab.std(dim=1, correction=0)], dim=1)


def transfer(frames: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Move each frame's Lab mean/std from `source` to `target`.  [f, H, W, 3], [f, 6], [f, 6] -> [f, H, W, 3]"""
    mean_src, std_src = source[:, None, None, :3], source[:, None, None, 3:]
    mean_tgt, std_tgt = target[:, None, None, :3], target[:, None, None, 3:]
    scale = std_tgt.clamp_min(MIN_STD) / std_src.clamp_min(MIN_STD)
    lab = rgb_to_lab(frames)
    return lab_to_rgb((lab - mean_src) * scale + mean_tgt)

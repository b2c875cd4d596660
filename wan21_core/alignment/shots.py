"""Shot cuts: where consecutive frames stop showing the same picture.

Statistics must not be averaged across a cut (the two shots have unrelated colours). A cut is
detected on gain-invariant thumbnails: the luma of each frame is area-pooled to at most 16×16 and
standardised (zero mean, unit norm), so brightness flicker and tint, which scale or shift the
whole frame, leave the thumbnail unchanged, while a new picture decorrelates it. Motion blurs the
thumbnails far less than a cut does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

THUMB_SIZE = 16
CUT_CORRELATION = 0.4        # below: a cut (bikes.mp4: its 5 cuts <= 0.29, its fastest motion >= 0.55)
MIN_CONTRAST = 0.01          # thumbnails with a smaller luma std (0..1 units) count as flat
LUMA_WEIGHTS = (0.299, 0.587, 0.114)   # BT.601


def luma(frames: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [..., 3] RGB in the same units.  [..., 3] -> [...]"""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=frames.dtype, device=frames.device)
    return frames @ weights


def thumbnails(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised luma thumbnails (unit vectors) and their contrast (luma std).
    [F, H, W, 3] -> ([F, D], [F])"""
    y = luma(frames)[:, None]                                    # [F, 1, H, W]
    size = (min(THUMB_SIZE, y.shape[-2]), min(THUMB_SIZE, y.shape[-1]))
    flat = F.adaptive_avg_pool2d(y, size).flatten(1)             # [F, D]
    flat = flat - flat.mean(dim=1, keepdim=True)
    contrast = flat.pow(2).mean(dim=1).sqrt()
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12), contrast


def consecutive_correlation(frames: torch.Tensor) -> torch.Tensor:
    """Correlation of each frame's thumbnail with the next one's.  [F, H, W, 3] -> [F − 1]"""
    thumbs, _ = thumbnails(frames)
    return (thumbs[1:] * thumbs[:-1]).sum(dim=1)


def shot_ids(frames: torch.Tensor) -> torch.Tensor:
    """Shot index of every frame, 0 for the first shot, +1 after each cut.  [F, H, W, 3] -> [F] int64

    A nearly flat thumbnail (a black or uniform frame, contrast below MIN_CONTRAST) has no structure
    to compare, so it never makes a cut.
    """
    if frames.shape[0] < 2:
        return torch.zeros(frames.shape[0], dtype=torch.long, device=frames.device)
    thumbs, contrast = thumbnails(frames)
    correlation = (thumbs[1:] * thumbs[:-1]).sum(dim=1)
    textured = contrast > MIN_CONTRAST
    cut = (correlation < CUT_CORRELATION) & textured[1:] & textured[:-1]
    return torch.cat([cut.new_zeros(1), cut]).long().cumsum(0)

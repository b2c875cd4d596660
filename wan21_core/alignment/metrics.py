"""Temporal-consistency metrics of a clip [F, H, W, 3] in 0..1 (QUALITY_NOTES §2.2).

- `flicker_index`: mean over t of |mean luma(t+1) − mean luma(t)|, BT.601 luma in 8-bit units.
- `color_drift`: CIEDE2000 between the mean L*a*b* of each frame and of an anchor (frame 0 by
  default); one value per frame.
- `warp_error`: the warping error of Lai et al. 2018, mean over t of the occlusion-masked MSE
  (0..1 RGB, mean over channels) between frame t and frame t+1 warped back to it with DIS optical
  flow. The flow and the occlusion mask come from `reference` when given, so that several
  processed versions of one clip are judged on the same motion. Tables usually print it ×1e-3.
"""
from __future__ import annotations

import numpy as np
import torch

from .colorspace import rgb_to_lab
from .delta_e import ciede2000
from .deflicker import mean_luma
from .flow import pair_flows, to_gray_uint8, warp
from .validate import check_image

CHUNK_PIXELS = 1 << 21


def _check_clip(frames: torch.Tensor, name: str, argument: str = "frames", minimum: int = 1) -> None:
    try:
        check_image(frames, argument)
    except ValueError as error:
        raise ValueError(str(error).replace("align_frames", name, 1)) from None
    if frames.shape[0] < minimum:
        raise ValueError(f"{name}: {argument} must have at least {minimum} frames, found {frames.shape[0]}")


def flicker_index(frames: torch.Tensor) -> float:
    """Mean absolute frame-to-frame change of the mean BT.601 luma, 0..255 units (0.0 for one frame)."""
    _check_clip(frames, "flicker_index")
    means = mean_luma(frames.double()) * 255
    return float((means[1:] - means[:-1]).abs().mean()) if len(means) > 1 else 0.0


def mean_lab(frames: torch.Tensor) -> torch.Tensor:
    """Mean L*, a*, b* of each frame, over all its pixels.  [F, H, W, 3] -> [F, 3] float64 (CPU)"""
    step = max(1, CHUNK_PIXELS // (frames.shape[1] * frames.shape[2]))
    parts = [rgb_to_lab(frames[i:i + step].float()).flatten(1, 2).double().mean(dim=1)
             for i in range(0, frames.shape[0], step)]
    return torch.cat(parts).cpu()


def _anchor_lab(frames: torch.Tensor, frame_labs: torch.Tensor, anchor) -> torch.Tensor:
    """Mean Lab of the anchor: None -> frame 0, an int -> that frame, an IMAGE [1, H, W, 3] / [H, W, 3]."""
    if anchor is None:
        return frame_labs[0]
    if isinstance(anchor, int) and not isinstance(anchor, bool):
        if not -frames.shape[0] <= anchor < frames.shape[0]:
            raise ValueError(f"color_drift: anchor frame {anchor} is outside the {frames.shape[0]} frames")
        return frame_labs[anchor]
    image = anchor[None] if isinstance(anchor, torch.Tensor) and anchor.ndim == 3 else anchor
    _check_clip(image, "color_drift", "anchor")
    if image.shape[0] != 1:
        raise ValueError(f"color_drift: anchor must be one image [1, H, W, 3], found {image.shape[0]} images")
    return mean_lab(image)[0]


def color_drift(frames: torch.Tensor, anchor: int | torch.Tensor | None = None) -> torch.Tensor:
    """ΔE00 of each frame's mean L*a*b* from the anchor's.  [F, H, W, 3] -> [F] float64 (CPU)

    Summaries used in the tables: `.mean()` and the last frame's value.
    """
    _check_clip(frames, "color_drift")
    labs = mean_lab(frames)
    return ciede2000(labs, _anchor_lab(frames, labs, anchor)[None])


def warp_error(frames: torch.Tensor, reference: torch.Tensor | None = None) -> float:
    """Occlusion-masked warping MSE (0..1 RGB) averaged over consecutive pairs (needs OpenCV).

    `reference` [F, H, W, 3]: the clip whose motion (flow and occlusions) is used; default `frames`.
    """
    _check_clip(frames, "warp_error", minimum=2)
    if reference is not None:
        _check_clip(reference, "warp_error", "reference")
        if reference.shape != frames.shape:
            raise ValueError(f"warp_error: reference must have the shape of frames {tuple(frames.shape)}, "
                             f"found {tuple(reference.shape)}")
    flows = pair_flows(to_gray_uint8(frames if reference is None else reference))
    return warp_error_from_flows(frames, flows)


def warp_error_from_flows(frames: torch.Tensor, flows: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """`warp_error` with precomputed `flow.pair_flows` (to score many versions of one clip on one motion)."""
    if len(flows) != frames.shape[0] - 1 or flows[0][0].shape[:2] != tuple(frames.shape[1:3]):
        raise ValueError(f"warp_error: {len(flows)} flows of size {flows[0][0].shape[:2]} do not fit frames "
                         f"of shape {tuple(frames.shape)}")
    clip = frames.float().clamp(0, 1).cpu().numpy()
    errors = []
    for t, (flow, visible) in enumerate(flows):
        squared = ((clip[t] - warp(clip[t + 1], flow)) ** 2).mean(axis=-1)
        errors.append(float((squared * visible).sum() / max(int(visible.sum()), 1)))
    return float(np.mean(errors))

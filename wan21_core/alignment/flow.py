"""Optical flow for the warping error: OpenCV DIS (no learned weights), forward–backward occlusion mask.

OpenCV (opencv-python-headless, a test/benchmark dependency) is imported only when a flow is
computed, with a clear error when it is missing.
"""
from __future__ import annotations

import numpy as np
import torch

DIS_PRESET = "MEDIUM"        # DISOpticalFlow preset: ULTRAFAST, FAST or MEDIUM


def _cv2():
    try:
        import cv2
    except ImportError as error:
        raise ImportError("warp_error needs OpenCV for its DIS optical flow "
                          "(pip install opencv-python-headless)") from error
    return cv2


def to_gray_uint8(frames: torch.Tensor) -> np.ndarray:
    """BT.601 gray as uint8, what DIS takes.  [F, H, W, 3] float 0..1 -> [F, H, W] uint8"""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=frames.device)
    gray = (frames.float().clamp(0, 1) @ weights) * 255
    return gray.round().to(torch.uint8).cpu().numpy()


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image sampled at p + flow(p) (bilinear, border replicated).  [H, W, C], [H, W, 2] -> [H, W, C]"""
    cv2 = _cv2()
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def consistent_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels whose forward flow is undone by the backward flow at its target (not occluded).

    The test of Sundaram et al. 2010 as used by Lai et al. 2018:
    |f + b(p + f)|² <= 0.01 (|f|² + |b(p + f)|²) + 0.5.   [H, W, 2] ×2 -> [H, W] bool
    """
    back = warp(backward, forward)
    error = np.sum((forward + back) ** 2, axis=-1)
    bound = 0.01 * (np.sum(forward ** 2, axis=-1) + np.sum(back ** 2, axis=-1)) + 0.5
    return error <= bound


def pair_flows(gray: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each consecutive pair (t, t+1): flow t -> t+1 [H, W, 2] and its non-occluded mask [H, W]."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{DIS_PRESET}"))
    flows = []
    for first, second in zip(gray[:-1], gray[1:]):
        forward, backward = dis.calc(first, second, None), dis.calc(second, first, None)
        flows.append((forward, consistent_mask(forward, backward)))
    return flows

"""Image and video quality measures used to train, test and benchmark the upscaler.

Images are ``[H, W, 3]`` uint8 arrays, clips ``[F, H, W, 3]`` uint8 (what a user gets after
quantisation). Conventions follow the super-resolution literature:

* PSNR-Y / SSIM-Y on the BT.601 studio-range luma (16..235, MATLAB ``rgb2ycbcr``), with
  ``border`` pixels cropped on every side (the scale factor, by convention); SSIM with the
  11×11 Gaussian window (σ 1.5) of Wang et al. on the valid region.
* Sharpness: mean Sobel gradient magnitude of the full-range luma; compare it to the
  ground truth's (a blurry result is below, an over-sharpened one above).
* Flicker index: mean over t of |mean luma(t+1) − mean luma(t)| (BT.601 full-range, 8-bit units).
* Warping error (Lai et al. 2018): mean over t of the occlusion-masked MSE between frame t and
  frame t+1 warped back with optical flow (OpenCV DIS, no weights), in 1e-3 units of [0, 1] RGB.
  The flow comes from a reference clip (the ground truth), so every method is judged on the
  same motion; the occlusion mask is a forward–backward consistency check.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_Y_STUDIO = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_FULL = np.array([0.299, 0.587, 0.114])


def _check_image(image: np.ndarray, name: str) -> None:
    if image.dtype != np.uint8 or image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(f"{name}: expected uint8 [..., H, W, 3], found {image.dtype} "
                         f"{tuple(image.shape)}")


def luma_studio(image: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y (16..235) as float64."""
    return 16.0 + image.astype(np.float64) @ _Y_STUDIO


def luma_full(image: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma (0..255) as float64."""
    return image.astype(np.float64) @ _Y_FULL


def _pair_y(pred: np.ndarray, target: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    _check_image(pred, "prediction")
    _check_image(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"metric: prediction {pred.shape} and target {target.shape} differ")
    b = slice(border, -border if border else None)
    return luma_studio(pred)[..., b, b], luma_studio(target)[..., b, b]


def psnr_y(pred: np.ndarray, target: np.ndarray, border: int = 0) -> float:
    """PSNR on Y (dB, peak 255) after cropping ``border`` pixels."""
    p, t = _pair_y(pred, target, border)
    mse = float(np.mean((p - t) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # [1, 1, size, size]


def ssim_y(pred: np.ndarray, target: np.ndarray, border: int = 0) -> float:
    """SSIM on Y (Wang et al. 2004: Gaussian 11×11, σ 1.5, K1 0.01, K2 0.03, L 255)."""
    p, t = _pair_y(pred, target, border)
    x = torch.from_numpy(p).reshape(-1, 1, *p.shape[-2:])
    y = torch.from_numpy(t).reshape(-1, 1, *t.shape[-2:])
    w = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx**2
    syy = F.conv2d(y * y, w) - my**2
    sxy = F.conv2d(x * y, w) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(ssim.mean())


def sharpness(image: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the full-range luma (8-bit units per pixel)."""
    _check_image(image, "sharpness image")
    y = torch.from_numpy(luma_full(image)).reshape(-1, 1, *image.shape[-3:-1])
    kx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64) / 8
    k = torch.stack([kx, kx.T])[:, None]  # [2, 1, 3, 3]
    g = F.conv2d(y, k)
    return float(g.pow(2).sum(1).sqrt().mean())


def flicker_index(clip: np.ndarray) -> float:
    """Mean absolute change of the frame-mean luma between consecutive frames (8-bit units)."""
    _check_image(clip, "flicker clip")
    if clip.ndim != 4 or clip.shape[0] < 2:
        raise ValueError(f"flicker clip: expected [F>=2, H, W, 3], found {clip.shape}")
    means = luma_full(clip).mean(axis=(1, 2))
    return float(np.abs(np.diff(means)).mean())


def _dis_flow(a: np.ndarray, b: np.ndarray):
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b)]
    return dis.calc(gray[0], gray[1], None)


def _remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at p + flow(p) (bilinear, border replicated)."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def reference_flows(reference: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per consecutive pair of ``reference``: (flow t→t+1, non-occluded mask) from DIS."""
    _check_image(reference, "reference clip")
    flows = []
    for a, b in zip(reference[:-1], reference[1:]):
        fwd, bwd = _dis_flow(a, b), _dis_flow(b, a)
        back = _remap(bwd, fwd)  # backward flow at the forward-flow target
        err = np.sum((fwd + back) ** 2, axis=-1)
        bound = 0.01 * (np.sum(fwd**2, axis=-1) + np.sum(back**2, axis=-1)) + 0.5
        flows.append((fwd, err <= bound))
    return flows


def warping_error(clip: np.ndarray, reference: np.ndarray | None = None,
                  flows: list | None = None) -> float:
    """Temporal warping error of ``clip`` (×1e-3, [0, 1] RGB) with the reference clip's flow.

    ``reference`` defaults to ``clip`` itself (self-flow); pass precomputed ``flows`` (from
    `reference_flows`) to score several clips on the same motion cheaply.
    """
    _check_image(clip, "warping-error clip")
    if flows is None:
        flows = reference_flows(clip if reference is None else reference)
    if len(flows) != len(clip) - 1 or flows[0][0].shape[:2] != clip.shape[1:3]:
        raise ValueError(f"warping error: {len(flows)} flows of size {flows[0][0].shape[:2]} "
                         f"do not fit a clip of shape {clip.shape}")
    errors = []
    for t, (flow, mask) in enumerate(flows):
        cur = clip[t].astype(np.float32) / 255
        warped = _remap(clip[t + 1].astype(np.float32) / 255, flow)
        sq = ((cur - warped) ** 2).mean(axis=-1)
        errors.append(float((sq * mask).sum() / max(mask.sum(), 1)))
    return 1e3 * float(np.mean(errors))

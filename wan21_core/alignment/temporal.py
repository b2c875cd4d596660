"""Temporal low-pass of per-frame statistics: the "window" reference of `align_frames`.

The smoother is a Gaussian-weighted local-linear fit over ±window frames (σ = window / 2), a
LOESS-style filter: inside the clip it equals the Gaussian average; near the clip's ends and shot
cuts, where the window is one-sided, the linear term keeps slow trends (a legit fade, a slow drift)
from being bent towards the interior. Frames never borrow statistics across a shot cut, and frames
whose statistics jump away from their neighbours (a flash, a glitch) are down-weighted by a few
rounds of Tukey-biweight reweighting, so they neither pull their neighbours' reference nor their own.

Everything is expressed as a row-stochastic kernel matrix K [F, F] (each row sums to 1): the
low-pass of any statistics tensor S [F, ...] is K @ S.
"""
from __future__ import annotations

import torch

TUKEY_C = 4.685              # biweight tuning constant (95 % efficiency for Gaussian residuals)
ROBUST_ROUNDS = 2
MIN_SCALE = 2e-3             # residual scale floor (log gain units, 0.2 %): stable clips stay unweighted


def frame_offsets(frames: int, device: torch.device) -> torch.Tensor:
    """d[t, s] = s − t as float32 [F, F]."""
    index = torch.arange(frames, device=device, dtype=torch.float32)
    return index[None, :] - index[:, None]


def gaussian_weights(frames: int, window: int, shots: torch.Tensor) -> torch.Tensor:
    """w[t, s] ∝ exp(−d²/2σ²) for |s − t| <= window within the same shot, σ = window / 2.  [F, F]"""
    d = frame_offsets(frames, shots.device)
    sigma = max(window / 2, 0.5)
    w = torch.exp(-0.5 * (d / sigma) ** 2) * (d.abs() <= window)
    return w * (shots[:, None] == shots[None, :])


def local_linear_kernel(weights: torch.Tensor) -> torch.Tensor:
    """Equivalent kernel of a weighted linear fit evaluated at the centre frame.  [F, F] -> [F, F]

    For row t with weights w_s at offsets d_s: value(t) = Σ_s k_s y_s with
    k_s = w_s (S2 − S1 d_s) / (S0 S2 − S1²), S_n = Σ w_s d_sⁿ. Symmetric windows give S1 = 0, i.e.
    the plain weighted mean. Rows with one usable frame (or a degenerate spread) fall back to the mean.
    """
    d = frame_offsets(weights.shape[0], weights.device)
    s0 = weights.sum(1, keepdim=True)
    s1 = (weights * d).sum(1, keepdim=True)
    s2 = (weights * d * d).sum(1, keepdim=True)
    det = s0 * s2 - s1 * s1
    mean_kernel = weights / s0.clamp_min(1e-12)
    linear = weights * (s2 - s1 * d) / det.clamp_min(1e-12)
    usable = det > 1e-6 * s0 * s2.clamp_min(1e-12)
    return torch.where(usable, linear, mean_kernel)


def tukey_weights(residuals: torch.Tensor) -> torch.Tensor:
    """Biweight robustness weights of frames from their residual vectors.  [F, D] -> [F]

    Each column is scaled by its median absolute deviation (at least MIN_SCALE); a frame's
    distance is the RMS over columns.
    """
    scale = 1.4826 * residuals.abs().median(dim=0).values.clamp_min(MIN_SCALE / 1.4826)
    distance = (residuals / scale).pow(2).mean(dim=1).sqrt()
    u = (distance / TUKEY_C).clamp(max=1.0)
    return (1 - u * u) ** 2


def smoothing_kernel(signal: torch.Tensor, window: int, shots: torch.Tensor) -> torch.Tensor:
    """Robust local-linear low-pass kernel K [F, F] for the per-frame `signal` [F, D].

    `signal` is what identifies outlier frames (e.g. log channel means). Outlier frames get small
    weight in every frame's reference, their own included; a row left with no weight (a lone frame
    of its own shot) keeps its plain Gaussian weights.
    """
    base = gaussian_weights(signal.shape[0], window, shots)
    kernel = local_linear_kernel(base)
    for _ in range(ROBUST_ROUNDS):
        robust = tukey_weights(signal - kernel @ signal)
        weights = base * robust[None, :]
        empty = weights.sum(1, keepdim=True) <= 1e-6 * base.sum(1, keepdim=True)
        kernel = local_linear_kernel(torch.where(empty, base, weights))
    return kernel

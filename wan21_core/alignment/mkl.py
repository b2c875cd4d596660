"""Method "mkl": the Monge–Kantorovich linear colour transfer (Pitié & Kokaram 2007) in RGB.

Statistics of a frame: the RGB mean and covariance, [F, 12] (3 + 9). The transfer is the affine map
x -> A (x − μ_src) + μ_tgt with the symmetric A = Σs^-1/2 (Σs^1/2 Σt Σs^1/2)^1/2 Σs^-1/2, the optimal
transport map between the two Gaussians. Matrix square roots are batched with torch.linalg.eigh.
"""
from __future__ import annotations

import torch

EPS = 1e-5           # added to the covariances' diagonals: flat frames stay invertible (A -> identity)


def statistics(pixels: torch.Tensor) -> torch.Tensor:
    """RGB mean and covariance, flattened.  [F, N, 3] -> [F, 12]"""
    mean = pixels.mean(dim=1)                                    # [F, 3]
    centred = pixels - mean[:, None]
    cov = centred.transpose(1, 2) @ centred / pixels.shape[1]    # [F, 3, 3]
    return torch.cat([mean, cov.flatten(1)], dim=1)


def symmetric_power(matrices: torch.Tensor, power: float) -> torch.Tensor:
    """M^power of symmetric positive semi-definite matrices.  [B, 3, 3] -> [B, 3, 3]

    Round-off can leave tiny negative eigenvalues: they become 0 for positive powers and EPS for
    negative ones (the callers add EPS to the diagonal, so no true eigenvalue is below it).
    """
    values, vectors = torch.linalg.eigh(matrices)
    values = values.clamp_min(EPS if power < 0 else 0.0) ** power
    return (vectors * values[:, None, :]) @ vectors.transpose(1, 2)


def mkl_matrix(cov_src: torch.Tensor, cov_tgt: torch.Tensor) -> torch.Tensor:
    """The Monge–Kantorovich linear map between two covariances.  [B, 3, 3] ×2 -> [B, 3, 3]"""
    dtype, device = cov_src.dtype, cov_src.device
    cov_src, cov_tgt = cov_src.cpu().double(), cov_tgt.cpu().double()   # tiny 3×3s: float64 on the CPU
    eye = torch.eye(3, dtype=cov_src.dtype, device=cov_src.device)
    cov_src, cov_tgt = cov_src + EPS * eye, cov_tgt + EPS * eye
    root = symmetric_power(cov_src, 0.5)
    inverse_root = symmetric_power(cov_src, -0.5)
    middle = symmetric_power(root @ cov_tgt @ root, 0.5)
    return (inverse_root @ middle @ inverse_root).to(device, dtype)


def transfer(frames: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Affine RGB map per frame.  [f, H, W, 3], [f, 12], [f, 12] -> [f, H, W, 3]"""
    matrix = mkl_matrix(source[:, 3:].reshape(-1, 3, 3), target[:, 3:].reshape(-1, 3, 3))   # [f, 3, 3]
    offset = target[:, :3] - (matrix @ source[:, :3, None])[..., 0]                          # [f, 3]
    flat = frames.reshape(frames.shape[0], -1, 3)                                            # [f, HW, 3]
    out = torch.baddbmm(offset[:, None, :], flat, matrix.transpose(1, 2))
    return out.reshape(frames.shape)

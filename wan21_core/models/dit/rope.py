"""3D rotary position embedding of the Wan2.1 DiT (official `wan/modules/model.py`, `rope_params`, `rope_apply`).

Each head of 128 channels is split into 64 interleaved pairs (2j, 2j+1). The first 22 pairs rotate
with the frame index, the next 21 with the row and the last 21 with the column of the token's
position in the patch grid. Every axis has its own frequency set, θ_j = 10000^(-2j / D_axis) with
D_axis = 44, 42, 42. Positions are patch-grid units; at most 1024 per axis, like the official table.

The angles are computed once per grid in float64 (as the official code does) and kept as a complex64
table of unit rotations, cached per (grid, head_dim, device). Applying it is one in-place complex
multiply in fp32; the official float64 path differs from it by about 1e-7 relative.
"""
from __future__ import annotations

import functools

import torch

MAX_POSITIONS = 1024
THETA = 10000.0


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels rotated by (frame, row, column): (44, 42, 42) for head_dim 128."""
    row = 2 * (head_dim // 6)
    return head_dim - 2 * row, row, row


def _axis_angles(axis_dim: int, positions: int) -> torch.Tensor:
    """Rotation angles [positions, axis_dim // 2] in float64: pos · 10000^(-2j / axis_dim)."""
    exponents = torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim
    return torch.outer(torch.arange(positions, dtype=torch.float64), THETA ** -exponents)


@functools.lru_cache(maxsize=16)
def rope_table(grid: tuple[int, int, int], head_dim: int, device: torch.device) -> torch.Tensor:
    """Unit rotations [L, 1, head_dim // 2] (complex64) for the tokens of a (T, H, W) patch grid.

    Token order is frame-major, then row, then column (l = f·H·W + h·W + w), matching the
    flattened patch embedding. The singleton dimension broadcasts over heads.
    """
    frames, rows, cols = grid
    if max(grid) > MAX_POSITIONS:
        raise ValueError(f"rope grid: at most {MAX_POSITIONS} positions per axis (official table), found {grid}")
    dim_t, dim_h, dim_w = rope_axis_dims(head_dim)
    ang_t = _axis_angles(dim_t, frames)[:, None, None, :].expand(frames, rows, cols, -1)
    ang_h = _axis_angles(dim_h, rows)[None, :, None, :].expand(frames, rows, cols, -1)
    ang_w = _axis_angles(dim_w, cols)[None, None, :, :].expand(frames, rows, cols, -1)
    angles = torch.cat([ang_t, ang_h, ang_w], dim=-1).reshape(frames * rows * cols, 1, head_dim // 2)
    rotations = torch.polar(torch.ones_like(angles), angles)        # complex128
    return rotations.to(device=device, dtype=torch.complex64)


def apply_rope_(x: torch.Tensor, rotations: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate interleaved channel pairs of x [B, L, heads, head_dim] (fp32, contiguous) in place.

    Pair (2j, 2j+1) is read as the complex number x[2j] + i·x[2j+1] and multiplied by rotations
    [L, 1, head_dim/2]. `scale` [B, L, 1, 1] (fp32), a per-token factor such as an RMS
    normalisation, rides along in the same multiply. Returns x.
    """
    if scale is not None:
        rotations = rotations * scale                                 # [B, L, 1, head_dim/2]
    torch.view_as_complex(x.unflatten(-1, (-1, 2))).mul_(rotations)   # [B, L, heads, head_dim/2]
    return x

"""Tiled application of a stage with overlap and seamless blending.

Memory stays bounded at any resolution: only one batch of ``tile``×``tile`` input tiles (and
their outputs) lives on the compute device at a time; the whole image and the blended output
stay on the storage device (normally the CPU).

Tiles are spread evenly so that neighbours overlap by at least ``overlap`` input pixels. In each
overlap the outer quarter next to a tile's own edge (where zero padding distorts a convolutional
network's output) gets weight 0 and the middle half a linear ramp, so the tile outputs cross-fade
where both are reliable; a network whose receptive-field radius is at most overlap/4 input
pixels gives exactly the untiled result. Outputs are divided by the summed weights, which are
positive everywhere: every pixel lies in some tile's interior or in the ramp of one of the two
tiles sharing its overlap.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .ensemble import run_ensembled
from .stages import Stage


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread start offsets of tiles of size ``tile`` covering ``[0, length)``."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def count_tiles(size: tuple[int, int], tile: int, overlap: int) -> int:
    return len(tile_starts(size[0], tile, overlap)) * len(tile_starts(size[1], tile, overlap))


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 16:
        raise ValueError(f"upscale: tile must be at least 16 pixels, found {tile}")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"upscale: overlap must be in [0, tile/2), found overlap {overlap} "
                         f"for tile {tile}")


def _ramp(length: int, before: int, after: int, scale: int) -> torch.Tensor:
    """1-D blend weight of a tile of ``length`` input pixels, at the output resolution.

    ``before`` / ``after``: overlap (input pixels) with the previous / next tile, 0 at an
    image border.
    """
    x = torch.arange(length * scale, dtype=torch.float32) + 0.5
    w = torch.ones_like(x)
    for ov, pos in ((before, x), (after, length * scale - x)):
        if ov > 0:
            o = ov * scale
            w = torch.minimum(w, ((pos - o / 4) / (o / 2)).clamp(0, 1))
    return w


def _overlaps(starts: list[int], tile: int, length: int) -> list[tuple[int, int, int]]:
    """(start, overlap with previous, overlap with next) per tile along one axis."""
    size = min(tile, length)
    out = []
    for i, s in enumerate(starts):
        before = starts[i - 1] + size - s if i > 0 else 0
        after = s + size - starts[i + 1] if i + 1 < len(starts) else 0
        out.append((s, before, after))
    return out


def run_tiled(stage: Stage, image: torch.Tensor, tile: int, overlap: int,
              device: torch.device, on_tile: Callable[[], None] | None = None,
              ensemble: int = 1) -> torch.Tensor:
    """Apply ``stage`` to ``image [B, 3, H, W]`` tile by tile; returns ``[B, 3, sH, sW]``.

    The result lives on ``image``'s device; each tile runs on ``device`` in the stage's dtype,
    averaged over ``ensemble`` mirrored/rotated copies (`ensemble.run_ensembled`).
    ``on_tile`` is called after every tile (progress and cancellation).
    """
    check_tiling(tile, overlap)
    b, c, h, w = image.shape
    s = stage.scale
    dtype = stage.parameter.dtype
    if h <= tile and w <= tile:  # one tile: nothing to blend
        result = run_ensembled(stage.run, image.to(device=device, dtype=dtype), ensemble)
        if on_tile is not None:
            on_tile()
        return result.to(device=image.device, dtype=torch.float32)
    out = torch.zeros(b, c, h * s, w * s, dtype=torch.float32, device=image.device)
    weight_sum = torch.zeros(1, 1, h * s, w * s, dtype=torch.float32, device=image.device)
    th, tw = min(tile, h), min(tile, w)
    rows = _overlaps(tile_starts(h, tile, overlap), tile, h)
    cols = _overlaps(tile_starts(w, tile, overlap), tile, w)
    for y, up, down in rows:
        wy = _ramp(th, up, down, s)
        for x, left, right in cols:
            piece = image[:, :, y:y + th, x:x + tw].to(device=device, dtype=dtype)
            result = run_ensembled(stage.run, piece, ensemble)
            result = result.to(device=image.device, dtype=torch.float32)
            if result.shape[-2:] != (th * s, tw * s):
                raise RuntimeError(f"stage {stage.name}: expected a ×{s} output of "
                                   f"{th * s}x{tw * s}, found {tuple(result.shape[-2:])}")
            wt = (wy[:, None] * _ramp(tw, left, right, s)[None, :]).to(image.device)
            out[:, :, y * s:(y + th) * s, x * s:(x + tw) * s] += result * wt
            weight_sum[:, :, y * s:(y + th) * s, x * s:(x + tw) * s] += wt
            if on_tile is not None:
                on_tile()
    return out.div_(weight_sum)

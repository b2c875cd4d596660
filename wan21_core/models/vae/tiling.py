"""Spatial tiling with linear-ramp blending, used by the VAE's tiled encode and decode.

Tiles are planned on the latent grid (cells of `spatial_stride` pixels). A tile covers all frames;
where two tiles overlap, each one's weight ramps linearly across the overlap so that the weights
of neighbours sum to one. Weights are normalised over all tiles, so any layout blends to a
convex combination and a single tile reproduces the untiled result exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class Tile:
    """One tile: latent-cell spans [start, end) and its blend weight in output units."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    weight: Optional[torch.Tensor]  # [rows·scale, cols·scale] normalised; None when it is the only tile

    def region(self, scale: int) -> tuple[slice, slice]:
        """Row and column slices of this tile in units of `scale` per latent cell."""
        return (slice(self.rows[0] * scale, self.rows[1] * scale),
                slice(self.cols[0] * scale, self.cols[1] * scale))


def axis_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Fewest spans of length `tile` covering [0, size) with neighbours overlapping ≥ `overlap`.

    Starts are spread evenly, so the actual overlaps are as equal as integer cells allow.
    """
    if tile >= size:
        return [(0, size)]
    count = math.ceil((size - overlap) / (tile - overlap))
    starts = [round(i * (size - tile) / (count - 1)) for i in range(count)]
    return [(start, start + tile) for start in starts]


def axis_ramp(spans: list[tuple[int, int]], index: int, scale: int) -> torch.Tensor:
    """Weight of span `index` at each output position: 1 inside, linear ramps over its overlaps.

    Over the overlap [a, b) of two neighbours, the left one falls as (b - x - ½)/(b - a) and the
    right one rises as (x - a + ½)/(b - a), so the two sum to one.
    """
    start, end = spans[index]
    length = (end - start) * scale
    centre = torch.arange(length, dtype=torch.float32) + 0.5  # position within the tile
    weight = torch.ones(length)
    if index > 0:
        lead = (spans[index - 1][1] - start) * scale
        if lead > 0:
            weight = torch.minimum(weight, centre / lead)
    if index < len(spans) - 1:
        trail = (end - spans[index + 1][0]) * scale
        if trail > 0:
            weight = torch.minimum(weight, (length - centre) / trail)
    return weight


def _normalised_ramps(size: int, tile: int, overlap: int, scale: int):
    """Spans along one axis and their ramps divided by the ramp sum at each output position."""
    spans = axis_spans(size, tile, overlap)
    ramps = [axis_ramp(spans, i, scale) for i in range(len(spans))]
    total = torch.zeros(size * scale)
    for (start, end), ramp in zip(spans, ramps):
        total[start * scale:end * scale] += ramp
    return spans, [ramp / total[s * scale:e * scale] for (s, e), ramp in zip(spans, ramps)]


def plan_tiles(height: int, width: int, tile: tuple[int, int], overlap: tuple[int, int],
               scale: int) -> list[Tile]:
    """Tiles over a height×width latent grid, row-major, with blend weights at `scale` per cell.

    The 2-D weight is the outer product of the row and column ramps; both are normalised per
    axis, so the weights of all tiles sum to one at every output position.
    """
    row_spans, row_weights = _normalised_ramps(height, tile[0], overlap[0], scale)
    col_spans, col_weights = _normalised_ramps(width, tile[1], overlap[1], scale)
    single = len(row_spans) == 1 and len(col_spans) == 1
    return [Tile(rows, cols, None if single else torch.outer(row_w, col_w))
            for rows, row_w in zip(row_spans, row_weights)
            for cols, col_w in zip(col_spans, col_weights)]

"""Method "histogram": per-channel histogram matching through quantile functions, batched.

Statistics of a frame: QUANTILES points of each RGB channel's quantile function (its pixel values
at evenly spaced probabilities, read from a fine histogram), [F, 3·QUANTILES]. A temporal average
of quantile functions is the 1-d Wasserstein barycentre of the histograms, so the "window"
reference is a proper average histogram. The transfer maps v -> Q_tgt(F_src(v)) for every channel
of every frame at once: it is tabulated on LUT_SIZE input levels (searchsorted in the source
quantiles, linear interpolation in between) and applied to the pixels by linear interpolation in
that table. Beyond the source's
extremes the map continues with slope 1.
"""
from __future__ import annotations

import torch

QUANTILES = 65       # probabilities 0, 1/64, ..., 1
BINS = 4096          # histogram bins of the statistics (0..1)
LUT_SIZE = 1024


def _interpolate_rows(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """table[..., position] with linear interpolation at fractional positions.  [B, C, P], [B, C, M] -> [B, C, M]"""
    position = position.clamp(0, table.shape[-1] - 1)
    low = position.floor().long().clamp(max=table.shape[-1] - 2) if table.shape[-1] > 1 else position.long()
    high = (low + 1).clamp(max=table.shape[-1] - 1)
    frac = position - low
    return torch.lerp(table.gather(-1, low), table.gather(-1, high), frac)


def statistics(pixels: torch.Tensor) -> torch.Tensor:
    """Quantile functions of R, G, B, read from BINS-bin histograms.  [F, N, 3] -> [F, 3·QUANTILES]

    Counting (one bincount over all frames and channels) costs O(N) instead of a sort; inside a bin
    the values are taken as evenly spread. Quantile p sits at the mid-rank p·(N − 1) + ½.
    """
    frames, count = pixels.shape[:2]
    bins = (pixels.clamp(0, 1) * BINS).long().clamp_(max=BINS - 1)                      # [F, N, 3]
    rows = torch.arange(frames * 3, device=pixels.device).view(frames, 1, 3) * BINS
    counts = torch.bincount((bins + rows).flatten(), minlength=frames * 3 * BINS).view(frames, 3, BINS)
    cumulative = counts.cumsum(dim=-1).to(pixels.dtype)                                  # [F, 3, BINS]
    ranks = torch.linspace(0, 1, QUANTILES, device=pixels.device, dtype=pixels.dtype) * (count - 1) + 0.5
    ranks = ranks.expand(frames, 3, -1).contiguous()                                     # [F, 3, Q]
    bin_index = torch.searchsorted(cumulative, ranks).clamp_(max=BINS - 1)
    below = torch.where(bin_index > 0, cumulative.gather(-1, (bin_index - 1).clamp(min=0)), 0.0)
    inside = counts.gather(-1, bin_index).to(pixels.dtype).clamp_min(1)
    return ((bin_index + (ranks - below) / inside) / BINS).flatten(1)


def lookup_tables(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Tabulated map Q_tgt(F_src(v)) at LUT_SIZE levels v in 0..1.  [f, 3, Q] ×2 -> [f, 3, LUT_SIZE]"""
    ramp = torch.arange(source.shape[-1], device=source.device, dtype=source.dtype)
    knots = source + 1e-6 * ramp                                          # strictly increasing
    levels = torch.linspace(0, 1, LUT_SIZE, device=source.device, dtype=source.dtype)
    levels = levels.expand(*source.shape[:2], -1).contiguous()            # [f, 3, L]
    upper = torch.searchsorted(knots, levels).clamp(1, source.shape[-1] - 1)
    low, high = knots.gather(-1, upper - 1), knots.gather(-1, upper)
    rank = upper - 1 + ((levels - low) / (high - low)).clamp(0, 1)        # fractional quantile index
    mapped = _interpolate_rows(target, rank)
    below = target[..., :1] + levels - knots[..., :1]
    above = target[..., -1:] + levels - knots[..., -1:]
    return torch.where(levels < knots[..., :1], below, torch.where(levels > knots[..., -1:], above, mapped))


def transfer(frames: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Match each channel's histogram.  [f, H, W, 3], [f, 3·Q], [f, 3·Q] -> [f, H, W, 3]"""
    count = frames.shape[0]
    tables = lookup_tables(source.reshape(count, 3, -1), target.reshape(count, 3, -1))   # [f, 3, L]
    values = frames.reshape(count, -1, 3).transpose(1, 2)                                # [f, 3, HW]
    mapped = _interpolate_rows(tables, values.clamp(0, 1) * (LUT_SIZE - 1))
    return mapped.transpose(1, 2).reshape(frames.shape)

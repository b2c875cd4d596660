"""Geometric self-ensemble (test-time augmentation) of a stage.

A stage is run on mirrored and rotated copies of its input; each output is turned back and the
results are averaged (EDSR's "self-ensemble", chaiNNer's "TTA"). A convolutional upscaler is not
exactly equivariant to these transforms, so the average cancels part of its error: on the
held-out photos the shipped PSNR cascade gains about +0.08 dB at ×2 with 2 copies and +0.12 dB
with all 8 (docs/benchmarks.md), at 2–8 times the time.
"""
from __future__ import annotations

from typing import Callable

import torch

# (quarter turns, horizontal mirror) of each copy; the first is always the input itself.
Transform = tuple[int, bool]
ENSEMBLES: dict[int, tuple[Transform, ...]] = {
    1: ((0, False),),
    2: ((0, False), (0, True)),                             # the input and its mirror image
    4: ((0, False), (1, False), (2, False), (3, False)),    # the four rotations
    8: tuple((k, flip) for flip in (False, True) for k in range(4)),
}


def check_ensemble(size: int) -> None:
    if size not in ENSEMBLES:
        raise ValueError(f"upscale: self_ensemble must be one of {sorted(ENSEMBLES)}, "
                         f"found {size!r}")


def _forward(x: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    """Mirror (last axis), then rotate ``[B, C, H, W]`` by ``turns`` quarter turns."""
    x = x.flip(-1) if mirror else x
    return torch.rot90(x, turns, dims=(-2, -1))


def _backward(y: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    """The inverse of `_forward` (also on an upscaled output)."""
    y = torch.rot90(y, -turns, dims=(-2, -1))
    return y.flip(-1) if mirror else y


def run_ensembled(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  size: int) -> torch.Tensor:
    """Mean of ``run`` over the ``size`` copies of ``x [B, C, H, W]`` (1: just ``run(x)``)."""
    check_ensemble(size)
    total = None
    for turns, mirror in ENSEMBLES[size]:
        y = _backward(run(_forward(x, turns, mirror)), turns, mirror).float()
        total = y if total is None else total.add_(y)
    return total.div_(size) if size > 1 else total

"""`upscale_frames`: run a cascade over video frames in batches, tiled, with progress/cancel."""
from __future__ import annotations

import itertools
from typing import Callable

import torch
import torch.nn.functional as F

from .cascade import Cascade, Plan, ResizeStep, RunStep
from .ensemble import check_ensemble
from .tiling import check_tiling, count_tiles, run_tiled

MIN_TILE = 128


class _Progress:
    """Reports ``callback(done, total)`` in units of planned tiles; its exceptions propagate."""

    def __init__(self, total: int, callback: Callable[[int, int], None] | None):
        self.done, self.total, self.callback = 0, total, callback

    def report(self, done: int) -> None:
        self.done = done
        if self.callback is not None:
            self.callback(done, self.total)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resampling of ``[B, 3, H, W]`` to ``size`` = (H', W'), clamped."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bicubic", antialias=True,
                         align_corners=False).clamp_(0, 1)


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"upscale_frames: frames must be a tensor [F, H, W, 3], found {shape}")
    if not frames.is_floating_point():
        raise ValueError(f"upscale_frames: frames must be float in 0..1, found {frames.dtype}")


def _run_step(step: RunStep, images: torch.Tensor, tile: int, overlap: int,
              device: torch.device, progress: _Progress, ensemble: int) -> torch.Tensor:
    """One stage over a batch; on CUDA out-of-memory, retry with halved tiles (down to 128)."""
    start, planned = progress.done, count_tiles(step.in_size, tile, overlap)
    while True:
        actual = count_tiles(step.in_size, tile, overlap)
        finished = itertools.count(1)

        def tick() -> None:
            progress.report(start + next(finished) * planned // actual)
        try:
            return run_tiled(step.stage, images, tile, overlap, device, tick, ensemble)
        except torch.cuda.OutOfMemoryError:
            if tile // 2 < MIN_TILE:
                raise
            torch.cuda.empty_cache()
            tile = tile // 2
            overlap = min(overlap, tile // 2 - 1)


def upscale_frames(frames: torch.Tensor, cascade: Cascade, scale: int | None = None,
                   target_height: int | None = None, tile: int = 512, overlap: int = 32,
                   batch: int = 4, callback: Callable[[int, int], None] | None = None,
                   device: torch.device | str | None = None,
                   self_ensemble: int = 1) -> torch.Tensor:
    """Upscale ``frames [F, H, W, 3]`` (float, 0..1; ComfyUI IMAGE) with ``cascade``.

    Args:
        scale: 2, 4 or 8 (×2 steps through the cascade's stages), or
        target_height: output height; ⌈log2(target/H)⌉ ×2 steps, then a resize to exactly
            (target_height, round(W·target_height/H)).
        tile, overlap: tile edge and minimum overlap in input pixels of each stage.
        batch: frames processed together.
        callback: ``callback(done, total)`` after each tile; an exception raised in it stops
            processing (that is how ComfyUI's interrupt cancels).
        device: where the models run (default: where the cascade's weights are). Frames and
            the result stay on ``frames``' device; only tiles move.
        self_ensemble: 1, 2, 4 or 8 mirrored/rotated copies of every tile averaged by each
            stage (`ensemble.ENSEMBLES`): a little more fidelity for that many times the time.

    Returns:
        ``[F, H', W', 3]`` float32 in 0..1 on ``frames``' device.
    """
    _check_frames(frames)
    check_tiling(tile, overlap)
    check_ensemble(self_ensemble)
    if batch < 1:
        raise ValueError(f"upscale_frames: batch must be >= 1, found {batch}")
    n, h, w, _ = frames.shape
    plan: Plan = cascade.plan(h, w, scale, target_height)
    device = torch.device(device) if device is not None else cascade.device
    cascade.to(device)  # every model where the tiles go (a no-op when already there)
    per_batch = sum(count_tiles(s.in_size, tile, overlap) for s in plan.runs)
    progress = _Progress(per_batch * -(-n // batch), callback)
    out = torch.empty(n, *plan.out_size, 3, dtype=torch.float32, device=frames.device)
    for first in range(0, n, batch):
        # [b, H, W, 3] -> [b, 3, H, W]
        images = frames[first:first + batch].permute(0, 3, 1, 2).float()
        for step in plan.steps:
            if isinstance(step, ResizeStep):
                images = resize(images, step.out_size)
            else:
                images = _run_step(step, images, tile, overlap, device, progress, self_ensemble)
        out[first:first + batch] = images.permute(0, 2, 3, 1)
    return out

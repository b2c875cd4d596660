"""`align_frames`: colour/brightness alignment of a clip (ComfyUI IMAGE batch) to a reference.

Pipeline (all frames at once, vectorised on the input's device, float32 inside):

1. Per-frame colour statistics of the chosen method, on a strided grid of at most MAX_SAMPLES
   pixels per frame (statistics need no more; the transform itself is applied to every pixel).
2. Target statistics per frame from `reference`:
   - "window" (default): the statistics of the frame with its gain jitter divided out, the jitter
     being the fast part of its global R, G, B gains measured on matching pixels against its
     neighbours over a robust temporal kernel (see `gains`, `temporal`), within shots (see `shots`).
     Only the fast component (flicker, colour jitter) is removed; slow, legitimate changes of
     light and content stay. Anchoring every frame to one reference erases those too
     (QUALITY_NOTES §6: −3.9 dB against the clean clip).
   - "first": the statistics of frame 0, for every frame (hard anchoring).
   - an IMAGE [1 or F, H', W', 3]: its statistics (one for all frames, or frame by frame).
3. The method's transform from each frame's statistics to its target, then (by default) a short
   luma deflicker gain, blended with the input by `strength`, clamped to 0..1, cast to the input
   dtype.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from . import histogram, lab, mkl
from .deflicker import deflicker_gains
from .gains import gain_jitter
from .shots import shot_ids
from .temporal import smoothing_kernel
from .validate import AlignOptions, check_options

DEFAULT_METHOD = "mkl"
DEFAULT_WINDOW = 12           # ±12 frames, Gaussian σ = 6 frames
MAX_SAMPLES = 1 << 16         # pixels per frame for the statistics
CHUNK_PIXELS = 1 << 21        # pixels transformed per batch (bounds the temporary memory)


class Method(NamedTuple):
    """A colour-transfer family: per-frame statistics [F, N, 3] -> [F, D] and the transform
    frames [f, H, W, 3], source [f, D], target [f, D] -> frames."""

    statistics: Callable[[torch.Tensor], torch.Tensor]
    transfer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


METHODS = {"lab": Method(lab.statistics, lab.transfer), "mkl": Method(mkl.statistics, mkl.transfer),
           "histogram": Method(histogram.statistics, histogram.transfer)}


def sample_grid(images: torch.Tensor) -> torch.Tensor:
    """Every s-th row and column, s chosen for at most MAX_SAMPLES pixels, as float32.  [N, H, W, 3] -> [N, h, w, 3]"""
    stride = max(1, math.ceil(math.sqrt(images.shape[1] * images.shape[2] / MAX_SAMPLES)))
    return images[:, ::stride, ::stride].float()


def log_channel_means(grid: torch.Tensor) -> torch.Tensor:
    """log of each frame's mean R, G, B: the signal that marks outlier frames.  [F, h, w, 3] -> [F, 3]"""
    return grid.flatten(1, 2).mean(dim=1).clamp_min(1e-3).log()


def target_statistics(options: AlignOptions, method: Method, grid: torch.Tensor, source: torch.Tensor,
                      shots: torch.Tensor) -> torch.Tensor:
    """The statistics every frame is moved to.  -> [F, D]"""
    frames = source.shape[0]
    if isinstance(options.reference, torch.Tensor):
        reference = sample_grid(options.reference.to(source.device))
        return method.statistics(reference.flatten(1, 2)).expand(frames, -1)
    if options.reference == "first":
        return source[:1].expand(frames, -1)
    kernel = smoothing_kernel(log_channel_means(grid), options.window, shots)     # [F, F]
    steadied = grid * torch.exp(-gain_jitter(grid, kernel))[:, None, None, :]   # the jitter divided out
    return method.statistics(steadied.clamp(0, 1).flatten(1, 2))


def transform_chunks(frames: torch.Tensor, method: Method, source: torch.Tensor, target: torch.Tensor,
                     gains: torch.Tensor | None, strength: float) -> torch.Tensor:
    """Apply the per-frame transforms in batches of frames.  [F, H, W, 3] -> [F, H, W, 3] (input dtype)"""
    out = torch.empty_like(frames)
    step = max(1, CHUNK_PIXELS // (frames.shape[1] * frames.shape[2]))
    for start in range(0, frames.shape[0], step):
        part = slice(start, start + step)
        original = frames[part].float()
        aligned = method.transfer(original, source[part], target[part])
        if gains is not None:
            aligned = aligned * gains[part, None, None, None]
        if strength < 1:
            aligned = torch.lerp(original, aligned, strength)
        out[part] = aligned.clamp_(0, 1).to(frames.dtype)
    return out


def align_frames(frames: torch.Tensor, reference: str | torch.Tensor = "window", method: str = DEFAULT_METHOD,
                 window: int = DEFAULT_WINDOW, strength: float = 1.0, deflicker: bool | int = True) -> torch.Tensor:
    """Align the colours of a clip over time; same shape, dtype and device as `frames`.

    Args:
        frames: float tensor [F, H, W, 3] in 0..1 (ComfyUI IMAGE).
        reference: "window" (default) — each frame is matched to the temporal low-pass of the
            clip's own statistics over ±`window` frames, which removes flicker and colour jitter
            but keeps slow changes; "first" — every frame is matched to frame 0; or an IMAGE
            tensor [1 or F, H', W', 3] — every frame to that image (or frame t to image t).
        method: "lab" (mean/std of L*, a*, b*), "mkl" (RGB mean + covariance, Monge–Kantorovich
            linear map) or "histogram" (per-channel histogram matching).
        window: half-width of the temporal reference in frames (±window, Gaussian σ = window / 2).
        strength: 0..1, blend between the input (0, returned unchanged) and the full transform.
        deflicker: then equalise each frame's mean luma to the mean over ±N frames (ffmpeg
            `deflicker` mode am, centred); True (default) is N = 1, an int sets N, False/0 is off.
            It takes out the luma flicker a gain cannot undo (highlights clipped by a bright
            frame) at little cost to real brightness changes.

    Raises:
        ValueError naming the bad argument, before any work is done.
    """
    options = check_options(frames, reference, method, window, strength, deflicker)
    if options.strength == 0:
        return frames.clone()
    chosen = METHODS[options.method]
    grid = sample_grid(frames)                                   # [F, h, w, 3] float32
    shots = shot_ids(grid)                                       # [F]
    source = chosen.statistics(grid.flatten(1, 2))               # [F, D]
    target = target_statistics(options, chosen, grid, source, shots)
    gains = None
    if options.deflicker:
        aligned_grid = chosen.transfer(grid, source, target).clamp(0, 1)
        gains = deflicker_gains(aligned_grid, options.deflicker, shots)
    return transform_chunks(frames, chosen, source, target, gains, options.strength)

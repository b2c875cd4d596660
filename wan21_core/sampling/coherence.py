"""Temporal-coherence options of the sampler: frame alignment and context windows.

    from wan21_core.sampling import ContextWindows, FrameAlignment, sample
    latent = sample(dit, cond, options, alignment=FrameAlignment(anchor_strength=0.5, stats_strength=0.5),
                    windows=ContextWindows(length=21, overlap=5))

Everything is off by default (`alignment=None`, `windows=None`, or strengths 0): the sampler then
runs today's exact numerics. The options turn into sampler hooks (see `sampler`): the anchor
(`frame_anchor`) and the statistics alignment (`latent_statistics`) are x0 hooks, the windows
(`context_windows`) a predict wrapper. The x0 hooks see the whole blended x0 of a windowed run, so
the statistics alignment also steadies the clip across windows.

Continuing a clip: give the fusion stage the last frames of the previous clip as start frames; the
anchor then holds all fully given latent frames, and the statistics reference starts at the last of
them, so the new segment continues the old one's colour and brightness.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .conditioning import I2VConditioning, check_frames, latent_frames, normalize_latent
from .context_windows import WindowedPrediction
from .frame_anchor import FrameAnchor, anchor_target, given_latent_frames
from .latent_statistics import LatentStatisticsAlignment, frame_statistics
from .step_range import StepRange

TRAINED_LATENT_FRAMES = 21          # 81 video frames: the clip length Wan2.1 was trained on


def _check_fraction(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name}: expected a number in [0, 1], found {value!r}")


def _check_range(owner: str, prefix: str, start, end) -> None:
    _check_fraction(owner, f"{prefix}_start", start)
    _check_fraction(owner, f"{prefix}_end", end)
    if not start < end:
        raise ValueError(f"{owner}: {prefix}_start/{prefix}_end: expected start < end (fractions of the run's "
                         f"steps), found {start!r} >= {end!r}")


def _check_int(owner: str, name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name}: expected an integer >= {minimum}, found {value!r}")


@dataclass(frozen=True)
class FrameAlignment:
    """Frame alignment inside the sampler, on the x0 estimate (normalised latent space).

    anchor_strength: 0..1, how far the fully given leading latent frames (frame 0 of the start
      image) are pulled to their encoded conditioning latent at each step of the anchor range; 0 = off.
    anchor_start / anchor_end: the anchor's steps, as fractions of the run (step i of n acts when
      start <= (i-1)/n < end).
    stats_strength: 0..1, how far each latent frame's per-channel mean and log-std move to their
      slow component anchored to the start (see `latent_statistics`); 0 = off. Experimental: on
      Wan2.1-tiny it raised the colour drift (docs/benchmarks.md, "In the sampler").
    stats_start / stats_end: its steps (default: the second half, where the x0 estimate is sharp).
    stats_window: ± latent frames of the temporal low-pass (1 latent frame = 4 video frames).
    """

    anchor_strength: float = 0.0
    anchor_start: float = 0.0
    anchor_end: float = 1.0
    stats_strength: float = 0.0
    stats_start: float = 0.5
    stats_end: float = 1.0
    stats_window: int = 3

    def __post_init__(self):
        owner = "FrameAlignment"
        _check_fraction(owner, "anchor_strength", self.anchor_strength)
        _check_range(owner, "anchor", self.anchor_start, self.anchor_end)
        _check_fraction(owner, "stats_strength", self.stats_strength)
        _check_range(owner, "stats", self.stats_start, self.stats_end)
        _check_int(owner, "stats_window", self.stats_window, 1)

    @property
    def enabled(self) -> bool:
        return self.anchor_strength > 0 or self.stats_strength > 0


@dataclass(frozen=True)
class ContextWindows:
    """Windowed sampling over the latent time axis (see `context_windows`).

    length: latent frames per window (21 = 81 video frames, the trained length); a clip that fits
      in one window is sampled as usual.
    overlap: latent frames that neighbouring windows share at least (blended with raised-cosine ramps).
    closed_loop: the windows also wrap from the end to the start (a looping clip).
    """

    length: int = TRAINED_LATENT_FRAMES
    overlap: int = 5
    closed_loop: bool = False

    def __post_init__(self):
        owner = "ContextWindows"
        _check_int(owner, "length", self.length, 1)
        _check_int(owner, "overlap", self.overlap, 0)
        if self.overlap >= self.length:
            raise ValueError(f"{owner}: overlap: expected fewer latent frames than length={self.length}, "
                             f"found {self.overlap}")
        if not isinstance(self.closed_loop, bool):
            raise ValueError(f"{owner}: closed_loop: expected True or False, found {self.closed_loop!r}")

    @classmethod
    def from_video_frames(cls, frames: int = 81, overlap_frames: int = 20,
                          closed_loop: bool = False) -> "ContextWindows":
        """Windows given in video frames: `frames` of the form 4n+1, `overlap_frames` rounded up to whole
        latent frames (4 video frames each)."""
        check_frames(frames, name="ContextWindows.from_video_frames: frames")
        _check_int("ContextWindows.from_video_frames", "overlap_frames", overlap_frames, 0)
        return cls(latent_frames(frames), math.ceil(overlap_frames / 4), closed_loop)


def check_coherence(cond: I2VConditioning | None, alignment, windows, caller: str = "sample") -> None:
    """Refuse options of the wrong type, or that the conditioning cannot serve, before any heavy work.

    cond None: only the types are checked (a caller that has not built the conditioning yet).
    """
    if alignment is not None and not isinstance(alignment, FrameAlignment):
        raise ValueError(f"{caller}: alignment: expected a FrameAlignment or None, found {type(alignment).__name__}")
    if windows is not None and not isinstance(windows, ContextWindows):
        raise ValueError(f"{caller}: windows: expected a ContextWindows or None, found {type(windows).__name__}")
    if cond is not None and alignment is not None and alignment.anchor_strength > 0:
        given = given_latent_frames(cond.mask) if cond.has_image else 0
        if given == 0:
            raise ValueError(f"{caller}: alignment.anchor_strength: expected 0 for a conditioning whose first latent "
                             f"frame is not given (no start image), found {alignment.anchor_strength!r}")


def alignment_hooks(cond: I2VConditioning, alignment: FrameAlignment | None) -> list:
    """The x0 hooks of the options, anchor first (none when off)."""
    if alignment is None:
        return []
    hooks = []
    if alignment.anchor_strength > 0:
        hooks.append(FrameAnchor(anchor_target(cond), alignment.anchor_strength,
                                 StepRange(alignment.anchor_start, alignment.anchor_end)))
    if alignment.stats_strength > 0:
        anchor, anchor_frame = statistics_anchor(cond)
        hooks.append(LatentStatisticsAlignment(alignment.stats_strength, alignment.stats_window,
                                               StepRange(alignment.stats_start, alignment.stats_end),
                                               anchor, anchor_frame))
    return hooks


def statistics_anchor(cond: I2VConditioning):
    """(statistics [2C] of the last fully given latent frame, its index), or (None, 0): x0's frame 0."""
    given = given_latent_frames(cond.mask) if cond.has_image else 0
    if given == 0:
        return None, 0
    last_given = normalize_latent(cond.latent_image[:, :, given - 1:given])     # [1, 16, 1, h, w]
    return frame_statistics(last_given)[0], given - 1


def windowed_wrapper(cond: I2VConditioning, windows: ContextWindows | None,
                     outer: Callable | None) -> Callable | None:
    """The predict wrapper running the guided model window by window; a given `outer` wrapper wraps it."""
    if windows is None:
        return outer
    windowed = WindowedPrediction(cond.latent_shape[1], windows.length, windows.overlap, windows.closed_loop)
    if outer is None:
        return windowed

    def outer_around_windows(predict, x, timestep):
        return outer(lambda x_, t_: windowed(predict, x_, t_), x, timestep)

    return outer_around_windows

"""Argument checks of `align_frames`, run before any heavy work.

Every failure is a ValueError that names `align_frames`, the argument, what was expected and what
was found, so a ComfyUI user sees the cause in the node's error box.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

REFERENCES = ("window", "first")        # or an IMAGE tensor
METHOD_NAMES = ("lab", "mkl", "histogram")
VALUE_SLACK = 0.5                       # values in [-0.5, 1.5] pass (decoders overshoot a little)
DEFLICKER_ON = 1                        # deflicker=True: ±1 frame (a centred 3-frame mean)


@dataclass(frozen=True)
class AlignOptions:
    """Checked options of one `align_frames` call."""

    reference: str | torch.Tensor       # "window", "first" or IMAGE [1 or F, H', W', 3]
    method: str
    window: int                         # half-width of the temporal reference: ±window frames
    strength: float                     # 0 = unchanged .. 1 = full transform
    deflicker: int                      # half-width of the luma deflicker window; 0 = off


def _fail(argument: str, expected: str, found: object) -> ValueError:
    return ValueError(f"align_frames: {argument} must be {expected}, found {found}")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{value!r} ({type(value).__name__})"


def check_image(images: object, argument: str) -> None:
    """`images` must be a float tensor [N, H, W, 3] (ComfyUI IMAGE) with finite values near 0..1."""
    if not isinstance(images, torch.Tensor):
        raise _fail(argument, "a float tensor [frames, H, W, 3] (ComfyUI IMAGE)", _describe(images))
    if images.ndim != 4:
        raise _fail(argument, "a 4-d tensor [frames, H, W, 3] (ComfyUI IMAGE)",
                    f"{images.ndim} dimensions, shape {tuple(images.shape)}")
    if images.shape[-1] != 3:
        raise _fail(argument, "RGB with 3 channels last [frames, H, W, 3]",
                    f"{images.shape[-1]} channels, shape {tuple(images.shape)}")
    if min(images.shape[:3]) < 1:
        raise _fail(argument, "non-empty [frames >= 1, H >= 1, W >= 1, 3]", f"shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise _fail(argument, "a floating-point tensor with values in 0..1", f"dtype {images.dtype}")
    low, high = torch.aminmax(images.detach())
    low, high = float(low), float(high)
    if not (low == low and high == high) or abs(low) == float("inf") or abs(high) == float("inf"):
        raise _fail(argument, "finite values in 0..1", f"NaN or infinite values (min {low}, max {high})")
    if low < -VALUE_SLACK or high > 1 + VALUE_SLACK:
        hint = " (0..255 values? divide by 255)" if high > 2 else ""
        raise _fail(argument, "values in 0..1", f"values from {low:.4g} to {high:.4g}{hint}")


def _check_reference(reference: object, frames: torch.Tensor) -> str | torch.Tensor:
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise _fail("reference", f"one of {REFERENCES} or an IMAGE tensor", repr(reference))
        return reference
    check_image(reference, "reference")
    if reference.shape[0] not in (1, frames.shape[0]):
        raise _fail("reference", f"an IMAGE of 1 or {frames.shape[0]} frames (one per frame of `frames`)",
                    f"{reference.shape[0]} frames")
    return reference


def _check_int(value: object, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(argument, f"an integer >= {minimum}", _describe(value))
    return value


def _check_strength(strength: object) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise _fail("strength", "a number in 0..1", _describe(strength))
    return float(strength)


def _check_deflicker(deflicker: object) -> int:
    """False -> 0 (off), True -> DEFLICKER_ON, an int >= 0 -> that half-width."""
    if isinstance(deflicker, bool):
        return DEFLICKER_ON if deflicker else 0
    if not isinstance(deflicker, int) or deflicker < 0:
        raise _fail("deflicker", "a bool or a window half-width >= 0 (0 = off)", _describe(deflicker))
    return deflicker


def check_options(frames: object, reference: object, method: object, window: object, strength: object,
                  deflicker: object) -> AlignOptions:
    """All arguments of `align_frames` checked; raises ValueError on the first bad one."""
    check_image(frames, "frames")
    if method not in METHOD_NAMES:
        raise _fail("method", f"one of {METHOD_NAMES}", repr(method))
    window = _check_int(window, "window", 1)
    return AlignOptions(_check_reference(reference, frames), method, window, _check_strength(strength),
                        _check_deflicker(deflicker))

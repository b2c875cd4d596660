"""Frame alignment (colour / brightness consistency over time) and temporal metrics.

    from wan21_core.alignment import align_frames
    out = align_frames(frames)                  # IMAGE [F, H, W, 3] in 0..1 -> same shape/dtype/device
    out = align_frames(frames, reference=image, method="mkl", strength=0.5, deflicker=True)

    from wan21_core.metrics import flicker_index, color_drift, warp_error
"""
from .align import DEFAULT_METHOD, DEFAULT_WINDOW, METHODS, align_frames
from .delta_e import ciede2000
from .metrics import color_drift, flicker_index, warp_error
from .validate import REFERENCES

__all__ = ["DEFAULT_METHOD", "DEFAULT_WINDOW", "METHODS", "REFERENCES", "align_frames", "ciede2000", "color_drift",
           "flicker_index", "warp_error"]

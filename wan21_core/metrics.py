"""Temporal-consistency metrics of clips (flicker, colour drift, warping error); see `alignment.metrics`."""
from .alignment.metrics import color_drift, flicker_index, warp_error

__all__ = ["color_drift", "flicker_index", "warp_error"]

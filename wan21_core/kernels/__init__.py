"""Compiled CPU kernels of the bf16 DiT (the C source and its build-and-load step), with torch fallbacks."""
from .cpu import layer_norm_bf16, softmax_, try_rms_rope_

__all__ = ["layer_norm_bf16", "softmax_", "try_rms_rope_"]

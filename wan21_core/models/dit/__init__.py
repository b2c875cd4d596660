"""The Wan2.1 diffusion transformer: the model, its blocks, their per-token numerics, RoPE and attention."""
from .attention import BACKENDS, available_backends, set_attention_backend
from .model import WanModel

__all__ = ["BACKENDS", "WanModel", "available_backends", "set_attention_backend"]

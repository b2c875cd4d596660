"""The Wan2.1 3D causal VAE: the model with its streaming encode/decode, its blocks and spatial tiling."""
from .model import WanVAE

__all__ = ["WanVAE"]

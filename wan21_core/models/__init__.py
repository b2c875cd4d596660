"""The four Wan2.1 networks as plain `nn.Module`s (DiT, VAE, umT5 text encoder, CLIP image encoder) and
their configs. Nothing here reads files: `wan21_core.checkpoints` builds these models from checkpoints."""
from .configs import DiTConfig, VAEConfig
from .dit import WanModel
from .image_encoder import CROP_MODES, ClipVisionOutput, ImageEncoder
from .text_encoder import TextEncoder, UMT5Tokenizer
from .vae import WanVAE

__all__ = ["CROP_MODES", "ClipVisionOutput", "DiTConfig", "ImageEncoder", "TextEncoder", "UMT5Tokenizer",
           "VAEConfig", "WanModel", "WanVAE"]

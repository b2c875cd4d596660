"""Wan VAE Decode: latent -> frames, one latent frame at a time (memory does not grow with length)."""
from __future__ import annotations

from . import comfy_adapter as comfy
from . import vae_bridge
from .base import ANY_VAE, WanNode, tooltip


class WanVAEDecode(WanNode):
    DESCRIPTION = ("Decodes a Wan2.1 latent into frames with the causal VAE, one latent frame at a time. Accepts "
                   "this pack's VAE or ComfyUI's; the frames go to CreateVideo/SaveVideo or the upscaler.")
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The clip as an image batch [frames, H, W, 3] (clips of a batch one after another).",)

    @classmethod
    def inputs(cls):
        return {"required": {
            "samples": ("LATENT", tooltip("The latent from Wan Sampler (or ComfyUI's KSampler).")),
            "vae": (ANY_VAE, tooltip("The Wan2.1 VAE (this pack's or ComfyUI's).")),
            "tile_size": ("INT", tooltip("Spatial tile size in pixels; 0 = no tiling (the causal decode already "
                                         "streams frames; tile only very large frames).",
                                         default=0, min=0, max=4096, step=32)),
        }}

    def execute(self, samples, vae, tile_size):
        latent = samples["samples"]
        if latent.ndim != 5 or latent.shape[1] != 16:
            raise ValueError(f"samples: expected a Wan2.1 latent [B, 16, T, h, w], found {tuple(latent.shape)}")
        progress = comfy.Progress(latent.shape[0] * latent.shape[2])
        return (vae_bridge.decode(vae, latent, tile_size or None, progress.callback),)

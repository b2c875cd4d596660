"""Wan Fusion Conditioning: the image-to-video conditioning, in ComfyUI's native layout."""
from __future__ import annotations

import torch

from wan21_core.models import ClipVisionOutput
from wan21_core.sampling import (AREA_480P, check_frames, clip_features_of, fuse_frames, fusion_extras,
                                 join_clip_features, plan_fusion, with_extras)

from . import comfy_adapter as comfy
from . import vae_bridge
from .base import ANY_VAE, WanNode, tooltip

SIZE_MODES = ("exact", "official area")
MAX_SIDE = 4096


class WanFusionConditioning(WanNode):
    DESCRIPTION = ("Fuses prompts, image features and the start frame(s) into image-to-video conditioning: the "
                   "VAE latent of [start frames, grey frames...] and the frame mask, added to both CONDITIONINGs "
                   "exactly like ComfyUI's WanImageToVideo, so ComfyUI's KSampler can use it too.")
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = ("Prompt conditioning with the image conditioning added.",
                       "Negative conditioning with the image conditioning added.",
                       "An empty latent of the clip's shape, for the sampler.")

    @classmethod
    def inputs(cls):
        return {
            "required": {
                "positive": ("CONDITIONING", tooltip("Prompt conditioning (Wan T5 Text Encode or ComfyUI's CLIPTextEncode).")),
                "negative": ("CONDITIONING", tooltip("Negative prompt conditioning.")),
                "vae": (ANY_VAE, tooltip("The Wan2.1 VAE (this pack's or ComfyUI's) that encodes the start frames.")),
                "start_image": ("IMAGE", tooltip("Start frame(s); every image of a batch becomes a start frame.")),
                "width": ("INT", tooltip("Output width in pixels (multiple of 16). With size_mode 'official area' "
                                         "only width x height (the area) is used.", default=832, min=16, max=MAX_SIDE, step=16)),
                "height": ("INT", tooltip("Output height in pixels (multiple of 16).", default=480, min=16, max=MAX_SIDE, step=16)),
                "length": ("INT", tooltip("Number of frames, 4n+1 (81 = 5 s at 16 fps).", default=81, min=1, max=1025, step=4)),
                "batch_size": ("INT", tooltip("Clips per run (each gets its own noise).", default=1, min=1, max=64)),
                "size_mode": (list(SIZE_MODES), tooltip(
                    "exact: width x height as given; official area: keep the image's aspect ratio at the area "
                    "width x height, rounded down to multiples of 16 (the official Wan2.1 rule).", default="exact")),
                "crop": (["none", "center"], tooltip(
                    "How the start image meets the output shape. none: stretch (official); center: crop the middle "
                    "(ComfyUI's WanImageToVideo).", default="none")),
                "vae_tile": ("INT", tooltip("Spatial VAE tile size in pixels for encoding; 0 = off. Tiling bounds "
                                            "memory for large frames.", default=0, min=0, max=MAX_SIDE, step=32)),
            },
            "optional": {
                "clip_vision_output": ("CLIP_VISION_OUTPUT", tooltip("Image features of the start frame (Wan Image Encode)."),),
                "end_image": ("IMAGE", tooltip("Optional last frame (first-last-frame models, flf2v).")),
                "clip_vision_end": ("CLIP_VISION_OUTPUT", tooltip("Image features of the last frame (flf2v).")),
            },
        }

    def execute(self, positive, negative, vae, start_image, width, height, length, batch_size, size_mode, crop,
                vae_tile, clip_vision_output=None, end_image=None, clip_vision_end=None):
        check_frames(length, name="length")
        area = width * height if size_mode == "official area" else None
        exact = {} if area else {"width": width, "height": height}
        plan = plan_fusion(start_image, frames=length, max_area=area or AREA_480P, end_image=end_image, crop=crop,
                           **exact)
        progress = comfy.Progress(plan.latent_shape[1])
        latent, mask, features = fuse_frames(
            plan, lambda video: vae_bridge.encode(vae, video, vae_tile or None, progress.callback),
            lambda: _image_features(clip_vision_output, clip_vision_end))
        extras = fusion_extras(latent, mask, features)
        empty = torch.zeros(batch_size, *plan.latent_shape)
        return with_extras(positive, extras), with_extras(negative, extras), {"samples": empty}


def _image_features(start, end):
    """The start frame's features, or start+end concatenated along the tokens for flf2v."""
    if start is None or end is None:
        return start
    tokens = join_clip_features(clip_features_of(start), clip_features_of(end))   # [B, 514, 1280]
    return ClipVisionOutput(penultimate_hidden_states=tokens)

"""Text and image encoder nodes: they output ComfyUI's native CONDITIONING and CLIP_VISION_OUTPUT."""
from __future__ import annotations

from wan21_core.models import CROP_MODES
from wan21_core.sampling import pad_text

from .base import WAN_IMAGE_ENCODER, WAN_T5, WanNode, tooltip


class WanT5TextEncode(WanNode):
    DESCRIPTION = ("Encodes a prompt with umT5 the official Wan2.1 way (ftfy + whitespace cleaning, 512 tokens, "
                   "features trimmed to the prompt and zero-padded). The CONDITIONING also works with "
                   "ComfyUI's own Wan nodes.")
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("Text conditioning [1, 512, 4096], zero after the prompt's tokens.",)

    @classmethod
    def inputs(cls):
        return {"required": {
            "t5": (WAN_T5, tooltip("The umT5 text encoder from Wan T5 Loader.")),
            "text": ("STRING", tooltip("Prompt (or negative prompt). Longer than 512 tokens is cut with a warning; "
                                       "an empty negative prompt is allowed.", multiline=True, dynamicPrompts=True)),
        }}

    def execute(self, t5, text):
        with t5.use() as encoder:
            (features,) = encoder.encode([text])
        return ([[pad_text(features.float().cpu()), {"pooled_output": None}]],)


class WanImageEncode(WanNode):
    DESCRIPTION = ("Encodes the start image with the ViT-H/14 image encoder (hidden state after block 31 of 32). "
                   "crop=none is the official squash to 224x224; center matches ComfyUI's CLIPVisionEncode.")
    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    OUTPUT_TOOLTIPS = ("Image features (penultimate_hidden_states [1, 257, 1280]); also accepted by ComfyUI's "
                       "WanImageToVideo.",)

    @classmethod
    def inputs(cls):
        return {"required": {
            "image_encoder": (WAN_IMAGE_ENCODER, tooltip("The CLIP image encoder from Wan Image Encoder Loader.")),
            "image": ("IMAGE", tooltip("The start frame (the first image of a batch is used).")),
            "crop": (list(CROP_MODES), tooltip("none: squash to 224x224 (official); center: crop the middle square.",
                                               default="none")),
        }}

    def execute(self, image_encoder, image, crop):
        with image_encoder.use() as encoder:
            output = encoder.encode(image[:1], crop=crop)
        output.penultimate_hidden_states = output.penultimate_hidden_states.cpu()
        return (output,)

"""Test helpers for ComfyUI's data layout: our conditioning as native CONDITIONING."""
from __future__ import annotations

from wan21_core.sampling import I2VConditioning, fusion_extras, pad_text, with_extras


def to_comfy_conditioning(cond: I2VConditioning, clip_vision_output=None) -> tuple[list, list]:
    """(positive, negative) CONDITIONING carrying the fusion keys, like native WanImageToVideo.

    Text tensors are zero-padded to 512 rows as ComfyUI's umT5 encoder produces them.
    """
    extras = fusion_extras(cond.latent_image, cond.mask, clip_vision_output)
    positive = [[pad_text(cond.context), {"pooled_output": None}]]
    negative = [[pad_text(cond.context_null), {"pooled_output": None}]]
    return with_extras(positive, extras), with_extras(negative, extras)

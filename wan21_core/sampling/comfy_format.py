"""Conversion between `I2VConditioning` and ComfyUI's native CONDITIONING / LATENT layout.

This module only knows the data layout (plain lists, dicts and tensors); it never imports ComfyUI.
Native layout (ComfyUI 0.3.64, `WanImageToVideo` and `model_base.WAN21.concat_cond`):

    CONDITIONING = [[text [1, L, 4096], {"pooled_output": None,
                                         "concat_latent_image": raw VAE latent [1, 16, T, h, w],
                                         "concat_mask": [1, 1 or 4, T, h, w], 1 = generate / 0 = keep,
                                         "clip_vision_output": object with .penultimate_hidden_states}]]
    LATENT = {"samples": raw latent [B, 16, T, h, w]}

Inside the DiT the native code uses `1 - concat_mask` (1 = known frame), averaged to one channel
when it does not have 4 and then repeated to 4: the official mask layout of `conditioning.frame_mask`.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..models.configs import TEXT_LEN, DiTConfig
from .conditioning import I2VConditioning, trim_context

TEXT_DIM = DiTConfig.text_dim      # the umT5 width of the released DiTs (4096)


def clip_features_of(clip_vision_output) -> torch.Tensor | None:
    """`penultimate_hidden_states` of a CLIP_VISION_OUTPUT (ours or ComfyUI's), or None."""
    if clip_vision_output is None:
        return None
    features = getattr(clip_vision_output, "penultimate_hidden_states", None)
    if features is None:
        raise ValueError("clip_vision_output: expected an object carrying penultimate_hidden_states "
                         f"[B, 257, 1280], found {type(clip_vision_output).__name__} without it")
    return features


def fusion_extras(latent_image: torch.Tensor | None, mask: torch.Tensor | None, clip_vision_output=None) -> dict:
    """The keys native WanImageToVideo adds to a CONDITIONING entry.

    latent_image: raw VAE latent [1, 16, T, h, w]; mask: official mask [1, 4, T, h, w] (1 = keep).
    """
    extras = {}
    if latent_image is not None:
        extras["concat_latent_image"] = latent_image
        extras["concat_mask"] = 1.0 - mask                  # native: 1 = generate
    if clip_vision_output is not None:
        extras["clip_vision_output"] = clip_vision_output
    return extras


def with_extras(conditioning: list, extras: dict) -> list:
    """A copy of CONDITIONING with `extras` set on every entry (ComfyUI's conditioning_set_values)."""
    return [[text, {**options, **extras}] for text, options in conditioning]


def pad_text(context: torch.Tensor) -> torch.Tensor:
    """[L, 4096] -> [1, max(L, 512), 4096] with zero rows after the real tokens."""
    rows = max(context.shape[0], TEXT_LEN)
    return F.pad(context.float(), (0, 0, 0, rows - context.shape[0]))[None]


def from_comfy_conditioning(positive: list, negative: list, latent: dict | None = None, *,
                            text_dim: int = TEXT_DIM) -> I2VConditioning:
    """Build an `I2VConditioning` from native CONDITIONING (and an optional LATENT for the shape).

    The fusion keys are read from the positive entry (native nodes set them on both). A LATENT, if
    given, fixes the latent shape; otherwise it comes from `concat_latent_image`. text_dim: the
    width the DiT takes (its `config.text_dim`: 4096 for the released models, less for Wan2.1-tiny).
    """
    text, extras = _first_entry(positive, "positive", text_dim)
    text_null, _ = _first_entry(negative, "negative", text_dim)
    clip_fea = clip_features_of(extras.get("clip_vision_output"))
    latent_image = extras.get("concat_latent_image")
    shape = _latent_shape(latent, latent_image)
    mask = None
    if latent_image is not None:
        latent_image = _fit(latent_image.float(), shape, "concat_latent_image")
        mask = official_mask(extras.get("concat_mask"), shape)
    if clip_fea is not None:
        clip_fea = clip_fea[:1].float()
    return I2VConditioning(context=trim_context(text, "positive"), context_null=trim_context(text_null, "negative"),
                           clip_fea=clip_fea, latent_image=latent_image, mask=mask, latent_shape=shape)


def official_mask(concat_mask: torch.Tensor | None, shape: tuple) -> torch.Tensor:
    """Native `concat_mask` (1 = generate) -> official 4-channel mask [1, 4, T, h, w] (1 = keep).

    A missing mask means "nothing known" (all zeros), as in the native model.
    """
    _, frames, lat_h, lat_w = shape
    if concat_mask is None:
        return torch.zeros(1, 4, frames, lat_h, lat_w)
    mask = concat_mask.float()
    if mask.ndim == 4:                                      # [B, T, h, w] -> [B, 1, T, h, w]
        mask = mask[:, None]
    if mask.ndim != 5:
        raise ValueError(f"concat_mask: expected [1, 1 or 4, T, h, w], found shape {tuple(concat_mask.shape)}")
    if mask.shape[1] != 4:
        mask = mask.mean(dim=1, keepdim=True)
    keep = 1.0 - mask[:1]
    keep = _fit_spatial(keep, lat_h, lat_w)
    keep = F.pad(keep, (0, 0, 0, 0, 0, max(0, frames - keep.shape[2])))[:, :, :frames]
    return keep.expand(1, 4, frames, lat_h, lat_w).contiguous()


def _first_entry(conditioning: list, name: str, text_dim: int) -> tuple[torch.Tensor, dict]:
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise ValueError(f"{name}: expected ComfyUI CONDITIONING (a list of [tensor, dict]), found {type(conditioning).__name__}")
    if len(conditioning) > 1:
        warnings.warn(f"{name}: {len(conditioning)} conditioning entries; Wan2.1 uses only the first")
    entry = conditioning[0]
    if len(entry) != 2 or not isinstance(entry[0], torch.Tensor):
        raise ValueError(f"{name}: expected [tensor [1, L, {text_dim}], dict] entries, found {type(entry).__name__}")
    if entry[0].shape[-1] != text_dim:
        raise ValueError(f"{name}: expected umT5 text features of width {text_dim} (a Wan text encoder), "
                         f"found width {entry[0].shape[-1]}")
    return entry[0], dict(entry[1])


def _latent_shape(latent: dict | None, latent_image: torch.Tensor | None) -> tuple:
    if latent is not None:
        samples = latent["samples"] if isinstance(latent, dict) else latent
        if samples.ndim != 5 or samples.shape[1] != 16:
            raise ValueError(f"latent: expected a Wan2.1 latent [B, 16, T, h, w], found {tuple(samples.shape)}")
        return tuple(samples.shape[1:])
    if latent_image is None:
        raise ValueError("latent: required when the conditioning carries no concat_latent_image")
    return tuple(latent_image.shape[1:])


def _fit(latent_image: torch.Tensor, shape: tuple, name: str) -> torch.Tensor:
    """Bring the conditioning latent to the generated latent's size (native does the same)."""
    _, frames, lat_h, lat_w = shape
    if latent_image.ndim != 5 or latent_image.shape[1] != 16:
        raise ValueError(f"{name}: expected [1, 16, T, h, w], found {tuple(latent_image.shape)}")
    out = _fit_spatial(latent_image[:1], lat_h, lat_w)
    return F.pad(out, (0, 0, 0, 0, 0, max(0, frames - out.shape[2])))[:, :, :frames]


def _fit_spatial(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if x.shape[-2:] == (height, width):
        return x
    b, c, t = x.shape[:3]
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, *x.shape[-2:])         # [B*T, C, h', w']
    frames = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False)
    return frames.reshape(b, t, c, height, width).permute(0, 2, 1, 3, 4)

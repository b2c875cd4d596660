"""The CLIP image encoder of Wan2.1: the ViT-H/14 visual tower of open-clip `xlm-roberta-large-ViT-H-14`
(official `wan/modules/clip.py`, `CLIPModel`), run by transformers' `CLIPVisionModel` under its own
parameter names (`wan21_core.checkpoints` maps the official `.pth` onto them once, at read time).

Wan uses the hidden state after block 31 of 32 (`hidden_states[-2]`), 257 tokens including CLS,
with no post-norm and no projection. The encoder here never computes the last block unless the
caller asks for `last_hidden_state`.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from .configs import CLIP_HEAD_DIM

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CROP_MODES = ("none", "center")


# ------------------------------------------------------------------------------------- configs

def clip_vision_config(hidden_size: int, intermediate_size: int, num_layers: int, image_size: int,
                       patch_size: int, num_channels: int = 3, projection_dim: int = 1024) -> CLIPVisionConfig:
    """A CLIP vision config with the Wan2.1 settings: exact GELU, LayerNorm eps 1e-5, heads of 80."""
    if hidden_size % CLIP_HEAD_DIM:
        raise ValueError(f"CLIP vision width {hidden_size} is not a multiple of the head size {CLIP_HEAD_DIM}; "
                         f"the head count cannot be read from the weights and is taken as width / {CLIP_HEAD_DIM}")
    return CLIPVisionConfig(
        hidden_size=hidden_size, intermediate_size=intermediate_size, num_hidden_layers=num_layers,
        num_attention_heads=hidden_size // CLIP_HEAD_DIM, image_size=image_size, patch_size=patch_size,
        num_channels=num_channels, projection_dim=projection_dim, hidden_act="gelu", layer_norm_eps=1e-5,
        attention_dropout=0.0)


def clip_vit_h14_config() -> CLIPVisionConfig:
    """The released ViT-H/14: 224 px, patch 14, width 1280, 32 layers, 16 heads, MLP 5120."""
    return clip_vision_config(hidden_size=1280, intermediate_size=5120, num_layers=32, image_size=224, patch_size=14)


# ------------------------------------------------------------------------------------- preprocessing

def as_rgb_images(image: torch.Tensor) -> torch.Tensor:
    """A ComfyUI IMAGE-like tensor as float [B, H, W, 3].

    Accepts [B,H,W,C] or [H,W,C] with C in (1, 3, 4), and grayscale [H,W]. One channel is repeated
    to RGB; an alpha channel is dropped (with a warning). Values are used as given (0..1 expected;
    values outside are not clamped).
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image: expected a torch.Tensor [B,H,W,3], found {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"image: expected a float tensor with values in 0..1, found dtype {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]                 # [H,W] -> [H,W,1]
    if image.ndim == 3:
        image = image[None]                      # [H,W,C] -> [1,H,W,C]
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected channels-last [B,H,W,C] with C in 1, 3 or 4 (or [H,W,C], [H,W]), "
                         f"found shape {tuple(image.shape)}")
    if image.shape[1] == 0 or image.shape[2] == 0 or image.shape[0] == 0:
        raise ValueError(f"image: found an empty tensor of shape {tuple(image.shape)}")
    if image.shape[-1] == 4:
        warnings.warn("image: RGBA input, the alpha channel is dropped for the CLIP image encoder", stacklevel=3)
        image = image[..., :3]
    elif image.shape[-1] == 1:
        image = image.expand(-1, -1, -1, 3)
    return image


def preprocess(image: torch.Tensor, crop: str = "none", size: int = 224) -> torch.Tensor:
    """Image(s) 0..1 -> normalized CLIP pixel values, float32 [B, 3, size, size].

    crop="none" is the official Wan2.1 recipe (`wan/modules/clip.py`, `CLIPModel.visual`): map to [-1, 1], squash-resize to
    size x size with torch bicubic (no crop, no antialias), map back to [0, 1], CLIP mean/std.
    crop="center" is ComfyUI's `CLIPVisionEncode` with crop "center" (`clip_preprocess(crop=True)`):
    scale the short side to `size` (bicubic with antialias), center-crop, quantize to 8 bits, mean/std.
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop: expected one of {CROP_MODES}, found {crop!r}")
    pixels = as_rgb_images(image).float().movedim(-1, 1)            # [B,H,W,3] -> [B,3,H,W]
    pixels = _resize_official(pixels, size) if crop == "none" else _resize_center_crop(pixels, size)
    mean = pixels.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = pixels.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _resize_official(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Official order of operations: [0,1] -> [-1,1] -> bicubic squash -> [0,1]."""
    signed = pixels.sub(0.5).div(0.5)
    resized = F.interpolate(signed, size=(size, size), mode="bicubic", align_corners=False)
    return resized.mul(0.5).add(0.5)


def _resize_center_crop(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """ComfyUI's crop: short side to `size` (antialiased bicubic), center crop, 8-bit quantization."""
    height, width = pixels.shape[-2:]
    if (height, width) != (size, size):
        scale = size / min(height, width)
        pixels = F.interpolate(pixels, size=(round(scale * height), round(scale * width)), mode="bicubic",
                               antialias=True)
        top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
        pixels = pixels[:, :, top:top + size, left:left + size]
    return torch.clip(255.0 * pixels, 0, 255).round() / 255.0


# ------------------------------------------------------------------------------------- encoder

@dataclass
class ClipVisionOutput:
    """What ComfyUI passes as CLIP_VISION_OUTPUT; attribute and item access (`out["..."]`).

    penultimate_hidden_states: [B, 257, 1280] for ViT-H/14, the state after block 31 of 32 (what Wan uses).
    last_hidden_state: after the last block; None unless `encode(..., with_last_hidden_state=True)`.
    image_embeds / mm_projected: None (Wan uses no projection).
    """

    penultimate_hidden_states: torch.Tensor
    last_hidden_state: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    mm_projected: torch.Tensor | None = None
    image_sizes: list = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)


class ImageEncoder:
    """CLIP ViT-H/14 visual tower: IMAGE [B,H,W,3] in 0..1 -> `ClipVisionOutput`."""

    def __init__(self, model: CLIPVisionModel):
        self.model = model.eval().requires_grad_(False)
        # transformers 4.x nests the tower under `vision_model`; 5.x does not.
        self._tower = getattr(model, "vision_model", model)
        layers = list(self._tower.encoder.layers)
        if not layers:
            raise ValueError("CLIP vision model: expected at least one transformer layer, found none")
        self._first_layers = _encoder_over(self._tower.encoder, layers[:-1])   # shares the modules
        self._last_layer = _encoder_over(self._tower.encoder, layers[-1:])

    @property
    def device(self) -> torch.device:
        return self._tower.embeddings.patch_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self._tower.embeddings.patch_embedding.weight.dtype

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def to(self, device: torch.device | str) -> "ImageEncoder":
        self.model.to(device)   # the layer views share these modules
        return self

    def preprocess(self, image: torch.Tensor, crop: str = "none") -> torch.Tensor:
        """Normalized pixel values float32 [B, 3, S, S] (see `preprocess`)."""
        return preprocess(image, crop=crop, size=self.image_size)

    def encode(self, image: torch.Tensor, crop: str = "none", with_last_hidden_state: bool = False,
               output_dtype: torch.dtype | None = torch.float32) -> ClipVisionOutput:
        """Encode image(s); crop "none" is the official squash resize, "center" ComfyUI's center crop.

        Only the first N-1 blocks run unless `with_last_hidden_state`. `output_dtype=None` keeps
        the model dtype. Results are on the model's device.
        """
        if isinstance(image, torch.Tensor):
            image = image.to(self.device)   # resize where the model runs, as officially
        pixels = self.preprocess(image, crop).to(self.dtype)
        with torch.inference_mode():
            hidden = self._tower.pre_layrnorm(self._tower.embeddings(pixels))   # [B, 1+grid², D]
            penultimate = self._first_layers(inputs_embeds=hidden)[0]
            last = self._last_layer(inputs_embeds=penultimate)[0] if with_last_hidden_state else None
        dtype = output_dtype or penultimate.dtype
        return ClipVisionOutput(
            penultimate_hidden_states=penultimate.to(dtype),
            last_hidden_state=None if last is None else last.to(dtype),
            image_sizes=[tuple(pixels.shape[1:])] * pixels.shape[0])


def _encoder_over(encoder: nn.Module, layers: list[nn.Module]) -> nn.Module:
    """A transformers `CLIPEncoder` running only `layers` (shared, not copied)."""
    config = copy.deepcopy(encoder.config)
    config.num_hidden_layers = 0
    with torch.device("meta"):
        part = type(encoder)(config)
    part.layers = nn.ModuleList(layers)
    return part.eval()

"""The CLIP image encoder of Wan2.1 (WAN21_SPEC §5): the ViT-H/14 visual tower of open-clip
`xlm-roberta-large-ViT-H-14`, run by transformers' `CLIPVisionModel`.

Canonical (official) key names are the `visual.*` keys of
`models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth` without the `visual.` prefix (§5.3):
`patch_embedding.weight`, `cls_embedding`, `pos_embedding`, `pre_norm.*`,
`transformer.{i}.{norm1,attn.to_qkv,attn.proj,norm2,mlp.0,mlp.2}.*`, `post_norm.*`, `head`.
ComfyUI's `clip_vision_h.safetensors` uses the transformers names with a `vision_model.` prefix
(plus `visual_projection.weight`); transformers 5.x `CLIPVisionModel` state dicts have no prefix.

Wan uses the hidden state after block 31 of 32 (`hidden_states[-2]`), 257 tokens including CLS,
with no post-norm and no projection. The encoder here never computes the last block unless the
caller asks for `last_hidden_state`.
"""
from __future__ import annotations

import copy
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from .configs import CLIP_HEAD_DIM
from ..checkpoints.keymaps import reject_unknown_keys

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CROP_MODES = ("none", "center")

_HF_PREFIX = "vision_model."
_TOP_KEYS = {  # official -> transformers, parameters that only change name
    "patch_embedding.weight": "embeddings.patch_embedding.weight",
    "pre_norm.weight": "pre_layrnorm.weight",
    "pre_norm.bias": "pre_layrnorm.bias",
    "post_norm.weight": "post_layernorm.weight",
    "post_norm.bias": "post_layernorm.bias",
}
_LAYER_MODULES = {  # official -> transformers module inside layer i
    "norm1": "layer_norm1",
    "norm2": "layer_norm2",
    "attn.proj": "self_attn.out_proj",
    "mlp.0": "mlp.fc1",
    "mlp.2": "mlp.fc2",
}
_QKV = ("q_proj", "k_proj", "v_proj")   # order of the rows of the official `to_qkv`
_OFFICIAL_LAYER = re.compile(r"transformer\.(\d+)\.(.+)\.(weight|bias)")
_HF_LAYER = re.compile(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")
_HF_BUFFERS = ("embeddings.position_ids",)   # saved by some transformers versions; not a weight


# ------------------------------------------------------------------------------------- key maps

def clip_official_to_hf(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official visual-tower names -> `CLIPVisionModel` names without the `vision_model.` prefix.

    `to_qkv` is split into views; `head` [D, P] becomes `visual_projection.weight` [P, D] (a view).
    """
    out, unknown = {}, []
    for key, tensor in sd.items():
        layer = _OFFICIAL_LAYER.fullmatch(key)
        if key in _TOP_KEYS:
            out[_TOP_KEYS[key]] = tensor
        elif key == "cls_embedding":
            out["embeddings.class_embedding"] = tensor.reshape(tensor.shape[-1])            # [1,1,D] -> [D]
        elif key == "pos_embedding":
            out["embeddings.position_embedding.weight"] = tensor.reshape(tensor.shape[-2:])  # [1,N,D] -> [N,D]
        elif key == "head":
            out["visual_projection.weight"] = tensor.t()                                     # [D,P] -> [P,D]
        elif layer and layer.group(2) == "attn.to_qkv":
            i, param = layer.group(1), layer.group(3)
            for name, part in zip(_QKV, tensor.chunk(3, dim=0)):                              # [3D,...] -> 3x[D,...]
                out[f"encoder.layers.{i}.self_attn.{name}.{param}"] = part
        elif layer and layer.group(2) in _LAYER_MODULES:
            i, module, param = layer.groups()
            out[f"encoder.layers.{i}.{_LAYER_MODULES[module]}.{param}"] = tensor
        else:
            unknown.append(key)
    reject_unknown_keys(unknown, "official CLIP visual", "CLIP vision-tower weights")
    return out


def clip_hf_to_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`CLIPVisionModel(WithProjection)` names, with or without `vision_model.` -> official names.

    The q/k/v projections are concatenated into `to_qkv` (the only copy); the `position_ids`
    buffer that some transformers versions save is dropped.
    """
    top = {hf: official for official, hf in _TOP_KEYS.items()}
    modules = {hf: official for official, hf in _LAYER_MODULES.items()}
    out, qkv, unknown = {}, {}, []
    for key, tensor in sd.items():
        name = key[len(_HF_PREFIX):] if key.startswith(_HF_PREFIX) else key
        layer = _HF_LAYER.fullmatch(name)
        if name in _HF_BUFFERS:
            continue
        if name in top:
            out[top[name]] = tensor
        elif name == "embeddings.class_embedding":
            out["cls_embedding"] = tensor.reshape(1, 1, -1)
        elif name == "embeddings.position_embedding.weight":
            out["pos_embedding"] = tensor.unsqueeze(0)
        elif name == "visual_projection.weight":
            out["head"] = tensor.t()
        elif layer and layer.group(2).startswith("self_attn.") and layer.group(2)[10:] in _QKV:
            i, module, param = layer.groups()
            qkv.setdefault((i, param), {})[module[10:]] = tensor
        elif layer and layer.group(2) in modules:
            i, module, param = layer.groups()
            out[f"transformer.{i}.{modules[module]}.{param}"] = tensor
        else:
            unknown.append(key)
    reject_unknown_keys(unknown, "Hugging Face CLIP vision", "CLIP vision-tower weights")
    for (i, param), parts in qkv.items():
        missing = [n for n in _QKV if n not in parts]
        if missing:
            raise KeyError(f"Hugging Face CLIP vision state dict: layer {i} has no self_attn.{missing[0]}.{param}")
        out[f"transformer.{i}.attn.to_qkv.{param}"] = torch.cat([parts[n] for n in _QKV], dim=0)
    return out


# ------------------------------------------------------------------------------------- configs

def _clip_config(hidden_size: int, intermediate_size: int, num_layers: int, image_size: int,
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
    return _clip_config(hidden_size=1280, intermediate_size=5120, num_layers=32, image_size=224, patch_size=14)


def clip_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> CLIPVisionConfig:
    """Read the visual-tower size from official-named weights (heads = width / 80)."""
    missing = [k for k in ("patch_embedding.weight", "pos_embedding", "transformer.0.mlp.0.weight") if k not in sd]
    if missing:
        raise KeyError(f"official CLIP visual state dict: missing {', '.join(missing)} (found {len(sd)} keys)")
    hidden_size, num_channels, patch_size, _ = sd["patch_embedding.weight"].shape     # [D, C, p, p]
    tokens = sd["pos_embedding"].shape[-2]                                             # 1 + grid²
    grid = math.isqrt(tokens - 1)
    if grid * grid != tokens - 1:
        raise ValueError(f"official CLIP visual state dict: pos_embedding has {tokens} tokens, "
                         f"expected 1 + a square number of patches")
    num_layers = 1 + max(int(m.group(1)) for m in map(_OFFICIAL_LAYER.fullmatch, sd) if m)
    projection_dim = sd["head"].shape[-1] if "head" in sd else 1024
    return _clip_config(hidden_size=hidden_size, intermediate_size=sd["transformer.0.mlp.0.weight"].shape[0],
                        num_layers=num_layers, image_size=grid * patch_size, patch_size=patch_size,
                        num_channels=num_channels, projection_dim=projection_dim)


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

    crop="none" is the official Wan2.1 recipe (WAN21_SPEC §5.2): map to [-1, 1], squash-resize to
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

    @classmethod
    def from_official_state_dict(cls, sd: Mapping[str, torch.Tensor], device: torch.device | str = "cpu",
                                 dtype: torch.dtype | None = None) -> "ImageEncoder":
        """Build from official-named weights. dtype None: float16 on CUDA (official), float32 elsewhere.

        Tensors already on `device` in `dtype` become the model's parameters without a copy.
        """
        device = torch.device(device)
        dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        return cls(_load_on_meta(sd, device, dtype))

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


def _load_on_meta(sd: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> CLIPVisionModel:
    """Build on the meta device and adopt the official-named tensors (no second copy of the weights)."""
    config = clip_config_from_state_dict(sd)
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    hf_names = model.state_dict()
    missing = sorted(set(clip_hf_to_official(hf_names)) - set(sd))   # meta tensors: names only, no data
    if missing:
        raise KeyError(f"official CLIP visual state dict: missing {len(missing)} weights of the detected "
                       f"{config.num_hidden_layers}-layer tower: {', '.join(missing[:8])}")
    prefix = _HF_PREFIX if any(k.startswith(_HF_PREFIX) for k in hf_names) else ""   # transformers 4.x
    tensors = {prefix + k: v.to(device=device, dtype=dtype)
               for k, v in clip_official_to_hf(sd).items() if k != "visual_projection.weight"}
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"CLIP vision weights do not fit the detected config: {err}") from None
    _rebuild_position_ids(model, device)
    return model


def _encoder_over(encoder: nn.Module, layers: list[nn.Module]) -> nn.Module:
    """A transformers `CLIPEncoder` running only `layers` (shared, not copied)."""
    config = copy.deepcopy(encoder.config)
    config.num_hidden_layers = 0
    with torch.device("meta"):
        part = type(encoder)(config)
    part.layers = nn.ModuleList(layers)
    return part.eval()


def _rebuild_position_ids(model: CLIPVisionModel, device: torch.device) -> None:
    """Re-create the non-persistent `position_ids` buffer left on the meta device, then check none is left."""
    for module in model.modules():
        buffer = getattr(module, "position_ids", None)
        if isinstance(buffer, torch.Tensor) and buffer.is_meta:
            positions = torch.arange(buffer.shape[-1], device=device).expand(buffer.shape)
            module.register_buffer("position_ids", positions, persistent=False)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"CLIP vision model: tensors left uninitialised after loading: {', '.join(left)}")

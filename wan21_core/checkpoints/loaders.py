"""Public loaders: any supported checkpoint file or folder → a ready model.

```
dit = load_dit(path, device="cpu", dtype=None)          # WanModel
vae = load_vae(path, device="cpu", dtype=torch.float32) # WanVAE
te = load_text_encoder(path)                            # TextEncoder: te.encode([...]) -> [L_i, 4096]
ie = load_image_encoder(path)                           # ImageEncoder: ie.encode(image) -> ClipVisionOutput
```
`path` may be a single file (.safetensors, .pth), a shard or shard index of a sharded
safetensors set, a diffusers/transformers model folder, a diffusers pipeline folder or an
official Wan2.1 release folder (see `files`). Models are built on the meta device and receive the
checkpoint tensors, under their canonical names (see `keymaps`), by `load_state_dict(assign=True)`;
each tensor is read, converted and moved on its own, so no second full copy of the weights exists.
`vae_from_state_dict`, `text_encoder_from_state_dict` and `image_encoder_from_state_dict` build the
same models from canonical-named tensors already in memory.

dtype defaults (`dtype=None`):
- DiT: the stored floating dtype (fp32 / fp16 / bf16); fp8 files are dequantised to bfloat16.
  Parameters that `WanModel.keeps_fp32` names stay float32 whatever the dtype.
  An fp8 dtype (`torch.float8_e4m3fn` / `float8_e5m2`) keeps the Linear weights in fp8
  (`FP8Linear`, dequantised per call in `compute_dtype`, default bfloat16).
- VAE: float32 (the official VAE computes in float32).
- T5: bfloat16 (the official encoder runs in bfloat16).
- CLIP: float16 on CUDA (the official dtype), float32 elsewhere.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

import torch

from .assembly import check_keys, check_plain_dtype, config_or_error, expected_shapes, finish, read_state
from .checkpoint import CheckpointError, open_checkpoint
from .configs import clip_config_from_shapes, dit_config_from_shapes, t5_config_from_shapes, vae_config_from_shapes
from .fp8 import is_fp8, swap_linears_for_fp8
from .keymaps import T5_TIED

__all__ = ["default_dit_dtype", "load_dit", "load_vae", "load_text_encoder", "load_image_encoder",
           "vae_from_state_dict", "text_encoder_from_state_dict", "image_encoder_from_state_dict", "CheckpointError"]

PathLike = str | os.PathLike
_MODEL_TYPE_NAMES = {"t2v": "text-to-video", "i2v": "image-to-video", "flf2v": "first-last-frame-to-video"}


# ------------------------------------------------------------------------------------- DiT

def load_dit(path: PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None, *,
             compute_dtype: torch.dtype | None = None, require: str | Iterable[str] | None = None,
             num_heads: int | None = None):
    """Load a Wan2.1 DiT (`WanModel`) from any supported file, shard index or folder.

    require: a model type or several ("i2v", ("i2v", "flf2v")); another type is a CheckpointError.
    num_heads: override the head count (default dim / 128, as in every released Wan2.1 DiT).
    compute_dtype: the dtype of the matmuls (default: the model's own default, bfloat16 for fp8).
    """
    from ..models.dit import WanModel

    checkpoint = open_checkpoint(path, "dit")
    try:
        config = dit_config_from_shapes(checkpoint.shapes(), num_heads, checkpoint.path)
        _check_model_type(checkpoint.path, config, require)
        stored = checkpoint.stored_dtype()
        fp8_storage = dtype if dtype is not None and is_fp8(dtype) else None
        weight_dtype = _dit_weight_dtype(dtype, stored)
        with torch.device("meta"):
            model = WanModel(config)
        if fp8_storage is not None:
            compute = compute_dtype or torch.bfloat16
            swap_linears_for_fp8(model, fp8_storage, compute, keep=WanModel.keeps_fp32)
        expected = expected_shapes(model)
        check_keys(checkpoint, expected)

        def target(key: str) -> torch.dtype:
            return torch.float32 if WanModel.keeps_fp32(key) else weight_dtype
        state = read_state(checkpoint, expected, target, device, model)
        model.load_state_dict(state, strict=True, assign=True)
    finally:
        checkpoint.close()
    if compute_dtype is not None or fp8_storage is not None:
        model.compute_dtype = compute_dtype or torch.bfloat16
    return finish(model, device)


def _dit_weight_dtype(dtype: torch.dtype | None, stored: torch.dtype) -> torch.dtype:
    """Parameter dtype of the non-fp32, non-fp8 tensors."""
    if dtype is None:
        return torch.bfloat16 if is_fp8(stored) else stored
    if is_fp8(dtype):
        return torch.bfloat16
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating dtype, found {dtype}")
    return dtype


def default_dit_dtype(info, device: torch.device | str) -> torch.dtype | None:
    """The weight dtype a DiT file gets when the user asks for none (`load_dit(dtype=...)`).

    fp8 files stay fp8 (dequantised per layer); fp16 weights computing on a CPU become float32 (as
    in ComfyUI: CPUs have no fast, accurate fp16 matmul); otherwise None, the stored dtype.
    `info` is the file's `CheckpointInfo` (`inspect_checkpoint(path, "dit")`).
    """
    if info.fp8 is not None:
        return info.fp8
    on_cpu = torch.device(device).type == "cpu"
    return torch.float32 if on_cpu and info.stored_dtype == torch.float16 else None


def _check_model_type(path: str, config, require: str | Iterable[str] | None) -> None:
    if require is None:
        return
    allowed = (require,) if isinstance(require, str) else tuple(require)
    if config.model_type in allowed:
        return
    wanted = " or ".join(f"{t} ({_MODEL_TYPE_NAMES.get(t, t)})" for t in allowed)
    hint = " such as wan2.1_i2v_480p_14B_fp16.safetensors" if "i2v" in allowed else ""
    raise CheckpointError(
        f"{path}: this is a {config.model_type} ({_MODEL_TYPE_NAMES[config.model_type]}) Wan2.1 DiT "
        f"(in_dim {config.in_dim}{', no image cross-attention' if config.model_type == 't2v' else ''}); "
        f"expected {'an' if wanted[0] in 'aeiou' else 'a'} {wanted} checkpoint{hint}")


# ------------------------------------------------------------------------------------- VAE

def load_vae(path: PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = torch.float32):
    """Load the Wan2.1 VAE (`WanVAE`); dtype None keeps the stored dtype."""
    from ..models.vae import WanVAE

    checkpoint = open_checkpoint(path, "vae")
    try:
        config = config_or_error(checkpoint, vae_config_from_shapes)
        with torch.device("meta"):
            model = WanVAE(config)
        expected = expected_shapes(model)
        check_keys(checkpoint, expected)
        state = read_state(checkpoint, expected, lambda key: dtype, device, model)
        model.load_state_dict(state, strict=True, assign=True)
    finally:
        checkpoint.close()
    return finish(model, device)


def vae_from_state_dict(state: Mapping[str, torch.Tensor], device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None):
    """A `WanVAE` adopting official-named tensors (strict); without dtype/device they are used as they are."""
    from ..models.vae import WanVAE

    with torch.device("meta"):
        model = WanVAE(vae_config_from_shapes(state))
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


# ------------------------------------------------------------------------------------- text encoder

def load_text_encoder(path: PathLike, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.bfloat16, tokenizer=None):
    """Load the umT5 text encoder with its tokenizer (`TextEncoder`).

    tokenizer: a `UMT5Tokenizer`, spiece bytes, a `spiece.model` / `tokenizer.json` path or a
    folder. By default it is the `spiece_model` tensor embedded in ComfyUI's files, else a
    tokenizer folder next to the weights (diffusers `tokenizer/`, official `google/umt5-xxl/`).
    """
    check_plain_dtype(dtype, "load_text_encoder")
    checkpoint = open_checkpoint(path, "t5")
    try:
        model = _meta_umt5(config_or_error(checkpoint, t5_config_from_shapes))
        expected = _untied(expected_shapes(model))
        check_keys(checkpoint, expected)
        source = tokenizer if tokenizer is not None else checkpoint.tokenizer_source()
        if source is None:
            raise CheckpointError(
                f"{checkpoint.path}: no umT5 tokenizer found. Expected a 'spiece_model' tensor in the file "
                f"(as in ComfyUI's umt5_xxl_*.safetensors) or a tokenizer folder with spiece.model / "
                f"tokenizer.json next to the weights (diffusers tokenizer/, official google/umt5-xxl/); "
                f"pass tokenizer=<path>")
        state = {key: checkpoint.read(key, dtype, device) for key in expected}
    finally:
        checkpoint.close()
    try:
        return _text_encoder(model, state, source)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise CheckpointError(f"{checkpoint.path}: {err.args[0] if err.args else err}") from None


def text_encoder_from_state_dict(state: Mapping[str, torch.Tensor], tokenizer, device: torch.device | str = "cpu",
                                 dtype: torch.dtype = torch.bfloat16):
    """A `TextEncoder` from `UMT5EncoderModel`-named tensors and a tokenizer (anything `UMT5Tokenizer.load`
    takes). The official model runs in bf16; float32 works too. Tensors already on `device` in `dtype`
    become the parameters without a copy."""
    check_plain_dtype(dtype, "text_encoder_from_state_dict")
    model = _meta_umt5(t5_config_from_shapes(state))
    missing = sorted(set(_untied(expected_shapes(model))) - set(state))
    if missing:
        raise KeyError(f"umT5 state dict: missing {len(missing)} weights of the detected "
                       f"{model.config.num_layers}-layer encoder: {', '.join(missing[:8])}")
    return _text_encoder(model, {k: v.to(device=device, dtype=dtype) for k, v in state.items()}, tokenizer)


def _meta_umt5(config):
    from transformers import UMT5EncoderModel

    with torch.device("meta"):
        return UMT5EncoderModel(config)


def _untied(shapes: dict) -> dict:
    """The expected keys without the second name of the tied input embedding."""
    return {k: v for k, v in shapes.items() if not any(k.startswith(alias + ".") for alias, _ in T5_TIED)}


def _text_encoder(model, state: Mapping[str, torch.Tensor], tokenizer):
    """Adopt the tensors (the tied embedding under both names) and pair the model with its tokenizer."""
    from ..models.text_encoder import TextEncoder, UMT5Tokenizer

    tied = {alias + ".weight": state[canonical + ".weight"] for alias, canonical in T5_TIED
            if canonical + ".weight" in state}
    try:
        model.load_state_dict({**state, **tied}, strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"umT5 weights do not fit the detected config: {err}") from None
    model.set_input_embeddings(model.shared)   # one embedding module under both names
    if not isinstance(tokenizer, UMT5Tokenizer):
        tokenizer = UMT5Tokenizer.load(tokenizer)
    return TextEncoder(model.eval().requires_grad_(False), tokenizer)


# ------------------------------------------------------------------------------------- image encoder

def load_image_encoder(path: PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
    """Load the CLIP ViT-H/14 visual tower (`ImageEncoder`); dtype None: fp16 on CUDA, else fp32."""
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    check_plain_dtype(dtype, "load_image_encoder")
    checkpoint = open_checkpoint(path, "clip_vision")
    try:
        model = _meta_clip(config_or_error(checkpoint, clip_config_from_shapes))
        expected = _clip_local_shapes(model)
        check_keys(checkpoint, expected)
        state = {key: checkpoint.read(key, dtype, device) for key in expected}
    finally:
        checkpoint.close()
    try:
        return _image_encoder(model, state, device)
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{checkpoint.path}: {err.args[0] if err.args else err}") from None


def image_encoder_from_state_dict(state: Mapping[str, torch.Tensor], device: torch.device | str = "cpu",
                                  dtype: torch.dtype | None = None):
    """An `ImageEncoder` from `CLIPVisionModel`-named tensors (no `vision_model.` prefix).

    dtype None: float16 on CUDA (the official dtype), float32 elsewhere.
    """
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    model = _meta_clip(clip_config_from_shapes(state))
    missing = sorted(set(_clip_local_shapes(model)) - set(state))
    if missing:
        raise KeyError(f"CLIP vision state dict: missing {len(missing)} weights of the detected "
                       f"{model.config.num_hidden_layers}-layer tower: {', '.join(missing[:8])}")
    return _image_encoder(model, {k: v.to(device=device, dtype=dtype) for k, v in state.items()}, device)


_CLIP_PREFIX = "vision_model."   # transformers 4.x nests the tower under it; 5.x does not


def _meta_clip(config):
    from transformers import CLIPVisionModel

    with torch.device("meta"):
        return CLIPVisionModel(config)


def _clip_local_shapes(model) -> dict[str, tuple]:
    return {k.removeprefix(_CLIP_PREFIX): v for k, v in expected_shapes(model).items()}


def _image_encoder(model, state: Mapping[str, torch.Tensor], device: torch.device):
    """Adopt the tensors, rebuild the non-persistent `position_ids` buffer and wrap the model."""
    from ..models.image_encoder import ImageEncoder

    prefix = _CLIP_PREFIX if any(k.startswith(_CLIP_PREFIX) for k in model.state_dict()) else ""
    try:
        model.load_state_dict({prefix + k: v for k, v in state.items()}, strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"CLIP vision weights do not fit the detected config: {err}") from None
    for module in model.modules():
        buffer = getattr(module, "position_ids", None)
        if isinstance(buffer, torch.Tensor) and buffer.is_meta:
            positions = torch.arange(buffer.shape[-1], device=device).expand(buffer.shape)
            module.register_buffer("position_ids", positions, persistent=False)
    return ImageEncoder(finish(model, device))

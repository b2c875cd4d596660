"""Public loaders: any supported checkpoint file or folder → a ready model.

```
dit = load_dit(path, device="cpu", dtype=None)          # WanModel
vae = load_vae(path, device="cpu", dtype=torch.float32) # WanVAE
te = load_text_encoder(path)                            # TextEncoder: te.encode([...]) -> [L_i, 4096]
ie = load_image_encoder(path)                           # ImageEncoder: ie.encode(image) -> ClipVisionOutput
```
`path` may be a single file (.safetensors, .pth), a shard or shard index of a sharded
safetensors set, a diffusers/transformers model folder, a diffusers pipeline folder or an
official Wan2.1 release folder (see `checkpoint_files`). Models are built on the meta device and
receive the checkpoint tensors by `load_state_dict(assign=True)`; each tensor is read, converted
and moved on its own, so no second full copy of the weights exists at any time.

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
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from .checkpoint import KIND_NAMES, Checkpoint, CheckpointError, dit_config_from_shapes, open_checkpoint
from .fp8 import FP8Linear, is_fp8, quantize, swap_linears_for_fp8

__all__ = ["load_dit", "load_vae", "load_text_encoder", "load_image_encoder", "CheckpointError"]

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
    from ..models.dit.model import WanModel

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
        expected = _expected_shapes(model)
        _check_keys(checkpoint, expected)

        def target(key: str) -> torch.dtype:
            return torch.float32 if WanModel.keeps_fp32(key) else weight_dtype
        state = _read_state(checkpoint, expected, target, device, model)
        model.load_state_dict(state, strict=True, assign=True)
    finally:
        checkpoint.close()
    if compute_dtype is not None or fp8_storage is not None:
        model.compute_dtype = compute_dtype or torch.bfloat16
    return _finish(model, device)


def _dit_weight_dtype(dtype: torch.dtype | None, stored: torch.dtype) -> torch.dtype:
    """Parameter dtype of the non-fp32, non-fp8 tensors."""
    if dtype is None:
        return torch.bfloat16 if is_fp8(stored) else stored
    if is_fp8(dtype):
        return torch.bfloat16
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating dtype, found {dtype}")
    return dtype


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
    from ..models.vae.model import WanVAE, vae_config_from_state_dict

    checkpoint = open_checkpoint(path, "vae")
    try:
        config = _config_or_error(checkpoint, vae_config_from_state_dict)
        with torch.device("meta"):
            model = WanVAE(config)
        expected = _expected_shapes(model)
        _check_keys(checkpoint, expected)
        state = _read_state(checkpoint, expected, lambda key: dtype, device, model)
        model.load_state_dict(state, strict=True, assign=True)
    finally:
        checkpoint.close()
    return _finish(model, device)


# ------------------------------------------------------------------------------------- text encoder

def load_text_encoder(path: PathLike, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.bfloat16, tokenizer=None):
    """Load the umT5 text encoder with its tokenizer (`TextEncoder`).

    tokenizer: a `UMT5Tokenizer`, spiece bytes, a `spiece.model` / `tokenizer.json` path or a
    folder. By default it is the `spiece_model` tensor embedded in ComfyUI's files, else a
    tokenizer folder next to the weights (diffusers `tokenizer/`, official `google/umt5-xxl/`).
    """
    from transformers import UMT5EncoderModel

    from ..models.text_encoder.model import TextEncoder, t5_config_from_state_dict, t5_hf_to_official

    _check_plain_dtype(dtype, "load_text_encoder")
    checkpoint = open_checkpoint(path, "t5")
    try:
        config = _config_or_error(checkpoint, t5_config_from_state_dict)
        expected = _official_shapes_of(UMT5EncoderModel, config, t5_hf_to_official)
        _check_keys(checkpoint, expected)
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
        return TextEncoder.from_official_state_dict(state, source, device=device, dtype=dtype)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise CheckpointError(f"{checkpoint.path}: {err.args[0] if err.args else err}") from None


# ------------------------------------------------------------------------------------- image encoder

def load_image_encoder(path: PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
    """Load the CLIP ViT-H/14 visual tower (`ImageEncoder`); dtype None: fp16 on CUDA, else fp32."""
    from transformers import CLIPVisionModel

    from ..models.image_encoder import ImageEncoder, clip_config_from_state_dict, clip_hf_to_official

    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    _check_plain_dtype(dtype, "load_image_encoder")
    checkpoint = open_checkpoint(path, "clip_vision")
    try:
        config = _config_or_error(checkpoint, clip_config_from_state_dict)
        expected = _official_shapes_of(CLIPVisionModel, config, clip_hf_to_official)
        _check_keys(checkpoint, expected, optional=("head",))
        state = {key: checkpoint.read(key, dtype, device) for key in expected if key in checkpoint.keys()}
    finally:
        checkpoint.close()
    try:
        return ImageEncoder.from_official_state_dict(state, device=device, dtype=dtype)
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{checkpoint.path}: {err.args[0] if err.args else err}") from None


# ------------------------------------------------------------------------------------- shared steps

def _check_plain_dtype(dtype: torch.dtype, caller: str) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or is_fp8(dtype):
        raise ValueError(f"{caller}: dtype must be float32, float16 or bfloat16; found {dtype}")


def _config_or_error(checkpoint: Checkpoint, read_config: Callable):
    try:
        return read_config(checkpoint.shapes())
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{checkpoint.path}: cannot read the {KIND_NAMES[checkpoint.kind]} config: "
                              f"{err.args[0] if err.args else err}") from None


def _official_shapes_of(model_class, config, to_official: Callable) -> dict[str, tuple]:
    """Official key -> shape of a transformers model built (weightless) from `config`."""
    with torch.device("meta"):
        reference = model_class(config)
    return {k: tuple(v.shape) for k, v in to_official(reference.state_dict()).items()}


def _expected_shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_keys(checkpoint: Checkpoint, expected: Mapping[str, tuple], optional: Iterable[str] = ()) -> None:
    """Every expected tensor present with its shape; nothing unknown besides `optional` keys."""
    found = set(checkpoint.keys())
    missing = sorted(k for k in expected if k not in found and not k.endswith(".scale_weight"))
    unexpected = sorted(k for k in found if k not in expected and k not in optional)
    wrong = sorted(k for k in expected if k in found and tuple(checkpoint.meta(k).shape) != tuple(expected[k]))
    if not (missing or unexpected or wrong):
        return
    parts = []
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
    if wrong:
        parts.append("shape mismatches: " + ", ".join(
            f"{k} {tuple(checkpoint.meta(k).shape)} vs {tuple(expected[k])}" for k in wrong[:3]))
    raise CheckpointError(f"{checkpoint.path}: the keys do not match a {KIND_NAMES[checkpoint.kind]} "
                          f"({checkpoint.naming} naming, detected config): " + "; ".join(parts))


def _read_state(checkpoint: Checkpoint, expected: Mapping[str, tuple], target: Callable[[str], torch.dtype],
                device, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read every expected tensor, one at a time, in its final dtype and on `device`.

    Weights of `FP8Linear` modules stay fp8 (file fp8 of the same dtype is kept with its scale;
    anything else is quantised per tensor).
    """
    fp8_modules = {name for name, m in model.named_modules() if isinstance(m, FP8Linear)}
    state: dict[str, torch.Tensor] = {}
    for key in expected:
        module, _, param = key.rpartition(".")
        if module in fp8_modules and param in ("weight", "scale_weight"):
            if param == "weight":
                storage = model.get_submodule(module).weight.dtype
                state[key], state[f"{module}.scale_weight"] = _fp8_weight(checkpoint, key, storage, device)
            continue
        if module in fp8_modules and param == "bias":
            state[key] = checkpoint.read(key, model.get_submodule(module).compute_dtype, device)
            continue
        state[key] = checkpoint.read(key, target(key), device)
    return state


def _fp8_weight(checkpoint: Checkpoint, key: str, storage: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale) for an FP8Linear: as stored when possible, else quantised."""
    if checkpoint.meta(key).dtype == storage:
        scale = checkpoint.scale(key)
        weight = checkpoint.read(key, storage, device, keep_fp8=True)
        return weight, (scale if scale is not None else torch.ones(())).to(device=device, dtype=torch.float32)
    weight, scale = quantize(checkpoint.read(key, torch.float32, device), storage)
    return weight, scale


def _finish(model: nn.Module, device) -> nn.Module:
    """Eval mode, no grads, and no tensor left on the meta device."""
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"{type(model).__name__}: tensors left on the meta device after loading: "
                           f"{', '.join(left[:5])}")
    return model.eval().requires_grad_(False)

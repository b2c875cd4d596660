"""Model configs read from a checkpoint's tensor shapes (canonical names), without reading any data.

The DiT is read the way ComfyUI reads it (`comfy/model_detection.py`, `detect_unet_config`), the VAE
from its encoder stages, umT5 and CLIP from the transformers modules' first layer and layer count.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import torch

from ..models.configs import DIT_HEAD_DIM, DiTConfig, VAEConfig
from .files import CheckpointError

Shapes = Mapping[str, torch.Tensor]   # canonical key -> tensor (meta tensors are enough)


def dit_config_from_shapes(shapes: Shapes, num_heads: int | None = None, source: str = "DiT state dict") -> DiTConfig:
    """DiT hyper-parameters from official-named shapes.

    dim = head.modulation[-1]; out_dim = head.head rows / patch volume; in_dim = patch_embedding
    input channels; ffn_dim = blocks.0.ffn.0 rows; num_layers = block count; num_heads = dim / 128
    (every released Wan2.1 DiT) unless given; model_type flf2v if img_emb.emb_pos, i2v if
    img_emb.proj.0.bias or k_img, else t2v.
    """
    need = ("head.modulation", "head.head.weight", "patch_embedding.weight", "blocks.0.ffn.0.weight",
            "text_embedding.0.weight", "time_embedding.0.weight")
    missing = [k for k in need if k not in shapes]
    if missing:
        raise CheckpointError(f"{source}: missing {', '.join(missing)}; cannot read the DiT size")
    dim = shapes["head.modulation"].shape[-1]
    patch = tuple(shapes["patch_embedding.weight"].shape[2:])
    if num_heads is None:
        if dim % DIT_HEAD_DIM:
            raise CheckpointError(f"{source}: width {dim} is not a multiple of the head size {DIT_HEAD_DIM} that "
                                  f"every released Wan2.1 DiT uses; pass num_heads explicitly")
        num_heads = dim // DIT_HEAD_DIM
    layers = {int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")}
    img_dim = shapes["img_emb.proj.1.weight"].shape[1] if "img_emb.proj.1.weight" in shapes else DiTConfig.img_dim
    try:
        return DiTConfig(model_type=_dit_model_type(shapes), in_dim=shapes["patch_embedding.weight"].shape[1],
                         out_dim=shapes["head.head.weight"].shape[0] // math.prod(patch),
                         dim=dim, ffn_dim=shapes["blocks.0.ffn.0.weight"].shape[0], num_heads=num_heads,
                         num_layers=max(layers) + 1, freq_dim=shapes["time_embedding.0.weight"].shape[1],
                         text_dim=shapes["text_embedding.0.weight"].shape[1], img_dim=img_dim, patch_size=patch)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from None


def _dit_model_type(shapes: Shapes) -> str:
    if "img_emb.emb_pos" in shapes:
        return "flf2v"
    if "img_emb.proj.0.bias" in shapes or "blocks.0.cross_attn.k_img.weight" in shapes:
        return "i2v"
    return "t2v"


def vae_config_from_shapes(shapes: Shapes) -> VAEConfig:
    """base_dim, z_dim, dim_mult, num_res_blocks, temporal_downsample from official VAE keys.

    Encoder layout: per stage `num_res_blocks` residual blocks then (except after the last stage)
    one Resample whose `time_conv` exists exactly when that stage also downsamples in time.
    """
    def out_channels(key: str) -> int:
        if key not in shapes:
            raise ValueError(f"not a Wan2.1 VAE state dict in official key naming: missing {key!r}")
        return int(shapes[key].shape[0])

    base_dim = out_channels("encoder.conv1.weight")
    z_dim = out_channels("conv2.weight")
    indices = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.downsamples.")})
    stage_dims: list[list[int]] = [[]]
    temporal = []
    for i in indices:
        prefix = f"encoder.downsamples.{i}."
        if prefix + "resample.1.weight" in shapes:
            temporal.append(prefix + "time_conv.weight" in shapes)
            stage_dims.append([])
        else:
            stage_dims[-1].append(out_channels(prefix + "residual.2.weight"))
    if not stage_dims[0] or any(len(dims) != len(stage_dims[0]) for dims in stage_dims):
        raise ValueError(f"Wan2.1 VAE state dict: encoder stages have unequal residual block counts "
                         f"{[len(d) for d in stage_dims]}")
    return VAEConfig(base_dim=base_dim, z_dim=z_dim,
                     dim_mult=tuple(dims[0] // base_dim for dims in stage_dims),
                     num_res_blocks=len(stage_dims[0]), temporal_downsample=tuple(temporal))


_T5_BLOCK = re.compile(r"encoder\.block\.(\d+)\..+")
_T5_ATTENTION = "encoder.block.0.layer.0.SelfAttention."


def t5_config_from_shapes(shapes: Shapes):
    """The umT5 encoder size (a transformers `UMT5Config`) from `UMT5EncoderModel`-named shapes."""
    from ..models.text_encoder import umt5_config   # transformers loads only when a umT5 is read

    bias, query, linear = (_T5_ATTENTION + "relative_attention_bias.weight", _T5_ATTENTION + "q.weight",
                           "encoder.block.0.layer.1.DenseReluDense.wi_1.weight")
    _require(shapes, ("shared.weight", query, linear, bias), "umT5")
    vocab_size, d_model = shapes["shared.weight"].shape
    num_buckets, num_heads = shapes[bias].shape                                         # [buckets, heads]
    inner_dim = shapes[query].shape[0]
    if inner_dim % num_heads:
        raise ValueError(f"umT5 state dict: attention width {inner_dim} ({query}) is not divisible by the "
                         f"{num_heads} heads of the relative attention bias")
    num_layers = 1 + max(int(m.group(1)) for m in map(_T5_BLOCK.fullmatch, shapes) if m)
    return umt5_config(vocab_size=vocab_size, d_model=d_model, d_kv=inner_dim // num_heads,
                       d_ff=shapes[linear].shape[0], num_layers=num_layers, num_heads=num_heads,
                       num_buckets=num_buckets)


_CLIP_LAYER = re.compile(r"encoder\.layers\.(\d+)\..+")


def clip_config_from_shapes(shapes: Shapes):
    """The vision-tower size (a transformers `CLIPVisionConfig`) from `CLIPVisionModel`-named shapes.

    The head count is width / 80, as in ViT-H/14 (it cannot be read from the weights).
    """
    from ..models.image_encoder import clip_vision_config   # transformers loads only when a CLIP is read

    patch_key, position_key, fc1_key = ("embeddings.patch_embedding.weight", "embeddings.position_embedding.weight",
                                        "encoder.layers.0.mlp.fc1.weight")
    _require(shapes, (patch_key, position_key, fc1_key), "CLIP vision")
    hidden_size, num_channels, patch_size, _ = shapes[patch_key].shape                 # [D, C, p, p]
    tokens = shapes[position_key].shape[0]                                             # 1 + grid²
    grid = math.isqrt(tokens - 1)
    if grid * grid != tokens - 1:
        raise ValueError(f"CLIP vision state dict: the position embedding has {tokens} tokens, "
                         f"expected 1 + a square number of patches")
    num_layers = 1 + max(int(m.group(1)) for m in map(_CLIP_LAYER.fullmatch, shapes) if m)
    return clip_vision_config(hidden_size=hidden_size, intermediate_size=shapes[fc1_key].shape[0],
                              num_layers=num_layers, image_size=grid * patch_size, patch_size=patch_size,
                              num_channels=num_channels)


def _require(shapes: Shapes, keys: tuple, naming: str) -> None:
    missing = [k for k in keys if k not in shapes]
    if missing:
        raise KeyError(f"{naming} state dict: missing {', '.join(missing)} (found {len(shapes)} keys)")

"""The official release's umT5 and CLIP key layouts, written from transformers-named tensors.

Test-only: the core reads the official `.pth` files (`wan21_core.checkpoints.keymaps`) but never
writes them. Written by hand from the official modules (`wan/modules/t5.py` `T5Encoder`,
`wan/modules/clip.py` `VisionTransformer`), so a test that loads the result checks the core's map
against an independent statement of the same layout.
"""
import re

import torch

_T5_BLOCK = {   # transformers suffix inside encoder.block.{i} -> official suffix inside blocks.{i}
    "layer.0.layer_norm.weight": "norm1.weight",
    "layer.0.SelfAttention.q.weight": "attn.q.weight",
    "layer.0.SelfAttention.k.weight": "attn.k.weight",
    "layer.0.SelfAttention.v.weight": "attn.v.weight",
    "layer.0.SelfAttention.o.weight": "attn.o.weight",
    "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
    "layer.1.layer_norm.weight": "norm2.weight",
    "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
    "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight",
    "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight",
}
_CLIP_TOP = {
    "embeddings.patch_embedding.weight": "patch_embedding.weight",
    "pre_layrnorm.weight": "pre_norm.weight", "pre_layrnorm.bias": "pre_norm.bias",
    "post_layernorm.weight": "post_norm.weight", "post_layernorm.bias": "post_norm.bias",
}
_CLIP_LAYER = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.out_proj": "attn.proj",
               "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}


def t5_to_official(hf: dict) -> dict:
    """`UMT5EncoderModel` tensors -> `models_t5_umt5-xxl-enc-bf16.pth` keys."""
    out = {}
    for key, tensor in hf.items():
        block = re.fullmatch(r"encoder\.block\.(\d+)\.(.+)", key)
        if key in ("shared.weight", "encoder.embed_tokens.weight"):
            out["token_embedding.weight"] = tensor
        elif key == "encoder.final_layer_norm.weight":
            out["norm.weight"] = tensor
        else:
            out[f"blocks.{block.group(1)}.{_T5_BLOCK[block.group(2)]}"] = tensor
    return out


def clip_to_official(hf: dict, projection_dim: int = 64) -> dict:
    """`CLIPVisionModel` tensors (no prefix) -> the `visual.*` keys of the official CLIP `.pth`, without
    `visual.`: q/k/v joined into `to_qkv`, CLS and positions with their leading ones, a random `head`."""
    out, qkv = {}, {}
    for key, tensor in hf.items():
        layer = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if key in _CLIP_TOP:
            out[_CLIP_TOP[key]] = tensor
        elif key == "embeddings.class_embedding":
            out["cls_embedding"] = tensor.reshape(1, 1, -1)
        elif key == "embeddings.position_embedding.weight":
            out["pos_embedding"] = tensor.unsqueeze(0)
        elif layer.group(2) in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            qkv.setdefault((layer.group(1), layer.group(3)), {})[layer.group(2)] = tensor
        else:
            out[f"transformer.{layer.group(1)}.{_CLIP_LAYER[layer.group(2)]}.{layer.group(3)}"] = tensor
    for (i, param), parts in qkv.items():
        out[f"transformer.{i}.attn.to_qkv.{param}"] = torch.cat(
            [parts[f"self_attn.{n}_proj"] for n in "qkv"], dim=0)
    width = hf["embeddings.patch_embedding.weight"].shape[0]
    out["head"] = torch.randn(width, projection_dim, generator=torch.Generator().manual_seed(0)) / width ** 0.5
    return out

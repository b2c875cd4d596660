"""Key renames from every supported file layout to each model's canonical names, as rule tables.

Canonical names are those of the module a model is built on: the official Wan2.1 names for the
DiT (`wan/modules/model.py`, `WanModel`) and the VAE (`wan/modules/vae.py`, `WanVAE_`), which
ComfyUI's files use too; the transformers names for the umT5 encoder (`UMT5EncoderModel`) and the
CLIP vision tower (`CLIPVisionModel`, without its `vision_model.` prefix), which ComfyUI's umT5 and
clip_vision_h files use. The other layouts map onto them once, at read time: diffusers'
`WanTransformer3DModel` / `AutoencoderKLWan` names, and the official release's umT5 `.pth`
(`wan/modules/t5.py`, `T5Encoder`) and CLIP `.pth` (`wan/modules/clip.py`, `VisionTransformer`).

A rule is a pair of templates (source layout, canonical). A template matches a whole key or a
dotted prefix of it; `{n}` stands for a decimal index, copied across. Renames keep the tensor as it
is, so a rule table is a pure key function that works lazily on key lists; the few official CLIP
tensors whose shape differs (`to_qkv`, `cls_embedding`, `pos_embedding`) are derived by
`clip_official_to_hf`, one layer at a time. Prefixes in front of the model keys (ComfyUI's
`model.diffusion_model.`, `vision_model.`, ...) are found with `find_prefix` and stripped first.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Mapping

import torch


def _template_regex(template: str) -> re.Pattern:
    """A regex that matches `template` as a whole key or as a dotted prefix of a key."""
    body = re.escape(template).replace(re.escape("{n}"), r"(?P<n>\d+)")
    return re.compile(rf"^{body}(?=\.|$)")


@lru_cache(maxsize=None)
def _compiled(rules: tuple) -> tuple:
    """[(regex of the source template, canonical template)], longest source first."""
    ordered = sorted(rules, key=lambda rule: len(rule[0]), reverse=True)
    return tuple((_template_regex(source), target) for source, target in ordered)


def rename(key: str, rules: tuple) -> str | None:
    """`key` with its matched prefix renamed by the first (longest) matching rule; None if none matches."""
    for regex, target in _compiled(rules):
        match = regex.match(key)
        if match:
            index = match.groupdict().get("n")
            head = target.replace("{n}", index) if index is not None else target
            return head + key[match.end():]
    return None


# ------------------------------------------------------------------------------------- DiT

DIT_FROM_DIFFUSERS = (   # diffusers `WanTransformer3DModel` -> official `WanModel`
    ("patch_embedding", "patch_embedding"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
    ("scale_shift_table", "head.modulation"),
    ("proj_out", "head.head"),
    ("blocks.{n}.scale_shift_table", "blocks.{n}.modulation"),
    ("blocks.{n}.attn1.to_q", "blocks.{n}.self_attn.q"),
    ("blocks.{n}.attn1.to_k", "blocks.{n}.self_attn.k"),
    ("blocks.{n}.attn1.to_v", "blocks.{n}.self_attn.v"),
    ("blocks.{n}.attn1.to_out.0", "blocks.{n}.self_attn.o"),
    ("blocks.{n}.attn1.norm_q", "blocks.{n}.self_attn.norm_q"),
    ("blocks.{n}.attn1.norm_k", "blocks.{n}.self_attn.norm_k"),
    ("blocks.{n}.attn2.to_q", "blocks.{n}.cross_attn.q"),
    ("blocks.{n}.attn2.to_k", "blocks.{n}.cross_attn.k"),
    ("blocks.{n}.attn2.to_v", "blocks.{n}.cross_attn.v"),
    ("blocks.{n}.attn2.to_out.0", "blocks.{n}.cross_attn.o"),
    ("blocks.{n}.attn2.norm_q", "blocks.{n}.cross_attn.norm_q"),
    ("blocks.{n}.attn2.norm_k", "blocks.{n}.cross_attn.norm_k"),
    ("blocks.{n}.attn2.add_k_proj", "blocks.{n}.cross_attn.k_img"),
    ("blocks.{n}.attn2.add_v_proj", "blocks.{n}.cross_attn.v_img"),
    ("blocks.{n}.attn2.norm_added_k", "blocks.{n}.cross_attn.norm_k_img"),
    # The affine cross-attention pre-norm is `norm3` in the official code and `norm2` in diffusers.
    ("blocks.{n}.norm2", "blocks.{n}.norm3"),
    ("blocks.{n}.ffn.net.0.proj", "blocks.{n}.ffn.0"),
    ("blocks.{n}.ffn.net.2", "blocks.{n}.ffn.2"),
)


def dit_diffusers_to_official(key: str) -> str | None:
    """Official name of a diffusers `WanTransformer3DModel` key; None for an unknown key."""
    return rename(key, DIT_FROM_DIFFUSERS)


# ------------------------------------------------------------------------------------- VAE

# VAE: where a block sits (outer rules), then what its parameters are called (inner rules).
VAE_FROM_DIFFUSERS = (
    ("quant_conv", "conv1"),
    ("post_quant_conv", "conv2"),
    ("encoder.conv_in", "encoder.conv1"),
    ("decoder.conv_in", "decoder.conv1"),
    ("encoder.norm_out", "encoder.head.0"),
    ("decoder.norm_out", "decoder.head.0"),
    ("encoder.conv_out", "encoder.head.2"),
    ("decoder.conv_out", "decoder.head.2"),
    ("encoder.mid_block.resnets.0", "encoder.middle.0"),
    ("encoder.mid_block.attentions.0", "encoder.middle.1"),
    ("encoder.mid_block.resnets.1", "encoder.middle.2"),
    ("decoder.mid_block.resnets.0", "decoder.middle.0"),
    ("decoder.mid_block.attentions.0", "decoder.middle.1"),
    ("decoder.mid_block.resnets.1", "decoder.middle.2"),
    ("encoder.down_blocks.{n}", "encoder.downsamples.{n}"),
)
VAE_RESBLOCK_FROM_DIFFUSERS = (
    ("norm1", "residual.0"),
    ("conv1", "residual.2"),
    ("norm2", "residual.3"),
    ("conv2", "residual.6"),
    ("conv_shortcut", "shortcut"),
)
_RESBLOCK_PARENTS = re.compile(r"^(encoder\.(middle\.[02]|downsamples\.\d+)|decoder\.(middle\.[02]|upsamples\.\d+))\.")
_DIFFUSERS_DECODER_BLOCK = re.compile(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)(?=\.)")


def vae_diffusers_to_official(key: str, num_res_blocks: int = 2) -> str | None:
    """Official Wan2.1 VAE name of a diffusers `AutoencoderKLWan` key; None for an unknown key.

    The official decoder flattens its stages into one list `decoder.upsamples.{i}`: each stage holds
    num_res_blocks + 1 residual blocks, then one resample (except the last stage).
    """
    match = _DIFFUSERS_DECODER_BLOCK.match(key)
    if match:
        stage, kind, position = int(match.group(1)), match.group(2), int(match.group(3))
        offset = num_res_blocks + 1 if kind == "upsamplers" else position
        outer = f"decoder.upsamples.{stage * (num_res_blocks + 2) + offset}" + key[match.end():]
    else:
        outer = rename(key, VAE_FROM_DIFFUSERS)
    if outer is None:
        return None
    parent = _RESBLOCK_PARENTS.match(outer)
    if parent is None:
        return outer
    inner = outer[parent.end():]
    return outer[:parent.end()] + (rename(inner, VAE_RESBLOCK_FROM_DIFFUSERS) or inner)


# ------------------------------------------------------------------------------------- umT5

T5_FROM_OFFICIAL = (   # official `T5Encoder` -> transformers `UMT5EncoderModel`
    ("token_embedding", "shared"),
    ("norm", "encoder.final_layer_norm"),
    ("blocks.{n}.norm1", "encoder.block.{n}.layer.0.layer_norm"),
    ("blocks.{n}.attn.q", "encoder.block.{n}.layer.0.SelfAttention.q"),
    ("blocks.{n}.attn.k", "encoder.block.{n}.layer.0.SelfAttention.k"),
    ("blocks.{n}.attn.v", "encoder.block.{n}.layer.0.SelfAttention.v"),
    ("blocks.{n}.attn.o", "encoder.block.{n}.layer.0.SelfAttention.o"),
    ("blocks.{n}.pos_embedding.embedding", "encoder.block.{n}.layer.0.SelfAttention.relative_attention_bias"),
    ("blocks.{n}.norm2", "encoder.block.{n}.layer.1.layer_norm"),
    ("blocks.{n}.ffn.gate.0", "encoder.block.{n}.layer.1.DenseReluDense.wi_0"),   # GELU branch
    ("blocks.{n}.ffn.fc1", "encoder.block.{n}.layer.1.DenseReluDense.wi_1"),      # linear branch
    ("blocks.{n}.ffn.fc2", "encoder.block.{n}.layer.1.DenseReluDense.wo"),
)
# transformers saves the tied input embedding under both names; `shared.weight` is canonical.
T5_TIED = (("encoder.embed_tokens", "shared"),)


def t5_official_to_hf(key: str) -> str | None:
    """transformers name of an official umT5 key; None for an unknown key."""
    return rename(key, T5_FROM_OFFICIAL)


def t5_hf_alias(key: str) -> str:
    """A transformers umT5 key with the tied embedding under its canonical name."""
    return rename(key, T5_TIED) or key


# ------------------------------------------------------------------------------------- CLIP vision

CLIP_FROM_OFFICIAL = (   # official `VisionTransformer` (keys without `visual.`) -> `CLIPVisionModel`
    ("patch_embedding", "embeddings.patch_embedding"),
    ("pre_norm", "pre_layrnorm"),
    ("post_norm", "post_layernorm"),
    ("transformer.{n}.norm1", "encoder.layers.{n}.layer_norm1"),
    ("transformer.{n}.norm2", "encoder.layers.{n}.layer_norm2"),
    ("transformer.{n}.attn.proj", "encoder.layers.{n}.self_attn.out_proj"),
    ("transformer.{n}.mlp.0", "encoder.layers.{n}.mlp.fc1"),
    ("transformer.{n}.mlp.2", "encoder.layers.{n}.mlp.fc2"),
)
CLIP_QKV = ("q_proj", "k_proj", "v_proj")   # order of the rows of the official `to_qkv`
CLIP_NOT_WEIGHTS = ("embeddings.position_ids",)   # a buffer some transformers versions save
_OFFICIAL_QKV = re.compile(r"transformer\.(\d+)\.attn\.to_qkv\.(weight|bias)")


def clip_official_to_hf(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official visual-tower tensors -> `CLIPVisionModel` tensors (views; renames keep the object).

    `to_qkv` is split into q/k/v; `cls_embedding` [1,1,D] and `pos_embedding` [1,N,D] lose their
    leading ones; `head` (the projection, which Wan does not use) is dropped. Works on any subset.
    """
    out, unknown = {}, []
    for key, tensor in sd.items():
        qkv = _OFFICIAL_QKV.fullmatch(key)
        if key == "cls_embedding":
            out["embeddings.class_embedding"] = tensor.reshape(tensor.shape[-1])            # [1,1,D] -> [D]
        elif key == "pos_embedding":
            out["embeddings.position_embedding.weight"] = tensor.reshape(tensor.shape[-2:])  # [1,N,D] -> [N,D]
        elif qkv:
            layer, param = qkv.groups()
            for name, part in zip(CLIP_QKV, tensor.chunk(3, dim=0)):                          # [3D,...] -> 3x[D,...]
                out[f"encoder.layers.{layer}.self_attn.{name}.{param}"] = part
        elif key != "head":
            renamed = rename(key, CLIP_FROM_OFFICIAL)
            if renamed is None:
                unknown.append(key)
            else:
                out[renamed] = tensor
    reject_unknown_keys(unknown, "official CLIP visual", "CLIP vision-tower weights")
    return out


# ------------------------------------------------------------------------------------- shared

def rename_keys(keys: Iterable[str], rename_one) -> tuple[dict, list]:
    """({new key: old key}, [keys that `rename_one` does not know])."""
    mapping, unknown = {}, []
    for key in keys:
        new = rename_one(key)
        if new is None:
            unknown.append(key)
        else:
            mapping[new] = key
    return mapping, unknown


def find_prefix(keys: Iterable[str], anchor: str) -> str | None:
    """The prefix in front of `anchor` in `keys` (\"\" when the anchor is a key itself), else None.

    When several prefixes carry the anchor, the shortest wins.
    """
    found = [k[: len(k) - len(anchor)] for k in keys if k == anchor or k.endswith("." + anchor)]
    return min(found, key=len) if found else None


def reject_unknown_keys(keys: list[str], naming: str, expected: str) -> None:
    """Raise KeyError naming up to 8 of `keys` that a `naming` state dict holds but `expected` lacks."""
    if keys:
        shown = ", ".join(sorted(keys)[:8]) + (" ..." if len(keys) > 8 else "")
        raise KeyError(f"{naming} state dict: {len(keys)} keys are not {expected}: {shown}")

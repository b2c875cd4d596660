"""Key renames between the official Wan2.1 naming and diffusers' naming, for the DiT and the VAE.

The official names (WAN21_SPEC §2.1, §6.3) are this package's canonical names. The diffusers
names are those of `WanTransformer3DModel` and `AutoencoderKLWan` (WAN21_SPEC §9, PEER_NOTES §2).
Every rename keeps the tensor as it is (no reshape, no transpose), so a map is a pure key
function and works lazily on key lists. The T5 and CLIP maps live with their models
(`text_encoder`, `image_encoder`); `reject_unknown_keys` is their shared error.

A rule is a pair of templates (official, diffusers). A template matches a whole key or a
dotted prefix of it; `{n}` stands for a decimal index, copied from one side to the other.
Prefixes in front of the model keys (ComfyUI's `model.diffusion_model.`, `vae.`, ...) are found
with `find_prefix` from a key every layout has, and stripped before renaming.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Iterable

_DIT_RULES = (
    ("patch_embedding", "patch_embedding"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
    ("img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"),
    ("head.modulation", "scale_shift_table"),
    ("head.head", "proj_out"),
    ("blocks.{n}.modulation", "blocks.{n}.scale_shift_table"),
    ("blocks.{n}.self_attn.q", "blocks.{n}.attn1.to_q"),
    ("blocks.{n}.self_attn.k", "blocks.{n}.attn1.to_k"),
    ("blocks.{n}.self_attn.v", "blocks.{n}.attn1.to_v"),
    ("blocks.{n}.self_attn.o", "blocks.{n}.attn1.to_out.0"),
    ("blocks.{n}.self_attn.norm_q", "blocks.{n}.attn1.norm_q"),
    ("blocks.{n}.self_attn.norm_k", "blocks.{n}.attn1.norm_k"),
    ("blocks.{n}.cross_attn.q", "blocks.{n}.attn2.to_q"),
    ("blocks.{n}.cross_attn.k", "blocks.{n}.attn2.to_k"),
    ("blocks.{n}.cross_attn.v", "blocks.{n}.attn2.to_v"),
    ("blocks.{n}.cross_attn.o", "blocks.{n}.attn2.to_out.0"),
    ("blocks.{n}.cross_attn.norm_q", "blocks.{n}.attn2.norm_q"),
    ("blocks.{n}.cross_attn.norm_k", "blocks.{n}.attn2.norm_k"),
    ("blocks.{n}.cross_attn.k_img", "blocks.{n}.attn2.add_k_proj"),
    ("blocks.{n}.cross_attn.v_img", "blocks.{n}.attn2.add_v_proj"),
    ("blocks.{n}.cross_attn.norm_k_img", "blocks.{n}.attn2.norm_added_k"),
    # The affine cross-attention pre-norm is `norm3` officially and `norm2` in diffusers.
    ("blocks.{n}.norm3", "blocks.{n}.norm2"),
    ("blocks.{n}.ffn.0", "blocks.{n}.ffn.net.0.proj"),
    ("blocks.{n}.ffn.2", "blocks.{n}.ffn.net.2"),
)

# VAE: where a block sits (outer rules), then what its parameters are called (inner rules).
_VAE_OUTER_RULES = (
    ("conv1", "quant_conv"),
    ("conv2", "post_quant_conv"),
    ("encoder.conv1", "encoder.conv_in"),
    ("decoder.conv1", "decoder.conv_in"),
    ("encoder.head.0", "encoder.norm_out"),
    ("decoder.head.0", "decoder.norm_out"),
    ("encoder.head.2", "encoder.conv_out"),
    ("decoder.head.2", "decoder.conv_out"),
    ("encoder.middle.0", "encoder.mid_block.resnets.0"),
    ("encoder.middle.1", "encoder.mid_block.attentions.0"),
    ("encoder.middle.2", "encoder.mid_block.resnets.1"),
    ("decoder.middle.0", "decoder.mid_block.resnets.0"),
    ("decoder.middle.1", "decoder.mid_block.attentions.0"),
    ("decoder.middle.2", "decoder.mid_block.resnets.1"),
    ("encoder.downsamples.{n}", "encoder.down_blocks.{n}"),
)
_VAE_RESBLOCK_RULES = (
    ("residual.0", "norm1"),
    ("residual.2", "conv1"),
    ("residual.3", "norm2"),
    ("residual.6", "conv2"),
    ("shortcut", "conv_shortcut"),
)
_RESBLOCK_PARENTS = re.compile(r"^(encoder\.(middle\.[02]|downsamples\.\d+)|decoder\.(middle\.[02]|upsamples\.\d+))\.")


def _template_regex(template: str) -> re.Pattern:
    """A regex that matches `template` as a whole key or as a dotted prefix of a key."""
    body = re.escape(template).replace(re.escape("{n}"), r"(?P<n>\d+)")
    return re.compile(rf"^{body}(?=\.|$)")


@lru_cache(maxsize=None)
def _compiled(rules: tuple, to_diffusers: bool) -> tuple:
    """[(regex of the source template, target template)], longest source first."""
    pairs = [(d, o) if not to_diffusers else (o, d) for o, d in rules]
    pairs.sort(key=lambda p: len(p[0]), reverse=True)
    return tuple((_template_regex(src), dst) for src, dst in pairs)


def _apply_rules(key: str, rules: tuple, to_diffusers: bool) -> str | None:
    """Rename the matched prefix of `key`; None if no rule matches."""
    for regex, target in _compiled(rules, to_diffusers):
        match = regex.match(key)
        if match:
            index = match.groupdict().get("n")
            head = target.replace("{n}", index) if index is not None else target
            return head + key[match.end():]
    return None


def dit_official_to_diffusers(key: str) -> str | None:
    """diffusers name of an official DiT key; None for a key the DiT does not have."""
    return _apply_rules(key, _DIT_RULES, to_diffusers=True)


def dit_diffusers_to_official(key: str) -> str | None:
    """Official name of a diffusers `WanTransformer3DModel` key; None for an unknown key."""
    return _apply_rules(key, _DIT_RULES, to_diffusers=False)


def _decoder_block_to_diffusers(index: int, num_res_blocks: int) -> str:
    """Official `decoder.upsamples.{index}` → diffusers `decoder.up_blocks.{stage}.…`.

    Each decoder stage holds num_res_blocks + 1 residual blocks, then one resample (except the
    last stage), flattened into one official list.
    """
    per_stage = num_res_blocks + 2
    stage, position = divmod(index, per_stage)
    if position == num_res_blocks + 1:
        return f"decoder.up_blocks.{stage}.upsamplers.0"
    return f"decoder.up_blocks.{stage}.resnets.{position}"


def _decoder_block_to_official(stage: int, kind: str, position: int, num_res_blocks: int) -> str:
    per_stage = num_res_blocks + 2
    offset = num_res_blocks + 1 if kind == "upsamplers" else position
    return f"decoder.upsamples.{stage * per_stage + offset}"


def vae_official_to_diffusers(key: str, num_res_blocks: int = 2) -> str | None:
    """diffusers `AutoencoderKLWan` name of an official Wan2.1 VAE key; None for an unknown key."""
    inner_renamed = _rename_resblock_params(key, to_diffusers=True)
    match = re.match(r"^decoder\.upsamples\.(\d+)(?=\.)", inner_renamed)
    if match:
        return _decoder_block_to_diffusers(int(match.group(1)), num_res_blocks) + inner_renamed[match.end():]
    return _apply_rules(inner_renamed, _VAE_OUTER_RULES, to_diffusers=True)


def vae_diffusers_to_official(key: str, num_res_blocks: int = 2) -> str | None:
    """Official Wan2.1 VAE name of a diffusers `AutoencoderKLWan` key; None for an unknown key."""
    match = re.match(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)(?=\.)", key)
    if match:
        stage, kind, position = int(match.group(1)), match.group(2), int(match.group(3))
        outer = _decoder_block_to_official(stage, kind, position, num_res_blocks) + key[match.end():]
    else:
        outer = _apply_rules(key, _VAE_OUTER_RULES, to_diffusers=False)
    if outer is None:
        return None
    return _rename_resblock_params(outer, to_diffusers=False)


def _rename_resblock_params(key: str, to_diffusers: bool) -> str:
    """Rename the parameters inside a residual block (the key's block path is official)."""
    parent = _RESBLOCK_PARENTS.match(key)
    if parent is None:
        return key
    inner = key[parent.end():]
    renamed = _apply_rules(inner, _VAE_RESBLOCK_RULES, to_diffusers)
    return key[:parent.end()] + (renamed if renamed is not None else inner)


def rename_keys(keys: Iterable[str], rename: Callable[[str], str | None]) -> tuple[dict, list]:
    """({new key: old key}, [keys that `rename` does not know])."""
    mapping, unknown = {}, []
    for key in keys:
        new = rename(key)
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

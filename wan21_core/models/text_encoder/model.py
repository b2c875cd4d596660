"""The umT5-XXL text encoder of Wan2.1 (WAN21_SPEC §4), run by transformers' `UMT5EncoderModel`.

Canonical (official) key names, as in `models_t5_umt5-xxl-enc-bf16.pth` (§4.3):
`token_embedding.weight`, `blocks.{i}.{norm1,attn.{q,k,v,o},pos_embedding.embedding,norm2,
ffn.{gate.0,fc1,fc2}}.weight`, `norm.weight`. ComfyUI's umT5 files and diffusers' `text_encoder/`
use the Hugging Face names (`shared.weight`, `encoder.block.{i}.layer...`); the key maps below
convert both ways without copying tensor data.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
from transformers import UMT5Config, UMT5EncoderModel

from ...checkpoints.keymaps import reject_unknown_keys
from .tokenizer import TokenizerSource, UMT5Tokenizer

# (official suffix, Hugging Face suffix) inside block i; see WAN21_SPEC §4.3.
_BLOCK_KEYS = (
    ("norm1.weight", "layer.0.layer_norm.weight"),
    ("attn.q.weight", "layer.0.SelfAttention.q.weight"),
    ("attn.k.weight", "layer.0.SelfAttention.k.weight"),
    ("attn.v.weight", "layer.0.SelfAttention.v.weight"),
    ("attn.o.weight", "layer.0.SelfAttention.o.weight"),
    ("pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"),
    ("norm2.weight", "layer.1.layer_norm.weight"),
    ("ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"),   # GELU branch
    ("ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"),      # linear branch
    ("ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"),
)
_OFFICIAL_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
_HF_BLOCK = re.compile(r"encoder\.block\.(\d+)\.(.+)")
_HF_EMBEDDINGS = ("shared.weight", "encoder.embed_tokens.weight")


def t5_official_to_hf(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official umT5 names -> `UMT5EncoderModel` names (both tied embedding keys share one tensor)."""
    to_hf = dict(_BLOCK_KEYS)
    out, unknown = {}, []
    for key, tensor in sd.items():
        block = _OFFICIAL_BLOCK.fullmatch(key)
        if key == "token_embedding.weight":
            for hf_key in _HF_EMBEDDINGS:
                out[hf_key] = tensor
        elif key == "norm.weight":
            out["encoder.final_layer_norm.weight"] = tensor
        elif block and block.group(2) in to_hf:
            out[f"encoder.block.{block.group(1)}.{to_hf[block.group(2)]}"] = tensor
        else:
            unknown.append(key)
    reject_unknown_keys(unknown, "official umT5", "umT5 encoder weights")
    return out


def t5_hf_to_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`UMT5EncoderModel` names -> official names; either embedding key (or both) is accepted."""
    to_official = {hf: official for official, hf in _BLOCK_KEYS}
    out, unknown = {}, []
    for key, tensor in sd.items():
        block = _HF_BLOCK.fullmatch(key)
        if key in _HF_EMBEDDINGS:
            if key == "shared.weight" or "token_embedding.weight" not in out:
                out["token_embedding.weight"] = tensor
        elif key == "encoder.final_layer_norm.weight":
            out["norm.weight"] = tensor
        elif block and block.group(2) in to_official:
            out[f"blocks.{block.group(1)}.{to_official[block.group(2)]}"] = tensor
        else:
            unknown.append(key)
    reject_unknown_keys(unknown, "Hugging Face umT5", "umT5 encoder weights")
    return out


def _umt5_config(vocab_size: int, d_model: int, d_kv: int, d_ff: int, num_layers: int, num_heads: int,
                 num_buckets: int = 32) -> UMT5Config:
    """An encoder-only umT5 config with the fixed Wan2.1 settings (gated tanh-GELU, eps 1e-6)."""
    return UMT5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_layers=num_layers,
        num_heads=num_heads, relative_attention_num_buckets=num_buckets,
        relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
        dropout_rate=0.0, is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1)


def umt5_xxl_config() -> UMT5Config:
    """The released umT5-XXL encoder: vocab 256384, 4096 wide, 24 layers, 64 heads of 64, FFN 10240."""
    return _umt5_config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64)


def t5_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> UMT5Config:
    """Read the umT5 encoder size from official-named weights."""
    _require(sd, ("token_embedding.weight", "blocks.0.attn.q.weight", "blocks.0.ffn.fc1.weight",
                  "blocks.0.pos_embedding.embedding.weight"), "official umT5")
    vocab_size, d_model = sd["token_embedding.weight"].shape
    num_buckets, num_heads = sd["blocks.0.pos_embedding.embedding.weight"].shape   # [buckets, heads]
    inner_dim = sd["blocks.0.attn.q.weight"].shape[0]
    if inner_dim % num_heads:
        raise ValueError(f"official umT5 state dict: attention width {inner_dim} (blocks.0.attn.q) is not "
                         f"divisible by the {num_heads} heads of blocks.0.pos_embedding")
    num_layers = 1 + max(int(m.group(1)) for m in map(_OFFICIAL_BLOCK.fullmatch, sd) if m)
    return _umt5_config(vocab_size=vocab_size, d_model=d_model, d_kv=inner_dim // num_heads,
                        d_ff=sd["blocks.0.ffn.fc1.weight"].shape[0], num_layers=num_layers,
                        num_heads=num_heads, num_buckets=num_buckets)


def _require(sd: Mapping[str, torch.Tensor], keys: Sequence[str], naming: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise KeyError(f"{naming} state dict: missing {', '.join(missing)} (found {len(sd)} keys)")


def _load_on_meta(sd: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> UMT5EncoderModel:
    """Build on the meta device and adopt the official-named tensors (no second copy of the weights)."""
    config = t5_config_from_state_dict(sd)
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    model.set_input_embeddings(model.shared)   # one embedding module under both names
    missing = sorted(set(t5_hf_to_official(model.state_dict())) - set(sd))
    if missing:
        raise KeyError(f"official umT5 state dict: missing {len(missing)} weights of the detected "
                       f"{config.num_layers}-layer encoder: {', '.join(missing[:8])}")
    tensors = _cast_once(t5_official_to_hf(sd), device, dtype)
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"umT5 weights do not fit the detected config: {err}") from None
    return model.eval().requires_grad_(False)


def _cast_once(sd: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Move every distinct tensor once, so that keys sharing a tensor (tied embeddings) still share it."""
    cast: dict[int, torch.Tensor] = {}
    for tensor in sd.values():
        if id(tensor) not in cast:
            cast[id(tensor)] = tensor.to(device=device, dtype=dtype)
    return {key: cast[id(tensor)] for key, tensor in sd.items()}


class TextEncoder:
    """umT5 encoder + tokenizer: prompts -> per-prompt context [L_i, d_model] (WAN21_SPEC §4.2).

    `L_i` counts the real tokens including EOS. Padding is never returned; the DiT re-pads with zeros.
    """

    def __init__(self, model: UMT5EncoderModel, tokenizer: UMT5Tokenizer):
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"tokenizer: vocabulary of {tokenizer.vocab_size} pieces is larger than the "
                             f"text encoder's embedding table ({model.config.vocab_size} rows)")
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def from_official_state_dict(cls, sd: Mapping[str, torch.Tensor], tokenizer: UMT5Tokenizer | TokenizerSource,
                                 device: torch.device | str = "cpu",
                                 dtype: torch.dtype = torch.bfloat16) -> "TextEncoder":
        """Build from official-named weights and a tokenizer (or anything `UMT5Tokenizer.load` accepts).

        The official model runs in bf16; float32 is also supported. Tensors already on `device` in
        `dtype` become the model's parameters without a copy.
        """
        if not isinstance(tokenizer, UMT5Tokenizer):
            tokenizer = UMT5Tokenizer.load(tokenizer)
        model = _load_on_meta(sd, torch.device(device), dtype)
        return cls(model, tokenizer)

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.shared.weight.dtype

    def to(self, device: torch.device | str) -> "TextEncoder":
        self.model.to(device)
        return self

    def encode(self, prompts: str | Sequence[str],
               output_dtype: torch.dtype | None = torch.float32) -> list[torch.Tensor]:
        """Encode prompts to a list of [L_i, d_model] tensors on the model's device.

        The batch runs with the attention mask, cut to its longest prompt instead of the official 512
        columns: real tokens attend only to real tokens, so the cut padding changes the result only
        through float summation order (rel L2 < 1e-6 in float32, exact in float64) and saves up to
        512 / L of the compute. `output_dtype=None` keeps the model dtype.
        """
        batch = self.tokenizer(prompts)
        width = max(batch.lengths)
        ids = batch.ids[:, :width].to(self.device)
        mask = batch.attention_mask[:, :width].to(self.device)
        with torch.inference_mode():
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state   # [B, width, d_model]
        dtype = output_dtype or hidden.dtype
        return [hidden[i, :n].to(dtype) for i, n in enumerate(batch.lengths)]

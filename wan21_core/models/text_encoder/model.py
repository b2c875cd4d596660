"""The umT5-XXL text encoder of Wan2.1 (official `wan/modules/t5.py`, `umt5_xxl`), run by
transformers' `UMT5EncoderModel` under its own parameter names.

`wan21_core.checkpoints` builds it from any supported file (ComfyUI's umT5 files and diffusers'
`text_encoder/` already use these names; the official `.pth` is renamed once, at read time).
"""
from __future__ import annotations

from typing import Sequence

import torch
from transformers import UMT5Config, UMT5EncoderModel

from .tokenizer import UMT5Tokenizer


def umt5_config(vocab_size: int, d_model: int, d_kv: int, d_ff: int, num_layers: int, num_heads: int,
                num_buckets: int = 32) -> UMT5Config:
    """An encoder-only umT5 config with the fixed Wan2.1 settings (gated tanh-GELU, eps 1e-6)."""
    return UMT5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_layers=num_layers,
        num_heads=num_heads, relative_attention_num_buckets=num_buckets,
        relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
        dropout_rate=0.0, is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1)


def umt5_xxl_config() -> UMT5Config:
    """The released umT5-XXL encoder: vocab 256384, 4096 wide, 24 layers, 64 heads of 64, FFN 10240."""
    return umt5_config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64)


class TextEncoder:
    """umT5 encoder + tokenizer: prompts -> per-prompt context [L_i, d_model] (official `T5EncoderModel.__call__`).

    `L_i` counts the real tokens including EOS. Padding is never returned; the DiT re-pads with zeros.
    """

    def __init__(self, model: UMT5EncoderModel, tokenizer: UMT5Tokenizer):
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"tokenizer: vocabulary of {tokenizer.vocab_size} pieces is larger than the "
                             f"text encoder's embedding table ({model.config.vocab_size} rows)")
        self.model = model
        self.tokenizer = tokenizer

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

"""Building blocks of the Wan2.1 DiT (official `wan/modules/model.py`: `WanSelfAttention`,
`WanI2VCrossAttention`, `WanAttentionBlock`, `Head`, `MLPProj`), with the official module names.

Precision rules shared by every block (the official bf16-autocast semantics: `wan/image2video.py`
`WanI2V.generate` samples under bf16 autocast, `wan/modules/model.py` `WanAttentionBlock.forward` and
`WanModel.forward` keep fp32 autocast regions):
the residual stream, the modulation, every LayerNorm and RMSNorm and RoPE run in fp32; the big
linear layers and attention run in the compute dtype `cd` that the model passes in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .attention import attention
from ...kernels.cpu import try_rms_rope_
from .ops import (add_projection_, head_major_empty, layer_norm, linear, modulated_norm, residual_add, token_chunks,
                      with_batch)
from .rope import apply_rope_

FFN_CHUNK_TOKENS = {"cpu": 4096}       # tokens per FFN chunk by device type (measured on CPU) ...
FFN_CHUNK_TOKENS_DEFAULT = 16384       # ... elsewhere only to bound the [tokens, ffn_dim] activations


class RMSNorm(nn.Module):
    """WanRMSNorm over the full projection width (across heads), learned weight, computed in fp32.

    x · rsqrt(mean(x²) + eps) · weight, split in two so that the per-token factor can ride along
    with RoPE: `factor(x)` = rsqrt(mean(x²) + eps) [..., 1] and `weighted_(x)` = x · weight (fp32).
    """

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def factor(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
        return torch.rsqrt(norm.square_().div_(x.shape[-1]).add_(self.eps))

    def weighted_(self, x: torch.Tensor) -> torch.Tensor:
        """x · weight in fp32; overwrites x when x is already fp32 (take `factor` first)."""
        return x.float().mul_(self.weight.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., C] -> [..., C] fp32; overwrites x when x is fp32."""
        factor = self.factor(x)
        return self.weighted_(x).mul_(factor)


@dataclass
class CrossKV:
    """Cross-attention keys and values of one block, [B, L_ctx, heads, head_dim] in the compute dtype.

    Text: the 512 padded text tokens, where the zero-padding rows (identical keys and values) are
    collapsed to one whose logit gets + log(count), `text_bias` [B, L] (None when nothing was padded);
    the same attention, for the price of the real tokens. Image (i2v/flf2v): 257 or 514 tokens.
    A batch of 1 broadcasts over the hidden states' batch.
    """

    k_text: torch.Tensor
    v_text: torch.Tensor
    text_bias: torch.Tensor | None = None
    k_image: torch.Tensor | None = None
    v_image: torch.Tensor | None = None


def collapse_padding(k: torch.Tensor, v: torch.Tensor, lengths: list[int]):
    """Text K/V [B, L, N, d] whose rows from lengths[i] on come from zero padding -> the real rows plus
    one padding row with logit bias log(#padding rows); rows beyond get bias -inf (for a common length).

    Returns (k, v, bias [B, L'] fp32), or the inputs and None when no sample has padding.
    """
    total = k.shape[1]
    if min(lengths) >= total:
        return k, v, None
    keys = max(n + (n < total) for n in lengths)
    bias = torch.full((k.shape[0], keys), -math.inf, device=k.device)
    for i, n in enumerate(lengths):
        bias[i, :n] = 0.0
        if n < total:
            bias[i, n] = math.log(total - n)          # row n stands for all total - n identical rows
    return k[:, :keys].contiguous(), v[:, :keys].contiguous(), bias


class SelfAttention(nn.Module):
    """Self-attention with RMSNorm on q and k (across heads) and 3D RoPE."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def project(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float,
                rotations: torch.Tensor, cd: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (RMS-normed, rotated), k (same) and v [B, L, N, d], head-major, in the compute dtype, from the
        residual stream x [B, L, C] through the modulated norm1, a chunk of tokens at a time."""
        batch, length, dim = x.shape
        heads = (self.num_heads, dim // self.num_heads)
        q, k, v = (head_major_empty(batch, length, *heads, cd, x.device) for _ in range(3))
        for b, tokens in token_chunks(batch, length, dim, x.device):
            m = b if shift.shape[0] > 1 else 0
            h = modulated_norm(x[b, tokens], shift[m], scale[m], eps, cd)          # [n, C]
            self._rotate_into(q[b, tokens], self.q, self.norm_q, h, rotations[tokens])
            self._rotate_into(k[b, tokens], self.k, self.norm_k, h, rotations[tokens])
            v[b, tokens] = linear(self.v, h).unflatten(-1, heads)
        return q, k, v

    def _rotate_into(self, out: torch.Tensor, proj: nn.Linear, norm: RMSNorm, h: torch.Tensor,
                     rotations: torch.Tensor) -> None:
        """out [n, N, d] = RoPE(RMSNorm(proj(h))) for a chunk h [n, C]: in one pass by the CPU bf16 kernel,
        else in fp32 with the RMS factor riding in the rotation."""
        y = linear(proj, h)                                            # [n, C]
        if try_rms_rope_(out, y, norm.weight, norm.eps, rotations):
            return
        factor = norm.factor(y)[..., None]                             # [n, 1, 1]
        out.copy_(apply_rope_(norm.weighted_(y).unflatten(-1, (self.num_heads, -1)), rotations, factor))


class CrossAttention(nn.Module):
    """Cross-attention over the text tokens, plus (i2v/flf2v) a second one over the image tokens.

    The two softmax attentions share q and are summed before the shared output projection `o`.
    Neither has a mask, and neither uses RoPE.
    """

    def __init__(self, dim: int, num_heads: int, eps: float, image_input: bool):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)
        if image_input:
            self.k_img = nn.Linear(dim, dim)
            self.v_img = nn.Linear(dim, dim)
            self.norm_k_img = RMSNorm(dim, eps)

    def project_context(self, text: torch.Tensor, image: torch.Tensor | None, text_lengths: list[int]) -> CrossKV:
        """Keys and values of the text [B, 512, C] (real rows text_lengths[i], then zero padding) and
        image [B, n_img, C] embeddings, in the compute dtype."""
        heads = (self.num_heads, -1)
        k = self.norm_k(self.k(text)).to(text.dtype).unflatten(-1, heads)
        kv = CrossKV(*collapse_padding(k, self.v(text).unflatten(-1, heads), text_lengths))
        if image is not None:
            kv.k_image = self.norm_k_img(self.k_img(image)).to(image.dtype).unflatten(-1, heads)
            kv.v_image = self.v_img(image).unflatten(-1, heads)
        return kv

    def query(self, x: torch.Tensor, norm: nn.LayerNorm, eps: float, cd: torch.dtype) -> torch.Tensor:
        """RMS-normed queries [B, L, N, d] (head-major, compute dtype) from the residual stream x
        [B, L, C] through the affine pre-norm `norm` (norm3), a chunk of tokens at a time."""
        batch, length, dim = x.shape
        q = head_major_empty(batch, length, self.num_heads, dim // self.num_heads, cd, x.device)
        for b, tokens in token_chunks(batch, length, dim, x.device):
            y = linear(self.q, layer_norm(x[b, tokens], eps, norm, cd))           # [n, C]
            if try_rms_rope_(q[b, tokens], y, self.norm_q.weight, self.norm_q.eps):
                continue
            factor = self.norm_q.factor(y)[..., None]                             # [n, 1, 1]
            torch.mul(self.norm_q.weighted_(y).unflatten(-1, (self.num_heads, -1)), factor, out=q[b, tokens])
        return q

    def attend(self, q: torch.Tensor, kv: CrossKV) -> torch.Tensor:
        """Text attention (+ image attention) of q [B, L, N, d]; [B', L, N, d] in q's dtype."""
        out = attention(q, kv.k_text, kv.v_text, key_bias=kv.text_bias)
        if kv.k_image is not None:
            out = residual_add(out, attention(q, kv.k_image, kv.v_image))
        return out


class WanBlock(nn.Module):
    """One DiT block: modulated self-attention, affine-normed cross-attention, modulated FFN.

    Official order (`wan/modules/model.py`, `WanAttentionBlock.forward`): norm1 -> self_attn,
    norm3 (affine) -> cross_attn, norm2 -> ffn.
    """

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, image_input: bool):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.self_attn = SelfAttention(dim, num_heads, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(dim, num_heads, eps, image_input)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor, e0: torch.Tensor, rotations: torch.Tensor, kv: CrossKV,
                cd: torch.dtype) -> torch.Tensor:
        """x [B, L, C] fp32 residual stream, e0 [B, 6, C] fp32 time projection -> new x [B, L, C] fp32.

        x is updated in place wherever the batch does not grow (batch-1 x meeting batch-2 context).
        The per-token work around the attention calls and the FFN goes a chunk of tokens at a time.
        """
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.modulation.float() + e0).chunk(6, dim=1)
        x = with_batch(x, gate_sa.shape[0])
        q, k, v = self.self_attn.project(x, shift_sa, scale_sa, self.eps, rotations, cd)
        add_projection_(x, attention(q, k, v), self.self_attn.o, gate_sa)
        out = self.cross_attn.attend(self.cross_attn.query(x, self.norm3, self.eps, cd), kv)
        x = with_batch(x, out.shape[0])
        add_projection_(x, out, self.cross_attn.o)
        return self._ffn_residual(x, shift_ff, scale_ff, gate_ff, cd)

    def _ffn_residual(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, gate: torch.Tensor,
                      cd: torch.dtype) -> torch.Tensor:
        """x + ffn(modulated_norm(x)) · gate, updated in place a chunk of tokens at a time.

        Everything in the FFN is per token, so chunks keep the [tokens, ffn_dim] hidden activations
        bounded for long videos.
        """
        fc1, _, fc2 = self.ffn                                         # the middle one is GELU(tanh)
        chunk = FFN_CHUNK_TOKENS.get(x.device.type, FFN_CHUNK_TOKENS_DEFAULT)
        x = with_batch(x, gate.shape[0])
        # One modulation for the whole batch: chunk all B·L tokens; otherwise each sample's own.
        groups = [(x.view(-1, x.shape[-1]), 0)] if gate.shape[0] == 1 else [(x[b], b) for b in range(x.shape[0])]
        for tokens, m in groups:
            for rows in tokens.tensor_split(-(-tokens.shape[0] // chunk)):   # views [n, C] of x
                h = modulated_norm(rows, shift[m], scale[m], self.eps, cd)
                rows.addcmul_(linear(fc2, linear(fc1, h, gelu=True)), gate[m])
        return x


class Head(nn.Module):
    """Output head: LayerNorm modulated by (head.modulation + e), then Linear to patch pixels; fp32."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.head = nn.Linear(dim, out_features)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x [B, L, C] fp32, e [B, C] fp32 time embedding (not e0) -> [B, L, out_features] fp32."""
        shift, scale = (self.modulation.float() + e[:, None]).chunk(2, dim=1)
        h = modulated_norm(x, shift, scale, self.eps)
        return self.head(h.to(self.head.weight.dtype)).float()


class ImageEmbedding(nn.Module):
    """`img_emb`: LN(1280) -> Linear -> GELU(exact) -> Linear(1280, C) -> LN(C), LayerNorm eps 1e-5.

    FLF2V adds the learned `emb_pos` [1, 514, 1280] to the first- and last-frame features first.
    """

    LN_EPS = 1e-5

    def __init__(self, img_dim: int, dim: int, pos_tokens: int | None):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(img_dim), nn.Linear(img_dim, img_dim), nn.GELU(),
                                  nn.Linear(img_dim, dim), nn.LayerNorm(dim))
        if pos_tokens is not None:
            self.emb_pos = nn.Parameter(torch.zeros(1, pos_tokens, img_dim))

    def forward(self, clip_fea: torch.Tensor, cd: torch.dtype) -> torch.Tensor:
        """clip_fea [B, n_img, 1280] -> [B, n_img, C] in the compute dtype."""
        x = clip_fea.float()
        if hasattr(self, "emb_pos"):
            x = x + self.emb_pos.float()
        norm_in, fc1, act, fc2, norm_out = self.proj
        h = fc2(act(fc1(layer_norm(x, self.LN_EPS, norm_in, cd))))
        return layer_norm(h, self.LN_EPS, norm_out, cd)

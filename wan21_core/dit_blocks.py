"""Building blocks of the Wan2.1 DiT (WAN21_SPEC §2.1–§2.3), with the official module names.

Precision rules shared by every block (the official bf16-autocast semantics, WAN21_SPEC §2.5):
the residual stream, the modulation, every LayerNorm and RMSNorm and RoPE run in fp32; the big
linear layers and attention run in the compute dtype `cd` that the model passes in.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .rope import apply_rope


def layer_norm(x: torch.Tensor, eps: float, norm: nn.LayerNorm | None = None) -> torch.Tensor:
    """LayerNorm of x in fp32; affine with `norm`'s parameters when given (they may be stored in any dtype)."""
    weight = bias = None
    if norm is not None:
        weight, bias = norm.weight.float(), norm.bias.float()
    return F.layer_norm(x.float(), x.shape[-1:], weight, bias, eps)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x · (1 + scale) + shift, in fp32 (shift, scale [B, 1, C] broadcast over tokens)."""
    return torch.addcmul(shift, x, 1 + scale)


class RMSNorm(nn.Module):
    """WanRMSNorm over the full projection width (across heads), learned weight; returns fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), x.shape[-1:], self.weight.float(), self.eps)


@dataclass
class CrossKV:
    """Cross-attention keys and values of one block, [B, L_ctx, heads, head_dim] in the compute dtype.

    Text tensors cover the 512 padded text tokens; image tensors (i2v/flf2v) the 257 or 514 image
    tokens. A batch of 1 broadcasts over the hidden states' batch.
    """

    k_text: torch.Tensor
    v_text: torch.Tensor
    k_image: torch.Tensor | None = None
    v_image: torch.Tensor | None = None


class SelfAttention(nn.Module):
    """Self-attention with RMSNorm on q and k (across heads) and 3D RoPE."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """x [B, L, C] in the compute dtype -> [B, L, C] in the compute dtype."""
        heads = (self.num_heads, -1)
        q = apply_rope(self.norm_q(self.q(x)).unflatten(-1, heads), rotations).to(x.dtype)  # [B, L, N, d]
        k = apply_rope(self.norm_k(self.k(x)).unflatten(-1, heads), rotations).to(x.dtype)
        v = self.v(x).unflatten(-1, heads)
        return self.o(attention(q, k, v).flatten(2))


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

    def project_context(self, text: torch.Tensor, image: torch.Tensor | None) -> CrossKV:
        """Keys and values of the text [B, 512, C] and image [B, n_img, C] embeddings (compute dtype)."""
        heads = (self.num_heads, -1)
        kv = CrossKV(self.norm_k(self.k(text)).to(text.dtype).unflatten(-1, heads),
                     self.v(text).unflatten(-1, heads))
        if image is not None:
            kv.k_image = self.norm_k_img(self.k_img(image)).to(image.dtype).unflatten(-1, heads)
            kv.v_image = self.v_img(image).unflatten(-1, heads)
        return kv

    def forward(self, x: torch.Tensor, kv: CrossKV) -> torch.Tensor:
        """x [B, L, C] in the compute dtype -> [B, L, C] in the compute dtype."""
        q = self.norm_q(self.q(x)).to(x.dtype).unflatten(-1, (self.num_heads, -1))  # [B, L, N, d]
        out = attention(q, kv.k_text, kv.v_text)
        if kv.k_image is not None:
            out = out + attention(q, kv.k_image, kv.v_image)
        return self.o(out.flatten(2))


class WanBlock(nn.Module):
    """One DiT block: modulated self-attention, affine-normed cross-attention, modulated FFN.

    Official order (WAN21_SPEC §2.3): norm1 -> self_attn, norm3 (affine) -> cross_attn, norm2 -> ffn.
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
        """x [B, L, C] fp32 residual stream, e0 [B, 6, C] fp32 time projection -> new x [B, L, C] fp32."""
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.modulation.float() + e0).chunk(6, dim=1)
        h = modulate(layer_norm(x, self.eps), shift_sa, scale_sa).to(cd)
        x = torch.addcmul(x, self.self_attn(h, rotations), gate_sa)
        x = x + self.cross_attn(layer_norm(x, self.eps, self.norm3).to(cd), kv)
        h = modulate(layer_norm(x, self.eps), shift_ff, scale_ff).to(cd)
        return torch.addcmul(x, self.ffn(h), gate_ff)


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
        h = modulate(layer_norm(x, self.eps), shift, scale)
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
        h = fc2(act(fc1(layer_norm(x, self.LN_EPS, norm_in).to(cd))))
        return layer_norm(h, self.LN_EPS, norm_out).to(cd)

"""A differentiable forward of `WanModel`, for training (Wan2.1-tiny's DiT stage).

`WanModel.forward` is the inference path: in place, chunked, fused kernels, no autograd. This is
the same computation (official `wan/modules/model.py`, `WanModel.forward`) written in plain autograd
ops over the very same parameters, in fp32, so gradients reach every weight (and, through the
context, the text encoder). `tests/models/test_dit.py` checks that the two paths agree.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .blocks import RMSNorm, WanBlock
from .model import WanModel, sinusoidal_embedding
from .rope import rope_table


def training_forward(model: WanModel, x: torch.Tensor, t: torch.Tensor, context, clip_fea: torch.Tensor | None = None,
                     y: torch.Tensor | None = None, compiled: bool = False) -> torch.Tensor:
    """Velocity [B, 16, T, H, W] for noisy latents x at timesteps t, with gradients.

    Inputs as for `WanModel.forward` (x [B, 16, T, H, W]; t [B] in 0..1000, truncated to integers;
    context [B, L, text_dim] or a list of [L_i, text_dim]; clip_fea [B, 257, img_dim]; y [B, 20, T, H, W]),
    every batch equal to B. compiled: run the blocks through `torch.compile` (the same computation,
    fused; float results differ by rounding only).
    """
    c = model.config
    inputs = model._latent_input(x, y)                                    # [B, in_dim, T, H, W]
    patches = model.patch_embedding(inputs.float())                      # [B, C, T', H', W']
    grid = tuple(patches.shape[2:])
    tokens = patches.flatten(2).transpose(1, 2)                          # [B, L, C]
    table = rope_table(grid, c.head_dim, tokens.device)                 # [L, 1, d/2] complex
    rotations = torch.stack([table.real, table.imag]).float()             # [2, L, 1, d/2]: cos, sin
    steps = model._timesteps(t, tokens.device)
    e = model.time_embedding(sinusoidal_embedding(steps, c.freq_dim).float())   # [B, C]
    e0 = model.time_projection(e).unflatten(1, (6, c.dim))              # [B, 6, C]
    text, text_bias = _collapsed_text(model, context, tokens.device)      # [B, L+1, C], [B, 1, 1, L+1]
    image = None
    if c.has_image_input:
        features = model._checked_clip_fea(clip_fea).to(tokens.device).float()
        if hasattr(model.img_emb, "emb_pos"):                                 # flf2v
            features = features + model.img_emb.emb_pos
        image = model.img_emb.proj(features)                                 # [B, n_img, C]
    run_block = _compiled_block() if compiled else _block
    for block in model.blocks:
        tokens = run_block(block, tokens, e0, rotations, text, text_bias, image)
    shift, scale = (model.head.modulation + e[:, None]).chunk(2, dim=1)
    out = model.head.head(_norm(tokens, model.head.eps) * (1 + scale) + shift)   # [B, L, prod(patch)·16]
    return model._unpatchify(out, grid)


@functools.cache
def _compiled_block():
    return torch.compile(_block)


def _collapsed_text(model: WanModel, context, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded text context with its zero padding collapsed, and the matching attention bias.

    The official context is zero-padded to 512 tokens and the padding is not masked: the padding
    rows are identical keys and values. One of them with logit bias log(count) gives the same
    attention as all of them, so each prompt keeps its real tokens and one padding row (bias
    log(512 - L_i)); rows past that get bias -inf.
    """
    rows = [item for item in context] if isinstance(context, (list, tuple)) else list(context.unbind(0))
    padded = model._padded_context(rows)                                     # checks widths and lengths
    lengths = [row.shape[0] for row in rows]
    width = min(max(lengths) + 1, padded.shape[1])
    bias = torch.full((len(rows), width), float("-inf"), device=device)
    for b, length in enumerate(lengths):
        bias[b, :length] = 0.0
        if length < padded.shape[1]:
            bias[b, length] = math.log(padded.shape[1] - length)
    text = model.text_embedding(padded[:, :width].to(device).float())        # [B, L+1, C]
    return text, bias[:, None, None, :]


def _block(block: WanBlock, x: torch.Tensor, e0: torch.Tensor, rotations: torch.Tensor, text: torch.Tensor,
           text_bias: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
    """One `WanBlock`: modulated self-attention, cross-attention, modulated FFN (x [B, L, C])."""
    shift_sa, scale_sa, gate_sa, shift_ffn, scale_ffn, gate_ffn = (block.modulation + e0).chunk(6, dim=1)
    x = x + _self_attention(block, _norm(x, block.eps) * (1 + scale_sa) + shift_sa, rotations) * gate_sa
    normed = F.layer_norm(x, x.shape[-1:], block.norm3.weight, block.norm3.bias, block.eps)
    x = x + _cross_attention(block, normed, text, text_bias, image)
    return x + block.ffn(_norm(x, block.eps) * (1 + scale_ffn) + shift_ffn) * gate_ffn


def _self_attention(block: WanBlock, h: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    attn = block.self_attn
    q = _rope(_heads(_rms(attn.norm_q, attn.q(h)), attn.num_heads), rotations)
    k = _rope(_heads(_rms(attn.norm_k, attn.k(h)), attn.num_heads), rotations)
    v = _heads(attn.v(h), attn.num_heads)
    return attn.o(_attend(q, k, v))


def _cross_attention(block: WanBlock, h: torch.Tensor, text: torch.Tensor, text_bias: torch.Tensor,
                     image: torch.Tensor | None) -> torch.Tensor:
    """Text attention plus (i2v/flf2v) image attention with its own keys and values, summed before `o`."""
    attn, heads = block.cross_attn, block.cross_attn.num_heads
    q = _heads(_rms(attn.norm_q, attn.q(h)), heads)
    out = _attend(q, _heads(_rms(attn.norm_k, attn.k(text)), heads), _heads(attn.v(text), heads), text_bias)
    if image is not None:
        out = out + _attend(q, _heads(_rms(attn.norm_k_img, attn.k_img(image)), heads),
                            _heads(attn.v_img(image), heads))
    return attn.o(out)


def _norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without affine (the blocks' norm1 / norm2 and the head's norm)."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def _rms(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + norm.eps) * norm.weight


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1))                                  # [B, L, C] -> [B, L, heads, d]


def _rope(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of x [B, L, heads, d] by rotations [2, L, 1, d/2] (cos, sin), in real
    arithmetic (the complex product of the inference path, written so that a compiler can fuse it)."""
    even, odd = x.float().unflatten(-1, (-1, 2)).unbind(-1)                # [B, L, heads, d/2] each
    cos, sin = rotations
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """[B, Lq, heads, d] x [B, Lk, heads, d] (+ a logit bias [B, 1, 1, Lk]) -> [B, Lq, heads·d]."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias)
    return out.transpose(1, 2).flatten(2)

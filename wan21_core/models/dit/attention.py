"""Attention backends for the DiT: one call, q, k, v [B, L, heads, head_dim] -> [B, Lq, heads, head_dim].

Backends:
- "auto" (default): "blocked" for bfloat16 on CPU, "sdpa" otherwise.
- "sdpa": torch.nn.functional.scaled_dot_product_attention, any device and dtype.
- "blocked": softmax(q·kᵀ)·v over blocks of query rows with plain batched matmuls, for CPUs where
  the bf16 matmul is much faster than the SDPA kernel (AVX512-BF16: about 2× over SDPA in bf16).
  The scores come out of the matmul in the input dtype; the keys are first centred on their mean
  over the sequence (softmax is invariant to it, and it keeps the logits, and so their rounding
  error, small; the "smooth K" of SageAttention). The blocks reuse one score buffer (softmax in
  place, by the compiled kernel of `cpu_kernels` for bf16 where it builds) and write straight into a
  token-major output, so memory stays bounded by the block size and nothing is copied on the way to
  the output projection.
- "flash_attn": flash_attn.flash_attn_func (CUDA, fp16/bf16; fp32 inputs run in bf16 like the official code).
- "sageattention": sageattention.sageattn (CUDA, INT8 QK; fp32 inputs run in bf16).
The optional packages are imported only when their backend is chosen. Attention is always global,
non-causal, with the scale 1/sqrt(head_dim); an optional per-key logit bias (`key_bias`) is the only
mask. The batch dimension of any of q, k, v may be 1 and broadcasts to the others.
"""
from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

from ...kernels.cpu import softmax_

_OPTIONAL_PACKAGES = {"flash_attn": "flash_attn", "sageattention": "sageattention"}
BACKENDS = ("auto", "sdpa", "blocked", *_OPTIONAL_PACKAGES)
_default_backend = "auto"
SCORE_BLOCK_BYTES = 8 * 2**20           # scores held at once by the blocked kernel (cache-sized)
MIN_BLOCK_ROWS = 128


def _package_importable(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def available_backends() -> list[str]:
    """Backends usable in this environment ("sdpa" always; the others when their package imports)."""
    optional = [name for name, package in _OPTIONAL_PACKAGES.items() if _package_importable(package)]
    return ["auto", "sdpa", "blocked", *optional]


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"attention backend: expected one of {BACKENDS}, found {name!r}")
    package = _OPTIONAL_PACKAGES.get(name)
    if package is not None and not _package_importable(package):
        raise ValueError(f"attention backend {name!r} needs the package {package!r}, which is not installed")
    return name


def set_attention_backend(name: str) -> None:
    """Choose the backend that `attention` uses when the caller names none."""
    global _default_backend
    _default_backend = _check_backend(name)


def _broadcast_batch(q, k, v):
    batch = max(q.shape[0], k.shape[0], v.shape[0])
    return tuple(t.expand(batch, *t.shape[1:]) for t in (q, k, v))


def _sdpa(q, k, v, key_bias=None):
    q, k, v = _broadcast_batch(q, k, v)
    mask = None if key_bias is None else key_bias[:, None, None, :].to(q.dtype)   # [B, 1, 1, Lk]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def _blocked(q, k, v, key_bias=None):
    """Blocked attention with batched matmuls on q, k, v [B, L, N, d]; the result is token-major in memory
    ([B, Lq, N, d], the layout the output projection reads without a copy)."""
    batch = max(q.shape[0], k.shape[0], v.shape[0])
    out = torch.empty(batch, *q.shape[1:], dtype=q.dtype, device=q.device)
    shared_keys = k.shape[0] == v.shape[0] == 1 and (key_bias is None or key_bias.shape[0] == 1)
    scores, keys = _ScoreBuffer(q), None
    for b in range(batch):
        if keys is None or not shared_keys:                  # keys of a batch-1 k, v are prepared once
            bias = None if key_bias is None else _sample(key_bias, b)
            keys = _prepared_keys(_sample(k, b), _sample(v, b), bias)
        _blocked_into(out[b], _sample(q, b), *keys, scores)
    return out


def _sample(t: torch.Tensor, b: int) -> torch.Tensor:
    return t[b if t.shape[0] > 1 else 0]


def _prepared_keys(k, v, bias):
    """Keys and values [Lk, N, d] of one sample as the blocks read them: kh = centred scaled keys
    [N, Lk', d], vh [N, Lk', d] contiguous, the bias [Lk'] fp32 or None; Lk' drops the trailing keys
    of bias -inf."""
    if bias is not None:
        used = int(torch.isfinite(bias).nonzero().max()) + 1
        k, v = k[:used], v[:used]
        bias = bias[:used].float().contiguous() if bias[:used].any() else None
    return _centred_scaled_keys(k), v.transpose(0, 1).contiguous(), bias


class _ScoreBuffer:
    """One reusable scratch buffer for the score blocks of an attention call (no fresh pages per block)."""

    def __init__(self, like: torch.Tensor):
        self.like, self.storage = like, None

    def take(self, groups: int, rows: int, k_len: int) -> torch.Tensor:
        size = groups * rows * k_len
        if self.storage is None or self.storage.numel() < size:
            self.storage = torch.empty(size, dtype=self.like.dtype, device=self.like.device)
        return self.storage[:size].view(groups, rows, k_len)


def _blocked_into(out, q, kh, vh, bias, scores: _ScoreBuffer):
    """out [Lq, N, d] = attention of q [Lq, N, d] over prepared keys kh and values vh [N, Lk, d]
    (+ bias [Lk] on the logits)."""
    q_len, heads, _ = q.shape
    qh = q.transpose(0, 1).contiguous()                              # [N, Lq, d], free when head-major
    oh = out.transpose(0, 1)                                         # [N, Lq, d] view of token-major out
    rows, group_block = _block_shape(heads, q_len, kh.shape[1], q.element_size())
    for g0 in range(0, heads, group_block):
        gs = slice(g0, g0 + group_block)
        for r0 in range(0, q_len, rows):
            q_block = qh[gs, r0:r0 + rows]
            block = scores.take(*q_block.shape[:2], kh.shape[1])            # [g, r, Lk]
            torch.bmm(q_block, kh[gs].transpose(1, 2), out=block)
            softmax_(block, bias)
            torch.bmm(block, vh[gs], out=oh[gs, r0:r0 + rows])


def _centred_scaled_keys(k: torch.Tensor) -> torch.Tensor:
    """(k − mean over the sequence) / sqrt(d) for k [Lk, N, d], rounded once, as [N, Lk, d].

    Any key offset shared by all keys leaves the softmax unchanged, so the mean itself may be rounded.
    """
    k_len, heads, head_dim = k.shape
    scale = head_dim ** -0.5
    kh = k.transpose(0, 1)                                                   # [N, Lk, d]
    offset = kh.float().sum(dim=1, keepdim=True).mul_(-scale / k_len).to(k.dtype)   # [N, 1, d]
    return torch.add(offset, kh, alpha=scale)


def _block_shape(groups: int, q_len: int, k_len: int, itemsize: int) -> tuple[int, int]:
    """(query rows, head groups) per block so that the scores take about SCORE_BLOCK_BYTES; the rows
    are split evenly (no small last block, whose matmuls run less efficiently)."""
    per_row = k_len * itemsize
    rows = min(q_len, max(MIN_BLOCK_ROWS, SCORE_BLOCK_BYTES // (groups * per_row)))
    rows = -(-q_len // -(-q_len // rows))                    # ceil(q_len / number of row blocks)
    return rows, max(1, min(groups, SCORE_BLOCK_BYTES // (rows * per_row)))


def _half_precision_call(fn, q, k, v):
    """Run a fp16/bf16-only kernel; fp32 inputs go through bf16 and come back as fp32."""
    dtype = q.dtype
    if dtype not in (torch.float16, torch.bfloat16):
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    return fn(*(t.contiguous() for t in (q, k, v))).to(dtype)


def _flash_attn(q, k, v):
    from flash_attn import flash_attn_func
    return _half_precision_call(flash_attn_func, *_broadcast_batch(q, k, v))


def _sageattention(q, k, v):
    from sageattention import sageattn
    return _half_precision_call(lambda a, b, c: sageattn(a, b, c, tensor_layout="NHD", is_causal=False),
                                *_broadcast_batch(q, k, v))


_KERNELS = {"sdpa": _sdpa, "blocked": _blocked, "flash_attn": _flash_attn, "sageattention": _sageattention}


def _auto_backend(q: torch.Tensor) -> str:
    return "blocked" if q.device.type == "cpu" and q.dtype == torch.bfloat16 else "sdpa"


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str | None = None,
              key_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention of q [B, Lq, N, d] over k, v [B, Lk, N, d]; returns [B, Lq, N, d] in q's dtype.

    key_bias [B, Lk] (fp32, optional) is added to every query's scaled logit of each key; -inf removes
    a key. flash_attn and sageattention take no bias, so calls with one go through SDPA.
    """
    name = _default_backend if backend is None else _check_backend(backend)
    if name == "auto":
        name = _auto_backend(q)
    if key_bias is None:
        return _KERNELS[name](q, k, v)
    return (_blocked if name == "blocked" else _sdpa)(q, k, v, key_bias)

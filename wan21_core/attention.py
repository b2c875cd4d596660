"""Attention backends for the DiT: one call, q, k, v [B, L, heads, head_dim] -> [B, Lq, heads, head_dim].

Backends:
- "sdpa" (default): torch.nn.functional.scaled_dot_product_attention, any device and dtype.
- "flash_attn": flash_attn.flash_attn_func (CUDA, fp16/bf16; fp32 inputs run in bf16 like the official code).
- "sageattention": sageattention.sageattn (CUDA, INT8 QK; fp32 inputs run in bf16).
The optional packages are imported only when their backend is chosen. Attention is always global,
unmasked, non-causal, with the scale 1/sqrt(head_dim). The batch dimension of any of q, k, v may be 1
and broadcasts to the others.
"""
from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

_OPTIONAL_PACKAGES = {"flash_attn": "flash_attn", "sageattention": "sageattention"}
BACKENDS = ("sdpa", *_OPTIONAL_PACKAGES)
_default_backend = "sdpa"


def _package_importable(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def available_backends() -> list[str]:
    """Backends usable in this environment ("sdpa" always; the others when their package imports)."""
    return ["sdpa"] + [name for name, pkg in _OPTIONAL_PACKAGES.items() if _package_importable(pkg)]


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


def get_attention_backend() -> str:
    return _default_backend


def _broadcast_batch(q, k, v):
    batch = max(q.shape[0], k.shape[0], v.shape[0])
    return tuple(t.expand(batch, *t.shape[1:]) for t in (q, k, v))


def _sdpa(q, k, v):
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


def _half_precision_call(fn, q, k, v):
    """Run a fp16/bf16-only kernel; fp32 inputs go through bf16 and come back as fp32."""
    dtype = q.dtype
    if dtype not in (torch.float16, torch.bfloat16):
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    return fn(*(t.contiguous() for t in (q, k, v))).to(dtype)


def _flash_attn(q, k, v):
    from flash_attn import flash_attn_func
    return _half_precision_call(flash_attn_func, q, k, v)


def _sageattention(q, k, v):
    from sageattention import sageattn
    return _half_precision_call(lambda a, b, c: sageattn(a, b, c, tensor_layout="NHD", is_causal=False), q, k, v)


_KERNELS = {"sdpa": _sdpa, "flash_attn": _flash_attn, "sageattention": _sageattention}


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """Softmax attention of q [B, Lq, N, d] over k, v [B, Lk, N, d]; returns [B, Lq, N, d] in q's dtype."""
    name = _default_backend if backend is None else _check_backend(backend)
    return _KERNELS[name](*_broadcast_batch(q, k, v))

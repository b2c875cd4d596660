"""Per-token numerics of the Wan2.1 DiT blocks: linears, norms, modulation, GELU, residual updates, token chunks.

Everything here works on a [tokens, width] slice as well as on a whole [B, L, width] tensor. The
blocks walk the tokens in chunks (`token_chunks`), which bounds the memory of the fp32 intermediates
of the per-token work for long videos (8 MiB of fp32 per chunk on CPU, sized by measurement).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...kernels.cpu import layer_norm_bf16

TOKEN_CHUNK_ELEMENTS = {"cpu": 2**21}    # activation elements per token chunk, by device type ...
TOKEN_CHUNK_ELEMENTS_DEFAULT = 2**26     # ... elsewhere only a bound on memory
MIN_CHUNK_TOKENS = 128
GELU_BLOCK_ELEMENTS = 2**19              # fp32 scratch of the CPU GELU (2 MiB, cache-resident)
_GELU_LINEAR = 2 * math.sqrt(2 / math.pi)   # gelu_tanh(x) = x·σ(x·(_GELU_LINEAR + _GELU_CUBIC·x²))
_GELU_CUBIC = _GELU_LINEAR * 0.044715


def token_chunks(batch: int, length: int, width: int, device: torch.device) -> list[tuple[int, slice]]:
    """(sample, token slice) pairs covering [batch, length] in equal chunks of about
    TOKEN_CHUNK_ELEMENTS / width tokens (at least MIN_CHUNK_TOKENS)."""
    budget = TOKEN_CHUNK_ELEMENTS.get(device.type, TOKEN_CHUNK_ELEMENTS_DEFAULT)
    pieces = -(-length // max(MIN_CHUNK_TOKENS, budget // width))
    size = -(-length // pieces)
    return [(b, slice(start, start + size)) for b in range(batch) for start in range(0, length, size)]


def with_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """x [B, ...] as an owned contiguous tensor of batch max(B, batch) (no copy when nothing changes)."""
    return x.expand(max(x.shape[0], batch), *x.shape[1:]).contiguous()


def head_major_empty(batch: int, length: int, heads: int, head_dim: int, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """An uninitialised [B, L, N, d] tensor stored head-major ([B, N, L, d] in memory), the layout
    batched attention kernels read without a copy."""
    return torch.empty(batch, heads, length, head_dim, dtype=dtype, device=device).transpose(1, 2)


def layer_norm(x: torch.Tensor, eps: float, norm: nn.LayerNorm | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """LayerNorm of x in fp32, affine with `norm`'s parameters when given (stored in any dtype), returned
    in `dtype`."""
    weight = bias = None
    if norm is not None:
        weight, bias = norm.weight.float(), norm.bias.float()
    return _normed(x, eps, weight, bias, dtype)


def modulated_norm(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """LayerNorm(x) · (1 + scale) + shift in fp32, returned in `dtype`; shift, scale [B or 1, 1, C] (or
    [1, C]) broadcast over tokens.

    A batch-1 modulation (one timestep for the whole batch, as in CFG) becomes the LayerNorm's own
    affine parameters, so the whole thing is one pass over x.
    """
    if shift.shape[0] == 1:
        return _normed(x, eps, (1 + scale).flatten(), shift.flatten(), dtype)
    return torch.addcmul(shift, layer_norm(x, eps), 1 + scale).to(dtype)


def _normed(x: torch.Tensor, eps: float, weight: torch.Tensor | None, bias: torch.Tensor | None,
            dtype: torch.dtype) -> torch.Tensor:
    """fp32 LayerNorm with optional fp32 affine, in `dtype`; to bf16 it is one pass (`cpu_kernels` on CPU)."""
    if dtype == torch.bfloat16:
        return layer_norm_bf16(x, eps, weight, bias)
    return F.layer_norm(x.float(), x.shape[-1:], weight, bias, eps).to(dtype)


def residual_add(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
    """x + y · gate (or x + y) in x's dtype, in place on x when the result keeps x's shape."""
    shapes = (x.shape, y.shape) if gate is None else (x.shape, y.shape, gate.shape)
    if torch.broadcast_shapes(*shapes) == x.shape:
        return x.add_(y) if gate is None else x.addcmul_(y, gate)
    return x + y.to(x.dtype) if gate is None else torch.addcmul(x, y.to(x.dtype), gate)


def add_projection_(x: torch.Tensor, attn: torch.Tensor, proj: nn.Module, gate: torch.Tensor | None = None) -> None:
    """x += proj(attn) · gate (or + proj(attn)), in place a chunk of tokens at a time.

    x [B, L, C] fp32 residual stream; attn [B or 1, L, N, d] attention output in the compute dtype;
    gate [B or 1, 1, C] fp32.
    """
    batch, length, dim = x.shape
    for b, tokens in token_chunks(batch, length, dim, x.device):
        y = linear(proj, attn[b if attn.shape[0] > 1 else 0, tokens].reshape(-1, dim))    # [n, C]
        if gate is None:
            x[b, tokens].add_(y)
        else:
            x[b, tokens].addcmul_(y, gate[b if gate.shape[0] > 1 else 0])


def linear(layer: nn.Module, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
    """layer(x), then GELU(tanh) when `gelu`, for the DiT's hot linears.

    On CPU in bfloat16 (no autograd) an `nn.Linear` runs as oneDNN's inner product with the bias and
    the GELU fused in (`torch.ops.mkldnn._linear_pointwise`, the op torch.compile emits for CPU
    linears): that runs at the machine's matmul rate, where `F.linear` adds the bias in a pass of its
    own and the GELU takes two more. The fused GELU works on the fp32 accumulator, so its output is
    rounded to bf16 once instead of twice. Everywhere else (other dtypes and devices, fp8 layers,
    a torch without the op) it is the plain layer call.
    """
    if _fused_linear_applies(layer, x):
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, "gelu" if gelu else "none", [],
                                                  "tanh" if gelu else "")
    y = layer(x)
    return gelu_tanh_(y) if gelu else y


def _fused_linear_applies(layer: nn.Module, x: torch.Tensor) -> bool:
    return (type(layer) is nn.Linear and x.device.type == "cpu" and x.dtype == torch.bfloat16
            and layer.weight.dtype == torch.bfloat16 and (layer.bias is None or layer.bias.dtype == torch.bfloat16)
            and not (torch.is_grad_enabled() and layer.weight.requires_grad) and onednn_linear_available())


@functools.cache
def onednn_linear_available() -> bool:
    """Whether this torch has oneDNN's fused linear and it computes linear + GELU(tanh) (probed once)."""
    try:
        g = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(*shape, generator=g).bfloat16() for shape in ((4, 32), (8, 32), (8,)))
        with torch.no_grad():
            got = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh").float()
        want = F.gelu(F.linear(x.float(), weight.float(), bias.float()), approximate="tanh")
        return got.shape == want.shape and bool(torch.allclose(got, want, rtol=2e-2, atol=2e-2))
    except Exception:  # noqa: BLE001 - a missing, mis-registered or failing private op all mean "no"
        return False


def gelu_tanh_(x: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation (the DiT FFN's activation), in place on x [n, F]; returns x.

    On CPU it uses the identity ½·(1 + tanh z) = σ(2z): gelu(x) = x·σ(2z), z = √(2/π)·(x + 0.044715·x³),
    evaluated in fp32 over blocks of rows small enough to stay in cache (torch's vectorised sigmoid
    is much cheaper than its tanh). Same function as F.gelu(approximate="tanh"): fp32 difference ~1e-7.
    """
    if x.device.type != "cpu":
        return torch.ops.aten.gelu_(x, approximate="tanh")
    rows = max(1, GELU_BLOCK_ELEMENTS // x.shape[-1])
    scratch = torch.empty(min(rows, x.shape[0]), x.shape[-1], dtype=torch.float32)
    for part in x.split(rows):
        two_z = scratch[:part.shape[0]].copy_(part).square_().mul_(_GELU_CUBIC).add_(_GELU_LINEAR).mul_(part)
        part.copy_(two_z.sigmoid_().mul_(part))
    return x

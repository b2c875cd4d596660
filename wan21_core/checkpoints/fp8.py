"""fp8 weights: dequantising ComfyUI's scaled fp8 files, and a Linear that keeps fp8 storage.

ComfyUI's scaled fp8 layout (read in `comfy/model_detection.py` and `comfy/ops.py`,
`scaled_fp8_ops`, ComfyUI 0.3.64):
- a marker tensor `scaled_fp8` (usually empty) whose dtype is the fp8 storage dtype
  (a float32 marker means float8_e4m3fn);
- every quantised Linear stores `weight` in fp8 and a float32 scalar `scale_weight`; the real
  weight is `weight * scale_weight`;
- optionally `scale_input`, a float32 scalar only used by the fp8 matmul path
  (`torch._scaled_mm`), where it scales the activations before they are cast to fp8. It does not
  change the product, so dequantised loading ignores it.
A plain (unscaled) fp8 file stores fp8 tensors without `scale_weight`: their scale is 1.
ComfyUI's scaled Linear is created in the storage dtype, so its bias is fp8 too, unscaled.
Newer tools spell the scales `weight_scale` / `input_scale`; both spellings are read, and the
per-layer `comfy_quant` metadata tensors of newer ComfyUI files are not weights.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
SCALED_FP8_MARKER = "scaled_fp8"
SCALE_WEIGHT = "scale_weight"
SCALE_WEIGHT_NAMES = (SCALE_WEIGHT, "weight_scale")
NOT_WEIGHTS = ("scale_weight", "weight_scale", "scale_input", "input_scale", "comfy_quant")   # per-layer leaves


def is_fp8(dtype: torch.dtype) -> bool:
    return dtype in FP8_DTYPES


def marker_storage_dtype(marker: torch.dtype) -> torch.dtype:
    """The fp8 storage dtype announced by a `scaled_fp8` marker of dtype `marker`."""
    return torch.float8_e4m3fn if marker == torch.float32 else marker


def _broadcastable_scale(scale: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A per-tensor scale as a 0-d tensor, a per-output-row scale as [out, 1, ...]."""
    scale = scale.float()
    if scale.numel() == 1:
        return scale.reshape(())
    if scale.numel() == weight.shape[0]:
        return scale.reshape(weight.shape[0], *([1] * (weight.dim() - 1)))
    raise ValueError(f"scale of shape {tuple(scale.shape)} does not fit a weight of shape {tuple(weight.shape)}")


def dequantize(weight: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """`weight.float() * scale`, then cast to `dtype` (scale 1 when None)."""
    value = weight.float()
    if scale is not None:
        value = value * _broadcastable_scale(scale.to(value.device), value)
    return value.to(dtype)


def quantize(weight: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaled fp8: (fp8 weight, float32 scale) with weight ≈ fp8 · scale.

    The scale maps the largest magnitude onto the largest finite fp8 value.
    """
    value = weight.float()
    amax = value.abs().max().clamp(min=torch.finfo(torch.float32).tiny)
    scale = amax / torch.finfo(dtype).max
    return (value / scale).to(dtype), scale.reshape(())


class FP8Linear(nn.Module):
    """A Linear whose weight stays in fp8; it is dequantised per call in `compute_dtype`.

    State-dict keys: `weight` (fp8 [out, in]), `scale_weight` (float32, 0-d or [out]),
    `bias` (optional, kept in `compute_dtype`). The input is cast to `compute_dtype` and the
    output stays in `compute_dtype`, as for an nn.Linear whose parameters are in that dtype.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 storage_dtype: torch.dtype = torch.float8_e4m3fn, compute_dtype: torch.dtype = torch.bfloat16,
                 device: torch.device | str | None = None):
        super().__init__()
        if not is_fp8(storage_dtype):
            raise ValueError(f"FP8Linear: storage dtype must be one of {FP8_DTYPES}, found {storage_dtype}")
        self.in_features, self.out_features = in_features, out_features
        self.compute_dtype = compute_dtype
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=storage_dtype, device=device),
                                   requires_grad=False)
        self.scale_weight = nn.Parameter(torch.ones((), dtype=torch.float32, device=device), requires_grad=False)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, dtype=compute_dtype, device=device), requires_grad=False)
        else:
            self.register_parameter("bias", None)

    @classmethod
    def like(cls, linear: nn.Linear, storage_dtype: torch.dtype, compute_dtype: torch.dtype) -> "FP8Linear":
        """An empty FP8Linear with the shape of `linear`, on its device."""
        return cls(linear.in_features, linear.out_features, linear.bias is not None,
                   storage_dtype, compute_dtype, device=linear.weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        return dequantize(self.weight, self.scale_weight, self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        return F.linear(x.to(self.compute_dtype), self.dequantized_weight(), bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, storage={self.weight.dtype}, compute={self.compute_dtype}")


def swap_linears_for_fp8(model: nn.Module, storage_dtype: torch.dtype, compute_dtype: torch.dtype,
                         keep: Callable[[str], bool] = lambda name: False) -> list[str]:
    """Replace every nn.Linear of `model` whose `<name>.weight` is not kept by `keep` with an
    empty FP8Linear (same device, normally meta). Returns the names of the replaced modules."""
    replaced = []
    for name, module in list(model.named_modules()):
        if type(module) is not nn.Linear or keep(f"{name}.weight"):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FP8Linear.like(module, storage_dtype, compute_dtype))
        replaced.append(name)
    return replaced

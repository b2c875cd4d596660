"""The steps every loader shares: build on the meta device, check the keys, read each tensor once in its
final dtype and place it, and hand the model over with nothing left on the meta device.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from .checkpoint import KIND_NAMES, Checkpoint, CheckpointError
from .fp8 import FP8Linear, is_fp8, quantize


def check_plain_dtype(dtype: torch.dtype, caller: str) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or is_fp8(dtype):
        raise ValueError(f"{caller}: dtype must be float32, float16 or bfloat16; found {dtype}")


def config_or_error(checkpoint: Checkpoint, read_config: Callable):
    try:
        return read_config(checkpoint.shapes())
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{checkpoint.path}: cannot read the {KIND_NAMES[checkpoint.kind]} config: "
                              f"{err.args[0] if err.args else err}") from None


def expected_shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_keys(checkpoint: Checkpoint, expected: Mapping[str, tuple], optional: Iterable[str] = ()) -> None:
    """Every expected tensor present with its shape; nothing unknown besides `optional` keys."""
    found = set(checkpoint.keys())
    missing = sorted(k for k in expected if k not in found and not k.endswith(".scale_weight"))
    unexpected = sorted(k for k in found if k not in expected and k not in optional)
    wrong = sorted(k for k in expected if k in found and tuple(checkpoint.meta(k).shape) != tuple(expected[k]))
    if not (missing or unexpected or wrong):
        return
    parts = []
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
    if wrong:
        parts.append("shape mismatches: " + ", ".join(
            f"{k} {tuple(checkpoint.meta(k).shape)} vs {tuple(expected[k])}" for k in wrong[:3]))
    raise CheckpointError(f"{checkpoint.path}: the keys do not match a {KIND_NAMES[checkpoint.kind]} "
                          f"({checkpoint.naming} naming, detected config): " + "; ".join(parts))


def read_state(checkpoint: Checkpoint, expected: Mapping[str, tuple], target: Callable[[str], torch.dtype],
                device, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read every expected tensor, one at a time, in its final dtype and on `device`.

    Weights of `FP8Linear` modules stay fp8 (file fp8 of the same dtype is kept with its scale;
    anything else is quantised per tensor).
    """
    fp8_modules = {name for name, m in model.named_modules() if isinstance(m, FP8Linear)}
    state: dict[str, torch.Tensor] = {}
    for key in expected:
        module, _, param = key.rpartition(".")
        if module in fp8_modules and param in ("weight", "scale_weight"):
            if param == "weight":
                storage = model.get_submodule(module).weight.dtype
                state[key], state[f"{module}.scale_weight"] = _fp8_weight(checkpoint, key, storage, device)
            continue
        if module in fp8_modules and param == "bias":
            state[key] = checkpoint.read(key, model.get_submodule(module).compute_dtype, device)
            continue
        state[key] = checkpoint.read(key, target(key), device)
    return state


def _fp8_weight(checkpoint: Checkpoint, key: str, storage: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale) for an FP8Linear: as stored when possible, else quantised."""
    if checkpoint.meta(key).dtype == storage:
        scale = checkpoint.scale(key)
        weight = checkpoint.read(key, storage, device, keep_fp8=True)
        return weight, (scale if scale is not None else torch.ones(())).to(device=device, dtype=torch.float32)
    weight, scale = quantize(checkpoint.read(key, torch.float32, device), storage)
    return weight, scale


def finish(model: nn.Module, device) -> nn.Module:
    """Eval mode, no grads, and no tensor left on the meta device."""
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"{type(model).__name__}: tensors left on the meta device after loading: "
                           f"{', '.join(left[:5])}")
    return model.eval().requires_grad_(False)

"""A cascade stage: this package's `CompactSR` or any single-image model spandrel loads.

`Stage` gives every model the same small interface (scale, size requirements, ``run``, device
moves, state dict), so the cascade and the tiled runner never care where a model came from.
spandrel is imported only when a foreign model is involved.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .network import CompactSR, compact_from_state_dict

COMPACT_ARCH = "Compact"
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
_CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g")


class UpscaleModelError(ValueError):
    """A model file or object cannot be used as a cascade stage."""


@dataclass
class Stage:
    """One model of the cascade.

    ``model`` is the `nn.Module` that holds the weights; ``descriptor`` is the spandrel
    ``ImageModelDescriptor`` for foreign models (None for `CompactSR`). ``multiple_of``,
    ``minimum`` and ``square`` are the input-size requirements the tiled runner pads to.
    """

    name: str
    model: nn.Module
    scale: int
    arch: str = COMPACT_ARCH
    descriptor: Any = None
    multiple_of: int = 1
    minimum: int = 0
    square: bool = False

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in 0..1 (size requirements already met) → ``[B, 3, sH, sW]`` in 0..1."""
        if self.descriptor is not None:
            return self.descriptor(x)
        return self.model(x).clamp_(0, 1)

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> "Stage":
        if self.descriptor is not None:
            self.descriptor.to(device=device, dtype=dtype)
        else:
            self.model.to(device=device, dtype=dtype)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}

    @property
    def parameter(self) -> torch.Tensor:
        """A parameter of the model (its device and dtype are the stage's)."""
        return next(self.model.parameters())


def stage_from_compact(net: CompactSR, name: str = "compact") -> Stage:
    return Stage(name=name, model=net.eval(), scale=net.scale)


def stage_from_descriptor(descriptor: Any, name: str | None = None) -> Stage:
    """Wrap a spandrel ``ImageModelDescriptor`` (e.g. ComfyUI's UPSCALE_MODEL)."""
    from spandrel import ImageModelDescriptor

    if not isinstance(descriptor, ImageModelDescriptor):
        raise UpscaleModelError(
            f"upscale model: expected a single-image spandrel ImageModelDescriptor, "
            f"found {type(descriptor).__name__}")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise UpscaleModelError(
            f"upscale model {descriptor.architecture.name}: expected 3 input and 3 output "
            f"channels, found {descriptor.input_channels} → {descriptor.output_channels}")
    req = descriptor.size_requirements
    return Stage(name=name or descriptor.architecture.name, model=descriptor.model.eval(),
                 scale=int(descriptor.scale), arch=descriptor.architecture.id,
                 descriptor=descriptor, multiple_of=req.multiple_of, minimum=req.minimum,
                 square=req.square)


def as_stage(model: Any, name: str | None = None) -> Stage:
    """Accept a `Stage`, a `CompactSR` or a spandrel ``ImageModelDescriptor``."""
    if isinstance(model, Stage):
        return model
    if isinstance(model, CompactSR):
        return stage_from_compact(model, name or "compact")
    if isinstance(model, (str, os.PathLike)):
        return load_stage(model)
    return stage_from_descriptor(model, name)


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a training checkpoint (``params_ema``, ``state_dict``, ...)."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise UpscaleModelError(f"{source}: expected a state dict of tensors, "
                                f"found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or a PyTorch pickle file (read with ``weights_only=True``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"upscale model file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    if path.endswith(TORCH_SUFFIXES):
        return unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    raise UpscaleModelError(f"upscale model {path}: expected a .safetensors, "
                            f"{', '.join(TORCH_SUFFIXES)} file")


def stage_from_state_dict(state: dict[str, torch.Tensor], name: str,
                          arch: str | None = None) -> Stage:
    """Build a stage: `CompactSR` for the Compact layout, spandrel for everything else.

    ``arch`` (as recorded in a cascade file) skips the detection; None detects.
    """
    if arch in (None, COMPACT_ARCH):
        try:
            return stage_from_compact(compact_from_state_dict(state), name)
        except (ValueError, RuntimeError, KeyError) as err:
            if arch == COMPACT_ARCH:
                raise UpscaleModelError(f"{name}: not a valid Compact state dict ({err})") from err
    from spandrel import ModelLoader, UnsupportedModelError

    try:
        descriptor = ModelLoader().load_from_state_dict(state)
    except UnsupportedModelError as err:
        raise UpscaleModelError(f"{name}: spandrel does not recognise this model "
                                f"(first keys: {sorted(state)[:4]})") from err
    return stage_from_descriptor(descriptor, name)


def load_stage(path: str | os.PathLike) -> Stage:
    """One single-image SR model file: Compact, or anything spandrel loads (ESRGAN, SPAN, ...)."""
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return stage_from_state_dict(read_state_dict(path), name)


def save_stage(stage: Stage, path: str | os.PathLike, half: bool = False) -> None:
    """Write one stage as a standalone file that spandrel / ComfyUI's UpscaleModelLoader load."""
    from safetensors.torch import save_file

    state = stage.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file({k: v.cpu() for k, v in state.items()}, os.fspath(path))

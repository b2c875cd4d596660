"""Where a loaded model lives between runs, and moving it to the compute device while it works.

"auto": the model waits on ComfyUI's offload device (CPU) and visits the GPU while a node uses it
(the official `offload_model` behaviour); "gpu": it stays on the GPU; "cpu": it computes on the CPU.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from . import comfy_adapter as comfy

PLACEMENTS = ("auto", "gpu", "cpu")


class ModelHandle:
    """A loaded model plus its placement policy; this is what flows between the nodes."""

    def __init__(self, model, placement: str = "auto", label: str = "model"):
        if placement not in PLACEMENTS:
            raise ValueError(f"device: expected one of {PLACEMENTS}, found {placement!r}")
        self.model, self.placement, self.label = model, placement, label

    @staticmethod
    def load_device(placement: str) -> torch.device:
        """Where the loader should put the weights for this placement."""
        return comfy.torch_device() if placement == "gpu" else (
            torch.device("cpu") if placement == "cpu" else comfy.offload_device())

    @staticmethod
    def compute_device_of(placement: str) -> torch.device:
        """Where a model of this placement computes: the CPU for "cpu", otherwise ComfyUI's torch device."""
        return torch.device("cpu") if placement == "cpu" else comfy.torch_device()

    @property
    def compute_device(self) -> torch.device:
        return self.compute_device_of(self.placement)

    @contextmanager
    def use(self):
        """Yield the model on its compute device; an "auto" model goes back to the offload device after."""
        device = self.compute_device
        current = _device_of(self.model)
        if current != device:
            comfy.make_room(_size_of(self.model), device)
            self.model.to(device)
        try:
            yield self.model
        finally:
            if self.placement == "auto" and current != device:
                self.model.to(current)
                comfy.release_memory()

    def __repr__(self) -> str:
        return f"ModelHandle({self.label}, {self.placement})"


def _module_of(model) -> torch.nn.Module:
    """The torch module behind a model object (the encoders wrap a transformers model)."""
    return model if isinstance(model, torch.nn.Module) else model.model


def _device_of(model) -> torch.device:
    return next(_module_of(model).parameters()).device


def _size_of(model) -> int:
    return sum(p.numel() * p.element_size() for p in _module_of(model).parameters())

"""The cascade: ×2 stages applied progressively, then the detail enhancer, then a final resize.

Cascade file (``.safetensors``):

* tensors: each model's state dict under its own prefix (``stage0.body.0.weight``,
  ``stage1.…``, ``enhancer.…``); stored in float16 for the shipped files, loaded as float32;
* metadata key ``wan21_upscale_cascade``: JSON ``{"format": "wan21-upscale-cascade",
  "version": 1, "stages": [{"name", "prefix", "arch", "scale"}, ...], "enhancer": {...} | null,
  "info": {...}}``. ``arch`` is ``"Compact"`` (this package's network) or a spandrel
  architecture id, so a cascade may also embed foreign stages.

A single stage (``stage0.*`` without its prefix) is a spandrel "Compact" model; `save_stage`
writes it as a file ComfyUI's UpscaleModelLoader loads. `load_cascade` also accepts any single
SR model file and treats it as a one-stage cascade.

Planning (`Cascade.plan`): a ×2**n request runs n ×2 steps; step i uses stage min(i, last), so
a two-stage cascade serves ×8 by repeating its second stage. A stage whose native scale is not 2
(a ×4 model in a ×2 slot) is followed by a resize to exactly twice its input. A target height
takes ceil(log2(target / height)) steps and ends with a resize to the exact size.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .stages import (COMPACT_ARCH, Stage, UpscaleModelError, as_stage, read_state_dict,
                     stage_from_state_dict)

FORMAT = "wan21-upscale-cascade"
VERSION = 1
METADATA_KEY = "wan21_upscale_cascade"
SCALES = (2, 4, 8)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
VARIANTS = {"psnr": "upscale_cascade_psnr.safetensors",
            "adversarial": "upscale_cascade_adversarial.safetensors"}


@dataclass(frozen=True)
class RunStep:
    """Run ``stage`` (tiled) on an image of ``in_size`` = (H, W); the output has ``out_size``."""

    stage: Stage
    in_size: tuple[int, int]
    out_size: tuple[int, int]


@dataclass(frozen=True)
class ResizeStep:
    """Resample from ``in_size`` to ``out_size`` (antialiased bicubic)."""

    in_size: tuple[int, int]
    out_size: tuple[int, int]


@dataclass(frozen=True)
class Plan:
    steps: tuple[RunStep | ResizeStep, ...]
    out_size: tuple[int, int]

    @property
    def runs(self) -> list[RunStep]:
        return [s for s in self.steps if isinstance(s, RunStep)]


class Cascade:
    """×2 stages + optional ×1 detail enhancer.

    Args:
        stages: one or more models used as ×2 steps, in order (`Stage`, this package's
            `CompactSR`, or a spandrel ``ImageModelDescriptor`` such as ComfyUI's UPSCALE_MODEL).
        enhancer: optional ×1 model run after the last ×2 step.
        info: free-form metadata saved with the cascade (variant, training summary).
    """

    def __init__(self, stages: Sequence[Any], enhancer: Any = None, info: dict | None = None):
        if not stages:
            raise UpscaleModelError("cascade: expected at least one stage, found none")
        self.stages = [as_stage(s, f"stage{i}") for i, s in enumerate(stages)]
        for stage in self.stages:
            if stage.scale < 2:
                raise UpscaleModelError(f"cascade stage {stage.name}: expected an upscaling "
                                        f"model (scale >= 2), found scale {stage.scale}")
        self.enhancer = None if enhancer is None else as_stage(enhancer, "enhancer")
        if self.enhancer is not None and self.enhancer.scale != 1:
            raise UpscaleModelError(f"cascade enhancer: expected a ×1 model, "
                                    f"found scale {self.enhancer.scale}")
        self.info = dict(info or {})

    @classmethod
    def from_stages(cls, stages: Sequence[Any], enhancer: Any = None,
                    info: dict | None = None) -> "Cascade":
        """Build a cascade from models (see the class docstring for the accepted types)."""
        return cls(stages, enhancer, info)

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> "Cascade":
        for stage in self.models():
            stage.to(device, dtype)
        return self

    def models(self) -> list[Stage]:
        return self.stages + ([self.enhancer] if self.enhancer is not None else [])

    @property
    def device(self) -> torch.device:
        return self.stages[0].parameter.device

    def stage_for_step(self, step: int) -> Stage:
        return self.stages[min(step, len(self.stages) - 1)]

    def plan(self, height: int, width: int, scale: int | None = None,
             target_height: int | None = None) -> Plan:
        """The steps that take an ``height``×``width`` image to ×``scale`` or ``target_height``."""
        num_x2, out_size = _plan_size(height, width, scale, target_height)
        steps: list[RunStep | ResizeStep] = []
        size = (height, width)
        for i in range(num_x2):
            stage = self.stage_for_step(i)
            native = (size[0] * stage.scale, size[1] * stage.scale)
            steps.append(RunStep(stage, size, native))
            doubled = (size[0] * 2, size[1] * 2)
            if native != doubled:
                steps.append(ResizeStep(native, doubled))
            size = doubled
        if num_x2 and self.enhancer is not None:
            steps.append(RunStep(self.enhancer, size, size))
        if size != out_size:
            steps.append(ResizeStep(size, out_size))
        return Plan(tuple(steps), out_size)

    def describe(self) -> str:
        names = " → ".join(f"{s.name} (×{s.scale}, {s.arch})" for s in self.stages)
        extra = f" → {self.enhancer.name} (×1)" if self.enhancer is not None else ""
        return names + extra


def _plan_size(height: int, width: int, scale: int | None,
               target_height: int | None) -> tuple[int, tuple[int, int]]:
    """(number of ×2 steps, final (H, W)) for a scale or a target height."""
    if height < 1 or width < 1:
        raise ValueError(f"upscale: expected a non-empty image, found {height}x{width}")
    if (scale is None) == (target_height is None):
        raise ValueError("upscale: pass exactly one of scale (2, 4, 8) and target_height")
    if scale is not None:
        if scale not in SCALES:
            raise ValueError(f"upscale: scale must be one of {SCALES}, found {scale}")
        return int(math.log2(scale)), (height * scale, width * scale)
    if target_height < 1:
        raise ValueError(f"upscale: target_height must be positive, found {target_height}")
    ratio = target_height / height
    num_x2 = max(0, math.ceil(math.log2(ratio) - 1e-9))
    return num_x2, (target_height, max(1, round(width * ratio)))


def save_cascade(cascade: Cascade, path: str | os.PathLike, half: bool = True) -> None:
    """Write a cascade file (format in the module docstring); ``half`` stores float16 tensors."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}

    def add(stage: Stage, prefix: str) -> dict:
        for key, value in stage.state_dict().items():
            value = value.cpu()
            tensors[prefix + key] = value.half() if half and value.is_floating_point() else value
        return {"name": stage.name, "prefix": prefix, "arch": stage.arch, "scale": stage.scale}

    meta = {"format": FORMAT, "version": VERSION,
            "stages": [add(s, f"stage{i}.") for i, s in enumerate(cascade.stages)],
            "enhancer": add(cascade.enhancer, "enhancer.") if cascade.enhancer else None,
            "info": cascade.info}
    save_file(tensors, os.fspath(path), metadata={METADATA_KEY: json.dumps(meta)})


def read_cascade_metadata(path: str | os.PathLike) -> dict | None:
    """The cascade JSON of a ``.safetensors`` file, or None for a plain model file."""
    path = os.fspath(path)
    if not path.endswith(".safetensors"):
        return None
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        raw = (f.metadata() or {}).get(METADATA_KEY)
    if raw is None:
        return None
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UpscaleModelError(f"{path}: expected cascade format {FORMAT} v{VERSION}, found "
                                f"{meta.get('format')} v{meta.get('version')}")
    return meta


def load_cascade(path: str | os.PathLike) -> Cascade:
    """Load a cascade file, or any single SR model file as a one-stage cascade."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"upscale cascade file not found: {os.fspath(path)}")
    meta = read_cascade_metadata(path)
    state = read_state_dict(path)
    if meta is None:
        name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
        return Cascade([stage_from_state_dict(state, name)])

    def build(entry: dict) -> Stage:
        prefix = entry["prefix"]
        sub = {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)}
        if not sub:
            raise UpscaleModelError(f"{path}: no tensors under prefix {prefix!r}")
        stage = stage_from_state_dict(sub, entry["name"], entry.get("arch", COMPACT_ARCH))
        if stage.scale != entry["scale"]:
            raise UpscaleModelError(f"{path}: stage {entry['name']} has scale {stage.scale}, "
                                    f"metadata says {entry['scale']}")
        return stage

    enhancer = build(meta["enhancer"]) if meta.get("enhancer") else None
    return Cascade([build(e) for e in meta["stages"]], enhancer, meta.get("info"))


def default_cascade_path(variant: str = "psnr") -> str:
    """The file of a shipped cascade: ``"psnr"`` (default, highest fidelity) or ``"adversarial"``."""
    if variant not in VARIANTS:
        raise ValueError(f"default_cascade: variant must be one of {sorted(VARIANTS)}, "
                         f"found {variant!r}")
    return os.path.join(WEIGHTS_DIR, VARIANTS[variant])


def default_cascade(variant: str = "psnr") -> Cascade:
    """The shipped cascade: ``"psnr"`` (default, highest fidelity) or ``"adversarial"``."""
    return load_cascade(default_cascade_path(variant))

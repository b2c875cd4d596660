"""Shared pieces of the node classes: type names, the timed `run` entry point, the model cache."""
from __future__ import annotations

import os
from collections import OrderedDict

from wan21_core.profiling import stage

from . import comfy_adapter as comfy

CATEGORY = "Wan2.1"

# This pack's model types. VAE inputs also accept ComfyUI's own VAE; the upscaler input also
# accepts ComfyUI's UPSCALE_MODEL (a spandrel model).
WAN_DIT = "WAN_DIT"
WAN_T5 = "WAN_T5"
WAN_IMAGE_ENCODER = "WAN_IMAGE_ENCODER"
WAN_VAE = "WAN_VAE"
ANY_VAE = "WAN_VAE,VAE"
WAN_UPSCALER = "WAN_UPSCALER"
ANY_UPSCALER = "WAN_UPSCALER,UPSCALE_MODEL"
WAN_ALIGNMENT = "WAN_ALIGNMENT"   # {"alignment": FrameAlignment, "windows": ContextWindows | None}


class WanNode:
    """Base of every node: ComfyUI calls `run`, which times `execute` and reports the stage stats."""

    FUNCTION = "run"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls):
        types = cls.inputs()
        types.setdefault("hidden", {})["unique_id"] = "UNIQUE_ID"
        return types

    @classmethod
    def inputs(cls) -> dict:
        raise NotImplementedError

    def run(self, unique_id=None, **inputs):
        log = []
        with stage(type(self).__name__, log, comfy.torch_device()):
            result = self.execute(**inputs)
        comfy.send_stage_stats(unique_id, log[0])
        return result

    def execute(self, **inputs):
        raise NotImplementedError


class ModelCache:
    """Keeps the most recent model per loader while its file and options are unchanged."""

    def __init__(self, size: int = 1):
        self.size = size
        self.items: OrderedDict = OrderedDict()

    def get(self, path: str, options: tuple, load):
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size, options)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        while len(self.items) >= self.size:        # free the old model before loading the new one
            self.items.popitem(last=False)
        model = load()
        self.items[key] = model
        return model


def tooltip(text: str, **options) -> dict:
    return {"tooltip": text, **options}

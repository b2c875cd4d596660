"""Cascaded ×2 super-resolution for video frames (network, cascade files, tiled runner, metrics).

Typical use::

    from wan21_core.upscale import default_cascade, upscale_frames
    cascade = default_cascade("psnr")              # or load_cascade(path), Cascade.from_stages
    out = upscale_frames(frames, cascade, scale=4)  # frames: [F, H, W, 3] float in 0..1
"""
from .cascade import Cascade, Plan, default_cascade, default_cascade_path, load_cascade, save_cascade
from .network import CompactConfig, CompactSR
from .stages import Stage, UpscaleModelError, load_stage, save_stage
from .upscaler import upscale_frames

__all__ = ["Cascade", "CompactConfig", "CompactSR", "Plan", "Stage", "UpscaleModelError",
           "default_cascade", "default_cascade_path", "load_cascade", "load_stage", "save_cascade", "save_stage",
           "upscale_frames"]

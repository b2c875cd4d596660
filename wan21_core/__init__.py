"""Wan2.1 image-to-video in pure PyTorch: models, checkpoint loading, sampling, media, upscaling.

This package never imports ComfyUI. Public names are resolved lazily so that importing the
package (for instance while ComfyUI scans custom nodes) costs nothing until a model is used.
"""
from importlib import import_module

_EXPORTS = {   # public name -> the sub-package (or module) that owns it
    "DiTConfig": "models",
    "VAEConfig": "models",
    "LATENT_MEAN": "models.configs",
    "LATENT_STD": "models.configs",
    "load_dit": "checkpoints",
    "load_vae": "checkpoints",
    "load_text_encoder": "checkpoints",
    "load_image_encoder": "checkpoints",
    "CheckpointError": "checkpoints",
    "inspect_checkpoint": "checkpoints",
    "I2VPipeline": "pipeline",
    "load_pipeline": "pipeline",
    "I2VConditioning": "sampling",
    "build_conditioning": "sampling",
    "SamplingOptions": "sampling",
    "FrameAlignment": "sampling",
    "ContextWindows": "sampling",
    "sample": "sampling",
    "make_schedule": "sampling",
    "make_solver": "sampling",
    "Cascade": "upscale",
    "load_cascade": "upscale",
    "default_cascade": "upscale",
    "upscale_frames": "upscale",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wan21_core' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

"""Wan2.1 image-to-video in pure PyTorch: models, checkpoint loading, sampling, upscaling.

This package never imports ComfyUI. Public names are resolved lazily so that importing the
package (for instance while ComfyUI scans custom nodes) costs nothing until a model is used.
"""
from importlib import import_module

_EXPORTS = {
    "DiTConfig": "configs",
    "VAEConfig": "configs",
    "LATENT_MEAN": "configs",
    "LATENT_STD": "configs",
    "load_dit": "loaders",
    "load_vae": "loaders",
    "load_text_encoder": "loaders",
    "load_image_encoder": "loaders",
    "CheckpointError": "checkpoints",
    "inspect_checkpoint": "checkpoints",
    "I2VPipeline": "pipeline",
    "I2VConditioning": "conditioning",
    "build_conditioning": "conditioning",
    "SamplingOptions": "sampler",
    "sample": "sampler",
    "make_schedule": "sigmas",
    "make_solver": "solvers",
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

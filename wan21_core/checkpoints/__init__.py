"""Files on disk -> models: file sets, format, kind and config detection, key maps, fp8 storage, loaders."""
from .checkpoint import CheckpointError, CheckpointInfo, inspect_checkpoint, open_checkpoint
from .loaders import load_dit, load_image_encoder, load_text_encoder, load_vae

__all__ = ["CheckpointError", "CheckpointInfo", "inspect_checkpoint", "load_dit", "load_image_encoder",
           "load_text_encoder", "load_vae", "open_checkpoint"]

"""Files on disk -> models: file sets, format, kind and config detection, key maps, fp8 storage, loaders."""
from .checkpoint import CheckpointError, CheckpointInfo, inspect_checkpoint, open_checkpoint
from .loaders import (default_dit_dtype, image_encoder_from_state_dict, load_dit, load_image_encoder,
                      load_text_encoder, load_vae, text_encoder_from_state_dict, vae_from_state_dict)

__all__ = ["CheckpointError", "CheckpointInfo", "default_dit_dtype", "image_encoder_from_state_dict",
           "inspect_checkpoint", "load_dit", "load_image_encoder", "load_text_encoder", "load_vae",
           "open_checkpoint", "text_encoder_from_state_dict", "vae_from_state_dict"]

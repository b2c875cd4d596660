"""One interface over this pack's WanVAE and ComfyUI's own VAE object (both are accepted as "WAN_VAE,VAE")."""
from __future__ import annotations

import torch

from wan21_core.media import to_unit

from .placement import ModelHandle


def is_comfy_vae(vae) -> bool:
    return hasattr(vae, "first_stage_model") and hasattr(vae, "decode") and not isinstance(vae, ModelHandle)


def check_wan21(vae) -> None:
    """A ComfyUI VAE must be the Wan 2.1 one (16 latent channels, 4x8x8 compression)."""
    if not is_comfy_vae(vae):
        if not isinstance(vae, ModelHandle):
            raise ValueError(f"vae: expected a Wan VAE (from Wan VAE Loader or ComfyUI's Load VAE), "
                             f"found {type(vae).__name__}")
        return
    model = type(vae.first_stage_model)
    if model.__module__ != "comfy.ldm.wan.vae" or getattr(vae, "latent_channels", None) != 16:
        raise ValueError(f"vae: expected the Wan 2.1 VAE (wan_2.1_vae.safetensors), found "
                         f"{model.__module__}.{model.__name__} with {getattr(vae, 'latent_channels', '?')} "
                         f"latent channels")


def encode(vae, video: torch.Tensor, tile: int | None = None, callback=None) -> torch.Tensor:
    """video [1, 3, F, H, W] in [-1, 1] -> raw latent [1, 16, T, H/8, W/8] (float32, CPU)."""
    check_wan21(vae)
    if is_comfy_vae(vae):
        return vae.encode(to_unit(video[0])).float().cpu()              # ComfyUI takes IMAGE [F, H, W, 3]
    with vae.use() as model:
        options = {"tile": tile} if tile else {}
        return model.encode(video.to(model.device, model.dtype), callback=callback, **options).float().cpu()


def decode(vae, latent: torch.Tensor, tile: int | None = None, callback=None) -> torch.Tensor:
    """raw latent [B, 16, T, h, w] -> IMAGE [B*F, H, W, 3] in 0..1 (float32, CPU)."""
    check_wan21(vae)
    if is_comfy_vae(vae):
        images = vae.decode(latent)                                      # [B, F, H, W, 3]
        return images.reshape(-1, *images.shape[-3:]).float().cpu()
    frames = []
    with vae.use() as model:
        options = {"tile": tile} if tile else {}
        for item in latent:
            video = model.decode(item[None].to(model.device, model.dtype), callback=callback, **options)
            frames.append(to_unit(video[0].cpu()))                      # [F, H, W, 3]
    return torch.cat(frames)

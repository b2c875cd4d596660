"""Cheap previews of a Wan2.1 latent: a linear latent-to-RGB map, no VAE.

The factors are the Wan 2.1 ones ComfyUI uses for its latent2rgb previewer; they act on the
normalised latent (the space the sampler works in).
"""
from __future__ import annotations

import torch
from PIL import Image

# 16 latent channels x (R, G, B), and the RGB bias.
LATENT_RGB_FACTORS = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861),
)
LATENT_RGB_BIAS = (-0.1835, -0.0868, -0.3360)


def latent_to_rgb(latent: torch.Tensor) -> torch.Tensor:
    """Normalised latent [16, T, h, w] (or [1, 16, T, h, w]) -> RGB frames [T, h, w, 3] in 0..1."""
    if latent.ndim == 5:
        latent = latent[0]
    if latent.ndim != 4 or latent.shape[0] != 16:
        raise ValueError(f"latent: expected [16, T, h, w], found {tuple(latent.shape)}")
    factors = torch.tensor(LATENT_RGB_FACTORS, dtype=torch.float32, device=latent.device)
    bias = torch.tensor(LATENT_RGB_BIAS, dtype=torch.float32, device=latent.device)
    rgb = torch.einsum("cthw,cr->thwr", latent.float(), factors) + bias    # [T, h, w, 3] in about -1..1
    return rgb.add(1).div(2).clamp(0, 1)


def preview_image(latent: torch.Tensor, frame: int = 0, max_size: int = 512) -> Image.Image:
    """A PIL preview of one latent frame, upscaled (nearest) so its longer side is near max_size."""
    rgb = latent_to_rgb(latent)[frame]
    img = Image.fromarray((rgb * 255).round().byte().cpu().numpy())
    scale = max(1, max_size // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img

"""Latent calibration of Wan2.1-tiny's VAE: its latent made to follow the released latent statistics.

The samplers normalise every latent with the released VAE's per-channel `LATENT_MEAN` / `LATENT_STD`
(`sampling.normalize_latent`), so a DiT sees unit-scale latents only if the VAE's raw latent has those
statistics. A freshly trained VAE has its own. Both ends of the latent are 1×1×1 convolutions
(`conv1` → mu | log_var, `conv2` → decoder), so an affine map per channel folds into them exactly:
the encoder's mu becomes a·mu + b and the decoder undoes it, with the same layers and the same keys.
"""
from __future__ import annotations

import random

import torch

from ..models import WanVAE
from ..models.configs import LATENT_MEAN, LATENT_STD
from .world import render_clip, sample_scene


@torch.no_grad()
def latent_statistics(vae: WanVAE, clips: int = 48, frames: int = 25, size: int = 96, seed: int = 0,
                      batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std [z] of the raw latent over `clips` seeded world clips."""
    rng = random.Random(f"latent statistics {seed}")
    latents = []
    for first in range(0, clips, batch):
        scenes = [sample_scene(rng.randrange(2**31)) for _ in range(min(batch, clips - first))]
        video = torch.stack([render_clip(s, frames, size) for s in scenes]).permute(0, 4, 1, 2, 3)   # [B,3,F,H,W]
        latents.append(vae.encode(video.mul(2).sub(1).to(vae.device, vae.dtype)).float().cpu())
    z = torch.cat(latents).transpose(0, 1).flatten(1)                                               # [z, N·T·h·w]
    return z.mean(dim=1), z.std(dim=1)


@torch.no_grad()
def fold_latent_statistics(vae: WanVAE, mean: torch.Tensor, std: torch.Tensor) -> WanVAE:
    """Rewrite `vae` in place so that a raw latent of statistics (mean, std) gets the released ones.

    mu' = a·mu + b with a = LATENT_STD / std and b = LATENT_MEAN − a·mean; the decoder's input conv
    takes (mu' − b) / a. Decode(encode(x)) is unchanged up to float rounding.
    """
    z = vae.config.z_dim
    a = torch.tensor(LATENT_STD, dtype=torch.float64) / std.double()
    b = torch.tensor(LATENT_MEAN, dtype=torch.float64) - a * mean.double()
    encoder_w, encoder_b = vae.conv1.weight, vae.conv1.bias                 # [2z, 2z, 1, 1, 1], [2z]
    encoder_w[:z] = (encoder_w[:z].double() * a.view(z, 1, 1, 1, 1)).to(encoder_w.dtype)
    encoder_b[:z] = (encoder_b[:z].double() * a + b).to(encoder_b.dtype)
    decoder_w, decoder_b = vae.conv2.weight, vae.conv2.bias                 # [z, z, 1, 1, 1], [z]
    weight = decoder_w.double().flatten(1)                                  # [z_out, z_in]
    decoder_b.copy_(decoder_b.double() - weight @ (b / a))
    decoder_w.copy_((weight / a.view(1, z)).view_as(decoder_w))
    return vae

"""Stage 1b of Wan2.1-tiny's training: the VAE's decoder learns on, with the encoder frozen.

The pipeline's first output frame is the decoder's picture of the start image's latent, and the
whole-model test asks it to match the start image at 25 dB or more. After the VAE stage the first
frames of held-out world clips come back at about 25.7 dB on average and 24.6 dB at worst (later
frames at 20-22 dB), so the margin is thin. With the encoder (and so every latent, the DiT's data
included) left as it is, the decoder trains on: most steps on full-size world first frames, which
the decoder renders from one latent frame alone, and every `clip_every`-th step on the VAE stage's
own batches (crops of clips and colour patches, steps that stage never drew) so that the later
chunk positions and the colours keep what they learned.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import torch

from ..models import WanVAE
from .training_state import optimise, resume_state
from .vae_training import VAETraining, training_batch
from .world import render_clip, sample_scene

STATE_FILE = "decoder_refinement.pt"


@dataclass
class DecoderRefinement:
    """Hyper-parameters of the decoder refinement (all of them seed the run)."""

    steps: int = 800
    batch: int = 8               # full-size world first frames per step
    clip_every: int = 2          # every clip_every-th step: a batch of the VAE stage instead
    lr: float = 1e-4
    warmup: int = 50
    decay_until: int = 800
    final_lr: float = 0.1
    seed: int = 0
    checkpoint_every: int = 100
    losses: list = field(default_factory=list)   # (step, reconstruction MSE), filled while training
    seconds: float = 0.0                         # training wall time so far (all runs together)


def refinement_batch(config: DecoderRefinement, vae_config: VAETraining, step: int) -> torch.Tensor:
    """Video in [-1, 1] for `step`, the same for the same configs: [batch, 3, 1, S, S] world first frames
    (S = the VAE stage's clip size), or on every `clip_every`-th step the VAE stage's batch of step
    `vae_config.steps + step` (a batch that stage never trained on)."""
    if (step + 1) % config.clip_every == 0:
        return training_batch(vae_config, vae_config.steps + step)
    frames = []
    for item in range(config.batch):
        rng = random.Random(f"decoder {config.seed} {step} {item}")
        frames.append(render_clip(sample_scene(rng.randrange(2**31)), frames=1, size=vae_config.clip_size))
    return torch.cat(frames).permute(0, 3, 1, 2)[:, :, None].mul(2).sub(1)     # [B,H,W,3] -> [B,3,1,H,W]


def refine_decoder(directory: str, config: DecoderRefinement, vae: WanVAE, vae_config: VAETraining,
                   device: str | torch.device = "cpu", log=print) -> WanVAE:
    """Train (or resume, from `directory`/decoder_refinement.pt) `vae`'s decoder until `config.steps`,
    in place, on the latents of its frozen encoder; returns `vae` (eval mode, no gradients)."""
    torch.manual_seed(config.seed)
    vae.requires_grad_(False)
    decoder = torch.nn.ModuleDict({"conv2": vae.conv2, "decoder": vae.decoder}).requires_grad_(True).train()
    optimiser = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=0.0)
    path = os.path.join(directory, STATE_FILE)
    parts = {"decoder": decoder, "optimiser": optimiser}
    start = resume_state(path, config, parts, "refine_decoder")

    def loss_at(step: int) -> torch.Tensor:
        video = refinement_batch(config, vae_config, step).to(device)
        latent = vae.encode(video).clone()                   # frozen encoder; clone: a normal tensor
        return (vae.decode_for_training(latent) - video).pow(2).mean()

    optimise(path, config, parts, optimiser, start, loss_at, "decoder", log)
    return vae.eval().requires_grad_(False)

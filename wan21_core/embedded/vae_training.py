"""Stage 1 of Wan2.1-tiny's training: the Wan2.1 VAE (released structure, small base width) learns to
reconstruct clips of the synthetic world, seeded and resumable.

The VAE is causal and convolutional, so short random crops (5 frames, 64 px by default) train the
full-size model at a fraction of the cost. The loss is L1 reconstruction. (A moment term pulling
each latent channel toward the official `LATENT_MEAN` / `LATENT_STD` was tried and stops the
reconstruction from learning at weights 0.1 and 0.01; see docs/wan21_tiny.md.)
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass, field

import torch

from ..models import VAEConfig, WanVAE
from .training_state import resume_state, save_state, scheduled_lr
from .world import render_clip, sample_scene

STATE_FILE = "vae_training.pt"


@dataclass
class VAETraining:
    """Hyper-parameters of the VAE stage (all of them seed the run: same config, same weights)."""

    steps: int = 2000            # where this run stops (a later run with more steps resumes)
    batch: int = 4
    frames: int = 5              # 1 + 4k
    crop: int = 64               # pixels, a multiple of 8
    clip_size: int = 96          # the rendered frame size the crops come from
    base_dim: int = 12
    lr: float = 1e-3             # peak learning rate
    warmup: int = 100            # steps of linear warm-up
    decay_until: int = 2000      # cosine decay to final_lr · lr by this step, constant after
    final_lr: float = 0.05
    seed: int = 0
    checkpoint_every: int = 250
    losses: list = field(default_factory=list)   # (step, reconstruction L1), filled while training
    seconds: float = 0.0                         # training wall time so far (all runs together)


def training_batch(config: VAETraining, step: int) -> torch.Tensor:
    """Video [batch, 3, frames, crop, crop] in [-1, 1] for `step`, the same for the same (config, step)."""
    clips = []
    for item in range(config.batch):
        rng = random.Random(f"vae {config.seed} {step} {item}")   # str seeds are hashed stably (sha512)
        clip = render_clip(sample_scene(rng.randrange(2**31)), frames=25, size=config.clip_size)   # [F, H, W, 3]
        first = rng.randrange(25 - config.frames + 1)
        top, left = (rng.randrange(config.clip_size - config.crop + 1) for _ in range(2))
        window = clip[first:first + config.frames, top:top + config.crop, left:left + config.crop]
        clips.append(window.permute(3, 0, 1, 2))                                 # [F,h,w,3] -> [3,F,h,w]
    return torch.stack(clips).mul(2).sub(1)


def train_vae(directory: str, config: VAETraining, device: str | torch.device = "cpu", log=print) -> WanVAE:
    """Train (or resume, from `directory`/vae_training.pt) until `config.steps`; returns the VAE.

    The state (weights, optimiser, step, loss log) is saved every `checkpoint_every` steps and at the end.
    """
    torch.manual_seed(config.seed)
    model = WanVAE(VAEConfig(base_dim=config.base_dim)).to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    path = os.path.join(directory, STATE_FILE)
    parts = {"model": model, "optimiser": optimiser}
    start = resume_state(path, config, parts, "train_vae")
    began, earlier = time.perf_counter(), config.seconds
    for step in range(start, config.steps):
        video = training_batch(config, step).to(device)
        for group in optimiser.param_groups:
            group["lr"] = scheduled_lr(config, step)
        recon, _ = model.reconstruct(video)
        l1 = (recon - video).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        l1.backward()
        optimiser.step()
        config.losses.append((step + 1, l1.item()))
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            config.seconds = earlier + time.perf_counter() - began
            save_state(path, config, parts, step + 1)
            log(f"vae step {step + 1}/{config.steps}: L1 {l1.item():.4f}, {config.seconds:.0f} s in all")
    return model.eval().requires_grad_(False)

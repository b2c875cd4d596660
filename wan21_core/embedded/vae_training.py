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
from .world import render_clip, sample_scene

STATE_FILE = "vae_training.pt"


@dataclass
class VAETraining:
    """Hyper-parameters of the VAE stage (all of them seed the run: same config, same weights)."""

    steps: int = 3000
    batch: int = 4
    frames: int = 5              # 1 + 4k
    crop: int = 64               # pixels, a multiple of 8
    clip_size: int = 96          # the rendered frame size the crops come from
    base_dim: int = 8
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 250
    losses: list = field(default_factory=list)   # (step, reconstruction L1), filled while training


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
    start = _resume(directory, config, model, optimiser)
    began = time.perf_counter()
    for step in range(start, config.steps):
        video = training_batch(config, step).to(device)
        recon, _ = model.reconstruct(video)
        l1 = (recon - video).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        l1.backward()
        optimiser.step()
        config.losses.append((step + 1, l1.item()))
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            _save(directory, config, model, optimiser, step + 1)
            log(f"vae step {step + 1}/{config.steps}: L1 {l1.item():.4f}, {time.perf_counter() - began:.0f} s")
    return model.eval().requires_grad_(False)


def _save(directory: str, config: VAETraining, model: WanVAE, optimiser, step: int) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, STATE_FILE)
    torch.save({"step": step, "config": asdict(config), "model": model.state_dict(),
                "optimiser": optimiser.state_dict()}, path + ".tmp")
    os.replace(path + ".tmp", path)   # never a half-written state


def _resume(directory: str, config: VAETraining, model: WanVAE, optimiser) -> int:
    """The step to continue from (0 without a saved state); a state of another config is an error."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return 0
    state = torch.load(path, weights_only=True)
    saved = {k: v for k, v in state["config"].items() if k not in ("steps", "losses")}
    wanted = {k: v for k, v in asdict(config).items() if k not in ("steps", "losses")}
    if saved != wanted:
        changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
        raise ValueError(f"train_vae: {path} was trained with other settings ({', '.join(changed)}); "
                         f"use another directory or the same settings")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    config.losses[:] = [tuple(entry) for entry in state["config"]["losses"]]
    return state["step"]

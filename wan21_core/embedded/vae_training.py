"""Stage 1 of Wan2.1-tiny's training: the Wan2.1 VAE (released structure, small base width) learns to
reconstruct clips of the synthetic world, seeded and resumable.

The VAE is convolutional, so small random crops train the full-size model at a fraction of the
cost: 5 frames of 48 px on most steps. In time it is causal and streams chunks of 1, 4, 4, ...
frames through caches whose reach grows with depth, so each chunk position behaves differently and
must be trained: on 5-frame crops alone (chunks 1 + 4) a VAE reconstructed frames 0-4 at 18-20 dB
and frames 5-24 at 10-14 dB; on 9-frame crops frames 5-8 rose to 16-17 dB and frames 9-24 stayed at
12 dB. So every fourth step's crops are as long as the clips the model makes (25 frames, 7 latent
frames, 32 px); on such crops alone colour came far more slowly (still grey after 500 steps, where
5-frame, 48-px crops had it), as 25 nearly equal frames hold little more than one picture. The loss is
the mean squared reconstruction error; the convolutions start from a variance-preserving
initialisation (`signal_preserving_init`).

Half of each batch are colour-patch clips (`colour_patch_clip`): trained on world crops alone, the
VAE learned shape and brightness and dropped colour altogether (a red square on a pale green
background came back as a dark square on grey, after 2,000 steps, for any loss, learning rate and
initialisation tried), because the world is mostly low-saturation backgrounds and a grey decoder
is a stable saddle. Saturated patches everywhere make colour a large part of the error from the
first step. (A moment term pulling each latent channel toward the official `LATENT_MEAN` /
`LATENT_STD` was tried too and stops the reconstruction from learning at weights 0.1 and 0.01;
see docs/wan21_tiny.md.)
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field

import torch

from ..models import VAEConfig, WanVAE
from .training_state import optimise, resume_state
from .world import render_clip, sample_scene

STATE_FILE = "vae_training.pt"


@dataclass
class VAETraining:
    """Hyper-parameters of the VAE stage (all of them seed the run: same config, same weights)."""

    steps: int = 2000            # where this run stops (a later run with more steps resumes)
    batch: int = 4
    frames: int = 5              # 1 + 4k frames per crop on most steps ...
    crop: int = 48               # ... of this many pixels (a multiple of 8)
    long_every: int = 4          # every long_every-th step: crops as long as the model's clips (see the notes)
    long_frames: int = 25
    long_crop: int = 32
    clip_size: int = 96          # the rendered frame size the crops come from
    base_dim: int = 12
    lr: float = 3e-4             # peak learning rate
    warmup: int = 100            # steps of linear warm-up
    decay_until: int = 2000      # cosine decay to final_lr · lr by this step, constant after
    final_lr: float = 0.05
    patches: float = 0.5         # share of the batch that are colour-patch clips (see colour_patch_clip)
    seed: int = 0
    checkpoint_every: int = 250
    losses: list = field(default_factory=list)   # (step, reconstruction MSE), filled while training
    seconds: float = 0.0                         # training wall time so far (all runs together)


def crop_shape(config: VAETraining, step: int) -> tuple[int, int]:
    """(frames, pixels) of the crops of `step`: long ones on every `long_every`-th step."""
    if (step + 1) % config.long_every == 0:
        return config.long_frames, config.long_crop
    return config.frames, config.crop


def training_batch(config: VAETraining, step: int) -> torch.Tensor:
    """Video [batch, 3, frames, crop, crop] in [-1, 1] for `step` (sizes from `crop_shape`), the same for
    the same (config, step): crops of world clips, and a share `config.patches` of colour-patch clips."""
    frames, size = crop_shape(config, step)
    clips = []
    for item in range(config.batch):
        rng = random.Random(f"vae {config.seed} {step} {item}")   # str seeds are hashed stably (sha512)
        if rng.random() < config.patches:
            clips.append(colour_patch_clip(rng, frames, size))
            continue
        clip = render_clip(sample_scene(rng.randrange(2**31)), frames=25, size=config.clip_size)   # [F, H, W, 3]
        first = rng.randrange(25 - frames + 1)
        top, left = (rng.randrange(config.clip_size - size + 1) for _ in range(2))
        window = clip[first:first + frames, top:top + size, left:left + size]
        clips.append(window.permute(3, 0, 1, 2))                                 # [F,h,w,3] -> [3,F,h,w]
    return torch.stack(clips).mul(2).sub(1)


def colour_patch_clip(rng: random.Random, frames: int, size: int) -> torch.Tensor:
    """[3, frames, size, size] in 0..1: a random colour with two to five rectangles of random colours
    (uniform in RGB, so mostly saturated), each drifting by up to a quarter of the size over the clip."""
    clip = torch.empty(3, frames, size, size)
    clip[:] = torch.tensor([rng.random() for _ in range(3)]).view(3, 1, 1, 1)
    for _ in range(rng.randint(2, 5)):
        height, width = rng.randint(size // 8, size // 2), rng.randint(size // 8, size // 2)
        top, left = rng.randrange(size - height + 1), rng.randrange(size - width + 1)
        drift_y, drift_x = (rng.randint(-size // 4, size // 4) for _ in range(2))
        colour = torch.tensor([rng.random() for _ in range(3)]).view(3, 1, 1)
        for f in range(frames):
            t = f / max(frames - 1, 1)
            y, x = top + round(t * drift_y), left + round(t * drift_x)
            clip[:, f, max(y, 0):max(y + height, 0), max(x, 0):max(x + width, 0)] = colour
    return clip


def signal_preserving_init(vae: WanVAE) -> WanVAE:
    """Every convolution's weights N(0, 1/fan_in) and its bias zero.

    With PyTorch's default initialisation (weights U(±1/√fan_in), biases of the same size) the biases
    weigh as much as the input in every layer; with variance-preserving weights and zero biases the
    input reaches the latent from step 0. (The colour-blind first runs had another cause: see the
    module notes.)
    """
    for module in vae.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
            torch.nn.init.zeros_(module.bias)
    return vae


def train_vae(directory: str, config: VAETraining, device: str | torch.device = "cpu", log=print) -> WanVAE:
    """Train (or resume, from `directory`/vae_training.pt) until `config.steps`; returns the VAE.

    The state (weights, optimiser, step, loss log) is saved every `checkpoint_every` steps and at the end.
    """
    torch.manual_seed(config.seed)
    model = signal_preserving_init(WanVAE(VAEConfig(base_dim=config.base_dim))).to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    path = os.path.join(directory, STATE_FILE)
    parts = {"model": model, "optimiser": optimiser}
    start = resume_state(path, config, parts, "train_vae")

    def loss_at(step: int) -> torch.Tensor:
        video = training_batch(config, step).to(device)
        recon, _ = model.reconstruct(video)
        return (recon - video).pow(2).mean()

    optimise(path, config, parts, optimiser, start, loss_at, "vae", log)
    return model.eval().requires_grad_(False)

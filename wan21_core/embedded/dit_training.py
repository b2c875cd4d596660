"""Stage 2 of Wan2.1-tiny's training: the i2v DiT (with the umT5 encoder) learns the world with the
official flow-matching objective and the real I2V conditioning.

A clip's normalised latent x0 is mixed with noise ε at σ, x_σ = (1 − σ)·x0 + σ·ε, and the DiT
predicts the velocity ε − x0 at timestep 1000·σ from x_σ, y (mask + first-frame latent, exactly
as `sampling.fuse_frames` builds it), the image features and the prompt's umT5 context (MSE).
σ is drawn with the density of the sampler's shifted schedule: σ = s·u / (1 + (s − 1)·u), u ~ U(0, 1).
A tenth of the prompts are replaced by the unconditional text (the official negative prompt or
an empty one), which classifier-free guidance needs. The exported DiT is an EMA of the weights.
At every checkpoint the log also shows the prompt gap: the loss on fixed move clips with their own
prompt and with the opposite move's prompt, which stay equal while the DiT ignores the verb.
"""
from __future__ import annotations

import copy
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import torch

from ..models import DiTConfig
from ..models.dit.model import WanModel
from ..models.dit.training import training_forward
from ..models.text_encoder.tokenizer import UMT5Tokenizer
from ..sampling.defaults import NEGATIVE_PROMPT_I2V
from .dit_data import DataPlan
from .encoders import EncoderSizes, domain_spiece_model, text_encoder_model
from .training_state import resume_state, save_state, scheduled_lr

STATE_FILE = "dit_training.pt"
UNCONDITIONAL = (NEGATIVE_PROMPT_I2V, "")
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
GAP_SIGMA = 0.8                # the prompt gap's noise level


@dataclass
class DiTTraining:
    """Hyper-parameters of the DiT stage (all of them seed the run: same config, same weights)."""

    steps: int = 2500
    batch: int = 12
    dim: int = 256                 # 2 heads of 128, the released head size
    layers: int = 5
    ffn: int = 1024
    lr: float = 5e-4
    warmup: int = 200
    decay_until: int = 2500
    final_lr: float = 0.1
    shift: float = 3.0             # σ density of the sampler's schedule at this size
    uncond: float = 0.1            # fraction of prompts replaced by an unconditional text
    ema: float = 0.998
    compile: bool = False          # torch.compile the DiT blocks (faster after a few minutes of compiling)
    seed: int = 0
    checkpoint_every: int = 100
    scenes: int = DataPlan.scenes
    variants: int = DataPlan.variants
    pans: float = DataPlan.pans
    balance: bool = True           # draw clips so that every action is as likely
    losses: list = field(default_factory=list)   # (step, flow-matching MSE), filled while training
    seconds: float = 0.0                         # training wall time so far (all runs together)

    @property
    def data_plan(self) -> DataPlan:
        return DataPlan(scenes=self.scenes, variants=self.variants, pans=self.pans, seed=self.seed)

    def dit_config(self, sizes: EncoderSizes) -> DiTConfig:
        return DiTConfig(model_type="i2v", in_dim=36, out_dim=16, dim=self.dim, ffn_dim=self.ffn,
                         num_heads=self.dim // 128, num_layers=self.layers, text_dim=sizes.text_width,
                         img_dim=sizes.image_width)


class Trainee(torch.nn.Module):
    """What the stage trains: the DiT, the umT5 encoder and the DiT's EMA (a frozen copy)."""

    def __init__(self, config: DiTTraining, sizes: EncoderSizes, tokenizer: UMT5Tokenizer):
        super().__init__()
        torch.manual_seed(config.seed)
        self.dit = official_init(WanModel(config.dit_config(sizes)))
        self.text = text_encoder_model(sizes, tokenizer.vocab_size, config.seed)
        self.ema = copy.deepcopy(self.dit).requires_grad_(False)
        self.tokenizer = tokenizer

    def trained_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.dit.parameters()) + list(self.text.parameters())

    def contexts(self, prompts: list[str]) -> list[torch.Tensor]:
        """umT5 outputs [L_i, width] (real tokens, EOS included), with gradients."""
        batch = self.tokenizer(prompts)
        width = max(batch.lengths)
        device = self.text.shared.weight.device
        hidden = self.text(input_ids=batch.ids[:, :width].to(device),
                           attention_mask=batch.attention_mask[:, :width].to(device)).last_hidden_state
        return [hidden[i, :n] for i, n in enumerate(batch.lengths)]

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for average, current in zip(self.ema.parameters(), self.dit.parameters()):
            average.lerp_(current, 1 - decay)


def official_init(model: WanModel) -> WanModel:
    """The official `WanModel.init_weights`: Xavier-uniform linear and patch weights, zero biases,
    N(0, 0.02) text and time embeddings, a zero output head."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            torch.nn.init.zeros_(module.bias)
    torch.nn.init.xavier_uniform_(model.patch_embedding.weight.flatten(1))
    for embedding in (model.text_embedding, model.time_embedding):
        for module in embedding:
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.02)
    torch.nn.init.zeros_(model.head.head.weight)
    return model


def training_step_inputs(config: DiTTraining, data: dict, step: int):
    """(indices, σ [B], noise, prompts) of `step`: the same for the same (config, step)."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    indices = torch.multinomial(_clip_weights(data, config.balance), config.batch, replacement=True, generator=generator)
    u = torch.rand(config.batch, generator=generator)
    sigma = config.shift * u / (1 + (config.shift - 1) * u)
    noise = torch.randn((config.batch, *data["x0"].shape[1:]), generator=generator)
    rng = random.Random(f"dit prompts {config.seed} {step}")
    prompts = [rng.choice(UNCONDITIONAL) if rng.random() < config.uncond else data["prompt"][i] for i in indices]
    return indices, sigma, noise, prompts


def _clip_weights(data: dict, balance: bool) -> torch.Tensor:
    """Sampling weight per clip: 1 / (clips of its action) when balancing, else equal."""
    if not balance:
        return torch.ones(len(data["action"]))
    counts = Counter(data["action"])
    return torch.tensor([1.0 / counts[action] for action in data["action"]])


def velocity_error(trainee: Trainee, data: dict, indices: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                   prompts: list[str], config: DiTTraining) -> torch.Tensor:
    """MSE between the DiT's velocity and ε − x0 for clips `indices` at noise levels `sigma` [B]."""
    device = trainee.dit.patch_embedding.weight.device
    x0, noise, sigma = data["x0"][indices].to(device), noise.to(device), sigma.to(device)
    groups = data["group"][indices]
    s = sigma.view(-1, 1, 1, 1, 1)
    velocity = training_forward(trainee.dit, (1 - s) * x0 + s * noise, sigma * 1000, trainee.contexts(prompts),
                                data["clip_fea"][groups].to(device), data["y"][groups].to(device),
                                compiled=config.compile)
    return (velocity - (noise - x0)).square().mean()


def flow_matching_loss(trainee: Trainee, data: dict, config: DiTTraining, step: int) -> torch.Tensor:
    """The training loss of `step`'s batch."""
    indices, sigma, noise, prompts = training_step_inputs(config, data, step)
    return velocity_error(trainee, data, indices, sigma, noise, prompts, config)


@torch.no_grad()
def prompt_gap(trainee: Trainee, data: dict, config: DiTTraining, clips: int = 8) -> tuple[float, float] | None:
    """Loss at σ GAP_SIGMA on the first `clips` move clips with their own prompt and with the opposite
    move's, same noise (None when the data has no move clips)."""
    indices = torch.tensor([i for i, action in enumerate(data["action"]) if action in OPPOSITE][:clips],
                           dtype=torch.long)
    if not len(indices):
        return None
    sigma = torch.full((len(indices),), GAP_SIGMA)
    noise = torch.randn((len(indices), *data["x0"].shape[1:]), generator=torch.Generator().manual_seed(config.seed))
    own = [data["prompt"][i] for i in indices]
    opposite = [prompt.replace(data["action"][i], OPPOSITE[data["action"][i]]) for prompt, i in zip(own, indices)]
    return tuple(velocity_error(trainee, data, indices, sigma, noise, prompts, config).item()
                 for prompts in (own, opposite))


def train_dit(directory: str, config: DiTTraining, data: dict, device: str | torch.device = "cpu",
              log=print) -> Trainee:
    """Train (or resume, from `directory`/dit_training.pt) until `config.steps` on `data`
    (`dit_data.load_dataset`); returns the trainee (DiT, its EMA and the text encoder)."""
    tokenizer = UMT5Tokenizer.from_spiece_bytes(domain_spiece_model())
    trainee = Trainee(config, EncoderSizes(), tokenizer).to(device).train()
    optimiser = torch.optim.AdamW(trainee.trained_parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=0.0)
    path = os.path.join(directory, STATE_FILE)
    parts = {"trainee": trainee, "optimiser": optimiser}
    start = resume_state(path, config, parts, "train_dit")
    began, earlier = time.perf_counter(), config.seconds
    for step in range(start, config.steps):
        for group in optimiser.param_groups:
            group["lr"] = scheduled_lr(config, step)
        loss = flow_matching_loss(trainee, data, config, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainee.trained_parameters(), 1.0)
        optimiser.step()
        trainee.update_ema(config.ema if step >= config.warmup else 0.0)
        config.losses.append((step + 1, loss.item()))
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            config.seconds = earlier + time.perf_counter() - began
            save_state(path, config, parts, step + 1)
            recent = [value for _, value in config.losses[-config.checkpoint_every:]]
            gap = prompt_gap(trainee, data, config)
            gap = f"prompt gap at σ {GAP_SIGMA}: own {gap[0]:.4f} / opposite {gap[1]:.4f}, " if gap else ""
            log(f"dit step {step + 1}/{config.steps}: loss {sum(recent) / len(recent):.4f} "
                f"(mean of the last {len(recent)}), {gap}{config.seconds:.0f} s in all")
    return trainee.eval().requires_grad_(False)



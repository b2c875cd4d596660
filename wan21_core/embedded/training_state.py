"""Resumable training state of Wan2.1-tiny's stages: one file per stage holding the settings, the
step, the loss log and the state of every module and optimiser, written atomically."""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from typing import Callable, Mapping

import torch

# Fields a run may differ in and still resume: where it stops, and the records it carries on
# (the loss log and the training wall time so far, both restored from the state).
RESUMABLE = ("steps", "losses", "seconds")


def save_state(path: str, config, parts: Mapping[str, object], step: int) -> None:
    """Write {step, config, part: part.state_dict()} to `path` via a temporary file (never half-written)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    state = {"step": step, "config": asdict(config), **{name: part.state_dict() for name, part in parts.items()}}
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def resume_state(path: str, config, parts: Mapping[str, object], caller: str) -> int:
    """Load `parts` from `path` and return its step (0 when there is no state yet).

    A state saved with other settings (anything but `RESUMABLE`) is an error naming them; the saved loss
    log and wall time replace `config.losses` and `config.seconds`.
    """
    if not os.path.exists(path):
        return 0
    state = torch.load(path, weights_only=True)
    saved = {k: v for k, v in state["config"].items() if k not in RESUMABLE}
    wanted = {k: v for k, v in asdict(config).items() if k not in RESUMABLE}
    if saved != wanted:
        changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
        raise ValueError(f"{caller}: {path} was trained with other settings ({', '.join(changed)}); "
                         f"use another directory or the same settings")
    for name, part in parts.items():
        part.load_state_dict(state[name])
    config.losses[:] = [tuple(entry) for entry in state["config"]["losses"]]
    config.seconds = state["config"].get("seconds", 0.0)
    return state["step"]


def scheduled_lr(config, step: int) -> float:
    """The learning rate at `step` (0-based) of a config with lr, warmup, decay_until and final_lr: linear
    warm-up over `warmup` steps, then cosine decay to `final_lr`·`lr` at `decay_until`, constant after."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.decay_until - config.warmup))
    return config.lr * (config.final_lr + (1 - config.final_lr) * 0.5 * (1 + math.cos(math.pi * progress)))


def optimise(path: str, config, parts: Mapping[str, object], optimiser: torch.optim.Optimizer, start: int,
             loss_at: Callable[[int], torch.Tensor], stage: str, log=print) -> None:
    """Steps `start` .. `config.steps` of a stage whose step is one optimiser step on `loss_at(step)`
    at the scheduled learning rate: the loss is recorded, and every `checkpoint_every` steps (and at
    the end) the state is saved and a line logged as "`stage` step n/N: MSE ...".
    """
    began, earlier = time.perf_counter(), config.seconds
    for step in range(start, config.steps):
        for group in optimiser.param_groups:
            group["lr"] = scheduled_lr(config, step)
        loss = loss_at(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        config.losses.append((step + 1, loss.item()))
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            config.seconds = earlier + time.perf_counter() - began
            save_state(path, config, parts, step + 1)
            log(f"{stage} step {step + 1}/{config.steps}: MSE {loss.item():.4f}, {config.seconds:.0f} s in all")

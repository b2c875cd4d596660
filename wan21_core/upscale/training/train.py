"""Training of the shipped cascade (entry point: ``scripts/train_upscaler.py``).

Phases, each starting from the previous one's weights (docs/upscaler_training.md):

1. ``stage_a``: ×2 stage A on (bicubic ÷2, original) pairs, Charbonnier loss.
2. ``stage_b``: ×2 stage B on (A(bicubic ÷4), original) pairs, A frozen: the second step of ×4.
3. ``enhancer``: ×1 detail enhancer on A's ×2 and B∘A's ×4 outputs, A and B frozen.
   → the PSNR-oriented cascade.
4. ``adversarial``: A, B and the enhancer fine-tuned together with
   L_content (Charbonnier + feature term) + λ·L_GAN against a spectral-norm patch
   discriminator, alternating ×2 and ×4 batches. → the adversarial cascade.

With ``grow_from``, A, B and E start from a trained cascade, A and B grown to a wider and deeper
shape without changing what they compute (`growth.grow_compact`), and every phase fine-tunes.

Seeds are fixed; every phase logs its loss curve and held-out PSNR-Y to a JSON-lines file.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..cascade import Cascade, load_cascade, save_cascade
from .data import (bicubic_downsample, held_out_photos, mod_crop, resize_uint8, to_tensor, to_uint8,
                   training_photos)
from .growth import grow_compact
from .losses import (PatchDiscriminator, VGGFeatureLoss, charbonnier, feature_matching,
                     relativistic_losses)
from ..metrics import psnr_y
from ..network import ENHANCER_CONFIG, STAGE_CONFIG, CompactConfig, CompactSR, count_parameters
from ..stages import stage_from_compact

PHASES = ("stage_a", "stage_b", "enhancer", "adversarial")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved into the cascade's metadata)."""

    out_dir: str
    log_path: str
    device: str = "cpu"
    seed: int = 0
    batch: int = 16
    lr_patch: int = 48  # LR edge of ×2 samples; ×4 samples use half, so HR patches match
    lr: float = 5e-4
    warmup: int = 200
    steps: dict = field(default_factory=lambda: {"stage_a": 6000, "stage_b": 3000,
                                                 "enhancer": 1500, "adversarial": 2000})
    seconds: dict | None = None  # per-phase time budget; caps the step counts after calibration
    gan_weight: float = 5e-3
    feature_weight: float = 0.1
    vgg_weights: str | None = None
    adversarial_lr: float = 1e-4
    evals_per_phase: int = 6
    mate_dir: str | None = None
    opencv_dir: str | None = None
    plasma_dir: str | None = None  # extra photos (plasma-workspace-wallpapers), not by default
    lomiri_dir: str | None = None  # extra photos (lomiri-wallpapers-16.04 / -20.04), not by default
    init: str | None = None  # cascade file to start from (e.g. to rerun only the adversarial phase)
    stage_features: int = STAGE_CONFIG.num_feat  # width and depth of the two ×2 stages
    stage_convs: int = STAGE_CONFIG.num_conv
    stage_init: str = "torch"  # "torch" (the shipped first run) or "kaiming" (needed by deep stages)
    grow_from: str | None = None  # cascade whose stages A, B (grown to the stage shape) and E start the run


class PatchSampler:
    """Random aligned (LR, HR) patches with the 8 flips/rotations, from photos held on a device."""

    def __init__(self, photos: list[tuple[str, np.ndarray]], device: torch.device, seed: int):
        self.rng = np.random.RandomState(seed)
        self.images = []
        for _, photo in photos:
            hr = mod_crop(photo, 4)
            self.images.append({s: torch.tensor(im).permute(2, 0, 1).contiguous().to(device)
                                for s, im in ((1, hr), (2, bicubic_downsample(hr, 2)),
                                              (4, bicubic_downsample(hr, 4)))})
        self.areas = np.array([im[4].shape[1] * im[4].shape[2] for im in self.images], float)

    def sample(self, batch: int, lr_patch: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, p, p]`` LR and ``[B, 3, s·p, s·p]`` HR patches, float in 0..1."""
        lrs, hrs = [], []
        picks = self.rng.choice(len(self.images), size=batch, p=self.areas / self.areas.sum())
        for i in picks:
            lr_full, hr_full = self.images[i][scale], self.images[i][1]
            y = self.rng.randint(0, lr_full.shape[1] - lr_patch + 1)
            x = self.rng.randint(0, lr_full.shape[2] - lr_patch + 1)
            lr = lr_full[:, y:y + lr_patch, x:x + lr_patch]
            hr = hr_full[:, scale * y:scale * (y + lr_patch), scale * x:scale * (x + lr_patch)]
            k, flip = self.rng.randint(4), self.rng.randint(2)
            lr, hr = (torch.rot90(t, k, dims=(1, 2)) for t in (lr, hr))
            if flip:
                lr, hr = lr.flip(2), hr.flip(2)
            lrs.append(lr)
            hrs.append(hr)
        return torch.stack(lrs).float() / 255, torch.stack(hrs).float() / 255


STAGE_INITS = ("torch", "kaiming")


def kaiming_init_(net: CompactSR, last_gain: float = 0.1) -> None:
    """Variance-preserving init for a deep `CompactSR`: He-normal for PReLU (slope 0.25) on every
    conv but the last, zero biases, and the last conv scaled by `last_gain` so the body starts as
    a small residual.

    With PyTorch's default conv init the gradient shrinks about 2× per layer on its way back: the
    first conv's gradient norm is ~1e-8 in a 48×16 stage and ~1e-11 in a 64×24 one (this init:
    0.3 and 0.02), and the 64×24 stage then never left the nearest-neighbour output on the GPU
    (measured, docs/upscaler_training.md).
    """
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    for conv in convs[:-1]:
        nn.init.kaiming_normal_(conv.weight, a=0.25, nonlinearity="leaky_relu")
        nn.init.zeros_(conv.bias)
    with torch.no_grad():
        convs[-1].weight.mul_(last_gain)
        convs[-1].bias.zero_()


def run_path(nets: list[nn.Module], x: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """Apply nets in order, clamping between them as the product does (last output raw)."""
    for i, net in enumerate(nets):
        with torch.set_grad_enabled(grad and net.training):
            x = net(x)
        if i < len(nets) - 1:
            x = x.clamp(0, 1)
    return x


@torch.no_grad()
def evaluate_path(nets: list[nn.Module], photos: list[tuple[str, np.ndarray]],
                  scale: int) -> dict:
    """Held-out PSNR-Y (border = scale) of a path of nets on bicubic-downsampled photos."""
    modes = [n.training for n in nets]
    for n in nets:
        n.eval()
    device = next(nets[0].parameters()).device
    scores = {}
    for name, photo in photos:
        hr = mod_crop(photo, scale)
        lr = to_tensor(bicubic_downsample(hr, scale))[None].to(device)
        scores[name] = psnr_y(to_uint8(run_path(nets, lr)[0]), hr, border=scale)
    for n, mode in zip(nets, modes):
        n.train(mode)
    scores["mean"] = float(np.mean(list(scores.values())))
    return scores


def bicubic_scores(photos: list[tuple[str, np.ndarray]], scale: int) -> dict:
    scores = {}
    for name, photo in photos:
        hr = mod_crop(photo, scale)
        scores[name] = psnr_y(resize_uint8(bicubic_downsample(hr, scale), hr.shape[:2]), hr,
                              border=scale)
    scores["mean"] = float(np.mean(list(scores.values())))
    return scores


class Logger:
    """Appends JSON records (with the elapsed time) to the log file and prints them."""

    def __init__(self, path: str):
        self.path = path
        self.start = time.time()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def __call__(self, record: dict) -> None:
        record = {"elapsed_s": round(time.time() - self.start, 1), **record}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


class StepPlan:
    """Step count of a phase: ``max_steps``, or fewer when a time budget is given.

    With a budget, the steps from `SKIP` on are timed until `CALIBRATION` steps or 5 % of the
    budget have passed; then the total is fixed so that the whole phase fits the budget, and the
    cosine decay follows it (the warm-up does not depend on the total). The first steps are left
    out of the timing: allocation, cudnn autotuning, other jobs still loading on a shared GPU.
    """

    SKIP, CALIBRATION, CALIBRATION_SHARE = 10, 100, 0.05

    def __init__(self, max_steps: int, seconds: float | None):
        self.total, self.seconds = max_steps, seconds
        self.start, self.t0, self.fixed = time.perf_counter(), None, seconds is None

    def update(self, step: int) -> None:
        """Call after each step."""
        if self.fixed:
            return
        now = time.perf_counter()
        if step == self.SKIP:
            self.t0 = now
        elif self.t0 is not None and (step - self.SKIP >= self.CALIBRATION
                                      or now - self.t0 > self.CALIBRATION_SHARE * self.seconds):
            per_step = (now - self.t0) / (step - self.SKIP)
            left = self.seconds - (now - self.start)
            self.total = max(step + 1, min(self.total, step + 1 + int(left / per_step)))
            self.fixed = True


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _eval_steps(total: int, count: int) -> set[int]:
    return {round(total * (k + 1) / count) - 1 for k in range(count)}


def fit_content(phase: str, net: nn.Module, make_batch: Callable, cfg: TrainConfig,
                log: Logger, evaluate: Callable[[], dict]) -> None:
    """Charbonnier training of ``net``; ``make_batch()`` gives (input, target)."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    plan = StepPlan(cfg.steps[phase], (cfg.seconds or {}).get(phase))
    net.train()
    step, running = 0, []
    while step < plan.total:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, plan.total, cfg.lr, cfg.warmup)
        inputs, target = make_batch()
        loss = charbonnier(net(inputs), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        plan.update(step)
        evaluating = step in _eval_steps(plan.total, cfg.evals_per_phase)
        if step % 100 == 99 or evaluating:
            record = {"phase": phase, "step": step + 1, "total": plan.total,
                      "loss": float(np.mean(running))}
            if evaluating:
                record["eval_psnr_y"] = evaluate()
            log(record)
            running = []
        step += 1
    net.eval()


def fit_adversarial(nets: dict[str, nn.Module], sampler: PatchSampler, cfg: TrainConfig,
                    log: Logger, evaluate: Callable[[], dict], device: torch.device) -> None:
    """Fine-tune A, B, E with L_content + λ·L_GAN, alternating ×2 and ×4 batches."""
    disc = PatchDiscriminator().to(device)
    vgg = VGGFeatureLoss(cfg.vgg_weights).to(device) if cfg.vgg_weights else None
    gen_params = [p for n in nets.values() for p in n.parameters()]
    opt_g = torch.optim.Adam(gen_params, lr=cfg.adversarial_lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.adversarial_lr, betas=(0.9, 0.99))
    plan = StepPlan(cfg.steps["adversarial"], (cfg.seconds or {}).get("adversarial"))
    for n in nets.values():
        n.train()
    step, running = 0, []
    while step < plan.total:
        scale = 2 if step % 2 == 0 else 4
        lr, hr = sampler.sample(cfg.batch, cfg.lr_patch // (scale // 2), scale)
        path = [nets["a"], nets["e"]] if scale == 2 else [nets["a"], nets["b"], nets["e"]]
        fake = run_path(path, lr, grad=True)
        # discriminator step
        real_logits, _ = disc(hr)
        fake_logits, _ = disc(fake.detach())
        _, d_loss = relativistic_losses(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator step: L_content + λ·L_GAN
        real_logits, real_feats = disc(hr)
        fake_logits, fake_feats = disc(fake)
        g_gan, _ = relativistic_losses(real_logits.detach(), fake_logits)
        feature = vgg(fake, hr) if vgg is not None else feature_matching(fake_feats, real_feats)
        content = charbonnier(fake, hr) + cfg.feature_weight * feature
        g_loss = content + cfg.gan_weight * g_gan
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        running.append([content.item(), g_gan.item(), d_loss.item()])
        plan.update(step)
        evaluating = step in _eval_steps(plan.total, cfg.evals_per_phase)
        if step % 100 == 99 or evaluating:
            c, g, d = np.mean(running, axis=0)
            record = {"phase": "adversarial", "step": step + 1, "total": plan.total,
                      "content": float(c), "gan_g": float(g), "gan_d": float(d)}
            if evaluating:
                record["eval_psnr_y"] = evaluate()
            log(record)
            running = []
        step += 1
    for n in nets.values():
        n.eval()


def make_cascade(nets: dict[str, nn.Module], info: dict) -> Cascade:
    """The trained nets as a cascade: stages [A, B], enhancer E (copies, on the CPU)."""
    copies = {k: copy.deepcopy(n).cpu().eval() for k, n in nets.items()}
    return Cascade.from_stages([stage_from_compact(copies["a"], "x2_a"),
                                stage_from_compact(copies["b"], "x2_b")],
                               enhancer=stage_from_compact(copies["e"], "detail"), info=info)


def _cascade_models(path: str, option: str) -> list[nn.Module]:
    """Stage 0, stage 1 and the enhancer of a saved cascade, as this package's networks."""
    cascade = load_cascade(path)
    if len(cascade.stages) != 2 or cascade.enhancer is None:
        raise ValueError(f"{option} {path}: expected two stages and an enhancer, "
                         f"found {cascade.describe()}")
    models = [stage.model for stage in cascade.models()]
    if not all(isinstance(m, CompactSR) for m in models):
        raise ValueError(f"{option} {path}: expected Compact stages, found {cascade.describe()}")
    return models


def _load_init(nets: dict[str, nn.Module], path: str) -> None:
    """Copy a saved cascade's stage 0, stage 1 and enhancer weights into A, B and E."""
    for key, model in zip("abe", _cascade_models(path, "--init")):
        nets[key].load_state_dict(model.state_dict())


def _grown_nets(path: str, stage: CompactConfig, seed: int) -> dict[str, nn.Module]:
    """A and B of a saved cascade grown to `stage`'s shape (same function), and its enhancer."""
    a, b, e = (m.float() for m in _cascade_models(path, "--grow-from"))
    return {"a": grow_compact(a, stage.num_feat, stage.num_conv, seed),
            "b": grow_compact(b, stage.num_feat, stage.num_conv, seed + 1), "e": e}


def _initial_nets(cfg: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
    """A, B (the ×2 stages, `cfg`'s shape) and E (the enhancer) as the run starts them: grown from
    `grow_from`, or new (the enhancer as the identity) and then loaded from `init` if given."""
    stage = CompactConfig(scale=2, num_feat=cfg.stage_features, num_conv=cfg.stage_convs)
    if cfg.stage_init not in STAGE_INITS:
        raise ValueError(f"stage_init: expected one of {STAGE_INITS}, found {cfg.stage_init!r}")
    if cfg.grow_from and (cfg.stage_init != "torch" or cfg.init):
        raise ValueError("grow_from: the grown nets keep their trained weights; stage_init and init "
                         "do not apply")
    if cfg.grow_from:
        return {k: n.to(device) for k, n in _grown_nets(cfg.grow_from, stage, cfg.seed).items()}
    nets = {"a": CompactSR(stage), "b": CompactSR(stage), "e": CompactSR(ENHANCER_CONFIG)}
    if cfg.stage_init == "kaiming":
        kaiming_init_(nets["a"])          # B starts from A's trained weights (stage_b phase)
    nn.init.zeros_(nets["e"].body[-1].weight)  # the enhancer starts as the identity
    nn.init.zeros_(nets["e"].body[-1].bias)
    nets = {k: n.to(device) for k, n in nets.items()}
    if cfg.init:
        _load_init(nets, cfg.init)
    return nets


def train_cascade(cfg: TrainConfig, phases: tuple[str, ...] = PHASES) -> dict:
    """Run the phases, write ``upscale_cascade_{psnr,adversarial}.safetensors``, sum up."""
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    log = Logger(cfg.log_path)
    sources = {k: v for k, v in (("mate_dir", cfg.mate_dir), ("opencv_dir", cfg.opencv_dir),
                                 ("plasma_dir", cfg.plasma_dir), ("lomiri_dir", cfg.lomiri_dir)) if v}
    photos = training_photos(**sources)
    held_out = held_out_photos(**({"opencv_dir": cfg.opencv_dir} if cfg.opencv_dir else {}))
    if not photos:
        raise RuntimeError("no training photos found: install mate-backgrounds / opencv-doc")
    sampler = PatchSampler(photos, device, cfg.seed)
    nets = _initial_nets(cfg, device)
    log({"phase": "setup", "train_photos": [n for n, _ in photos],
         "train_mpix": round(sum(p.shape[0] * p.shape[1] for _, p in photos) / 1e6, 2),
         "held_out": [n for n, _ in held_out], "device": str(device),
         "params": {k: count_parameters(n) for k, n in nets.items()},
         "bicubic_x2": bicubic_scores(held_out, 2), "bicubic_x4": bicubic_scores(held_out, 4),
         "config": asdict(cfg)})
    a, b, e = nets["a"], nets["b"], nets["e"]
    x2 = lambda: evaluate_path([a, e], held_out, 2)  # noqa: E731
    x4 = lambda: evaluate_path([a, b, e], held_out, 4)  # noqa: E731
    p4 = cfg.lr_patch // 2
    summary: dict = {"config": asdict(cfg)}
    if "stage_a" in phases:
        fit_content("stage_a", a, lambda: sampler.sample(cfg.batch, cfg.lr_patch, 2), cfg, log,
                    lambda: evaluate_path([a], held_out, 2))
    if "stage_b" in phases:
        if not cfg.grow_from:
            b.load_state_dict(a.state_dict())  # B starts from A: both are ×2 upscalers

        def batch_b():
            lr, hr = sampler.sample(cfg.batch, p4, 4)
            return run_path([a], lr).clamp(0, 1), hr
        fit_content("stage_b", b, batch_b, cfg, log, lambda: evaluate_path([a, b], held_out, 4))
    if "enhancer" in phases:
        counter = iter(range(10**9))

        def batch_e():
            four = next(counter) % 2
            lr, hr = sampler.sample(cfg.batch, p4 if four else cfg.lr_patch, 4 if four else 2)
            return run_path([a, b] if four else [a], lr).clamp(0, 1), hr
        fit_content("enhancer", e, batch_e, cfg, log, lambda: {"x2": x2(), "x4": x4()})
    os.makedirs(cfg.out_dir, exist_ok=True)
    if set(phases) & {"stage_a", "stage_b", "enhancer"}:
        summary["psnr"] = {"x2": x2(), "x4": x4()}
        log({"phase": "final_psnr", **summary["psnr"]})
        info = {"variant": "psnr", "seed": cfg.seed, **summary["psnr"]}
        save_cascade(make_cascade(nets, info),
                     os.path.join(cfg.out_dir, "upscale_cascade_psnr.safetensors"))
    if "adversarial" in phases:
        fit_adversarial(nets, sampler, cfg, log, lambda: {"x2": x2(), "x4": x4()}, device)
        summary["adversarial"] = {"x2": x2(), "x4": x4()}
        log({"phase": "final_adversarial", **summary["adversarial"]})
        info = {"variant": "adversarial", "seed": cfg.seed,
                "feature_term": "vgg19_conv5_4" if cfg.vgg_weights else "discriminator_fm",
                "gan_weight": cfg.gan_weight, "feature_weight": cfg.feature_weight,
                **summary["adversarial"]}
        save_cascade(make_cascade(nets, info),
                     os.path.join(cfg.out_dir, "upscale_cascade_adversarial.safetensors"))
    return summary

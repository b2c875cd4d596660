"""Multi-frame joint denoising: the classifier-free-guided flow-matching loop of Wan2.1.

All latent frames are denoised together by the DiT; per step the model runs once on the prompt
and once on the negative prompt (as one batched forward when possible), the velocities are mixed
with the guidance scale and a flow solver advances the latent (official `wan/image2video.py`,
`WanI2V.generate`).

Work that does not change over the steps happens once per run: the text and image projections and
every block's cross-attention keys and values (`WanModel.prepare_context`), the RoPE table, and the
conditioning channels `y`.

Hooks for frame alignment:
- ``x0_hooks``: callables ``(x0, info) -> x0`` applied to the x0 estimate before each solver step;
  the velocity is re-derived from the changed x0 (v = (x - x0) / sigma).
- ``predict_wrapper``: ``(predict, x, timestep) -> velocity`` wraps the guided model call, e.g. for
  windowed sampling over long clips: ``predict(x_window, timestep, frames=indices)`` evaluates a
  window of latent frames with the conditioning at those frames.
With no hooks the numerics are exactly the official ones. The temporal-coherence options
(`alignment=FrameAlignment(...)`, `windows=ContextWindows(...)`, see `coherence`) are built on these
hooks; off (None), nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .coherence import ContextWindows, FrameAlignment, alignment_hooks, check_coherence, windowed_wrapper
from .conditioning import I2VConditioning, denormalize_latent, normalize_latent, trim_context
from .sigmas import add_noise, make_schedule

CFG_MODES = ("auto", "batched", "split")


@dataclass
class SamplingOptions:
    """Sampler settings; the defaults are the official 480p image-to-video ones."""

    steps: int = 40
    guidance: float = 5.0
    shift: float = 3.0
    solver: str = "unipc"
    schedule: str = "official"
    seed: int = 0
    denoise: float = 1.0
    sigmas: Sequence[float] | None = None
    start_step: int = 0
    end_step: int | None = None
    cfg_mode: str = "auto"
    noise_device: str = "cpu"

    def __post_init__(self):
        if self.cfg_mode not in CFG_MODES:
            raise ValueError(f"cfg_mode: expected one of {CFG_MODES}, found {self.cfg_mode!r}")
        if not self.guidance >= 0:
            raise ValueError(f"guidance: expected a number >= 0, found {self.guidance!r}")


@dataclass
class StepInfo:
    """What callbacks and x0 hooks see.

    step: 1-based number of the current step (a callback runs after it, an x0 hook inside it);
    total: steps in this run; sigma / timestep: the noise level and model timestep of the step;
    x0: the clean-latent estimate (normalised latent space).
    """

    step: int
    total: int
    sigma: float
    timestep: int
    x0: torch.Tensor


@dataclass
class SamplerHooks:
    """Optional extension points (see the module docstring)."""

    x0_hooks: list = field(default_factory=list)
    predict_wrapper: Callable | None = None


def make_noise(shape: Sequence[int], seed: int, device: str = "cpu") -> torch.Tensor:
    """Seeded float32 Gaussian noise, identical across runs and machines for a CPU generator.

    The official code draws `torch.randn(16, T, h, w)` from a CUDA generator seeded with the seed;
    pass device="cuda" to reproduce that noise exactly (it differs from the CPU stream).
    """
    generator = torch.Generator(device=device).manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=torch.float32)


def sample(dit, cond: I2VConditioning, options: SamplingOptions, *, init_latent: torch.Tensor | None = None,
           noise: torch.Tensor | None = None, callback: Callable[[StepInfo], None] | None = None,
           hooks: SamplerHooks | None = None, alignment: FrameAlignment | None = None,
           windows: ContextWindows | None = None) -> torch.Tensor:
    """Denoise a latent; returns the NORMALISED latent [1, 16, T, h, w] (float32, on the DiT's device).

    init_latent: normalised latent to start from (video-to-video with options.denoise < 1, or the
    output of an earlier stage with start_step > 0). noise: [1, 16, T, h, w] to use instead of the
    seeded noise (e.g. the official CUDA noise). callback: called after every step; raising from it
    (e.g. on a user interrupt) stops sampling. alignment / windows: frame alignment and context
    windows (`coherence`); their hooks run before the given ones (a given predict_wrapper wraps
    the windowed model).
    """
    _check_model_matches(dit, cond)
    check_coherence(cond, alignment, windows)
    hooks = _with_coherence(hooks or SamplerHooks(), cond, alignment, windows)
    device = _device_of(dit)
    schedule = make_schedule(options.steps, shift=options.shift, kind=options.schedule, solver=options.solver,
                             sigmas=options.sigmas, denoise=options.denoise, start_step=options.start_step,
                             end_step=options.end_step)
    shape = (1, *cond.latent_shape)
    if noise is None:
        noise = make_noise(shape, options.seed, options.noise_device)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise: expected shape {shape} (the conditioning's latent), found {tuple(noise.shape)}")
    x = _initial_latent(noise.to(device), init_latent, schedule.sigmas[0], options)
    predict = GuidedModel(dit, cond, options.guidance, options.cfg_mode, device)
    solver = schedule.new_solver()
    total = schedule.num_steps
    try:
        for i, timestep in enumerate(schedule.timesteps):
            sigma = float(schedule.sigmas[i])
            velocity = hooks.predict_wrapper(predict, x, timestep) if hooks.predict_wrapper else predict(x, timestep)
            velocity = _apply_x0_hooks(hooks.x0_hooks, x, velocity, sigma, i + 1, total, timestep)
            x = solver.step(velocity, x, i)
            if callback is not None:
                callback(StepInfo(i + 1, total, sigma, int(timestep), solver.x0_estimate))
    finally:                      # also on an interrupt: a kept traceback must not pin the K/V caches
        predict.release()
    return x


def _with_coherence(hooks: SamplerHooks, cond: I2VConditioning, alignment, windows) -> SamplerHooks:
    """The given hooks with those of the alignment and window options (the same object when both are off)."""
    x0_hooks = alignment_hooks(cond, alignment)
    wrapper = windowed_wrapper(cond, windows, hooks.predict_wrapper)
    if not x0_hooks and wrapper is hooks.predict_wrapper:
        return hooks
    return SamplerHooks(x0_hooks=x0_hooks + list(hooks.x0_hooks), predict_wrapper=wrapper)


def _initial_latent(noise, init_latent, first_sigma, options: SamplingOptions) -> torch.Tensor:
    if init_latent is None:
        if options.denoise < 1.0 or options.start_step > 0:
            raise ValueError("init_latent: a latent to start from is required when denoise < 1 or start_step > 0")
        return noise
    if tuple(init_latent.shape) != tuple(noise.shape):
        raise ValueError(f"init_latent: expected shape {tuple(noise.shape)}, found {tuple(init_latent.shape)}")
    if options.start_step > 0 and options.denoise == 1.0:
        return init_latent.to(noise.device, torch.float32)          # continue a partially denoised latent
    return add_noise(init_latent.to(noise.device), noise, first_sigma)


def _apply_x0_hooks(x0_hooks, x, velocity, sigma, step, total, timestep) -> torch.Tensor:
    if not x0_hooks or sigma == 0.0:
        return velocity
    estimate = x - sigma * velocity.float()
    x0 = estimate.clone()
    info = StepInfo(step, total, sigma, int(timestep), x0)
    for hook in x0_hooks:
        x0 = hook(x0, info)
    if torch.equal(x0, estimate):     # unchanged: keep the model's velocity, (x - x0) / sigma would round
        return velocity
    return (x - x0) / sigma


class GuidedModel:
    """v = v_uncond + g * (v_cond - v_uncond), with everything step-independent precomputed."""

    def __init__(self, dit, cond: I2VConditioning, guidance: float, cfg_mode: str, device):
        self.dit = dit
        self.guidance = guidance
        dtype = dit.compute_dtype
        y = cond.y()
        self.y = None if y is None else y.to(device, dtype)
        clip_fea = None if cond.clip_fea is None else cond.clip_fea.to(device, dtype)
        texts = [trim_context(cond.context, "positive")]
        if guidance != 1.0:
            texts.append(trim_context(cond.context_null, "negative"))
        texts = [t.to(device, dtype) for t in texts]
        self.batched = len(texts) == 2 and _use_batched_cfg(cfg_mode, dit, cond, device)
        if self.batched:
            self.caches = [dit.prepare_context(texts, clip_fea)]
        else:
            self.caches = [dit.prepare_context([t], clip_fea) for t in texts]

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Guided velocity [1, 16, T, h, w] (float32) at one timestep.

        frames: the latent frame indices [T] of x within the clip (a context window); the conditioning
        channels are taken at those frames. None: x is the whole clip.
        """
        x_in = x.to(self.dit.compute_dtype)
        t = timestep.reshape(1).to(x.device)
        y = self.y if frames is None or self.y is None else self.y.index_select(2, frames.to(self.y.device))
        if self.batched:                  # one forward: texts [cond, uncond], x/y/image broadcast
            v_cond, v_uncond = self.dit(x_in, t, y=y, cache=self.caches[0]).chunk(2)
        else:
            outs = [self.dit(x_in, t, y=y, cache=cache) for cache in self.caches]
            if len(outs) == 1:
                return outs[0]
            v_cond, v_uncond = outs
        return v_uncond + self.guidance * (v_cond - v_uncond)

    def release(self) -> None:
        self.caches = []
        self.y = None


def _use_batched_cfg(cfg_mode: str, dit, cond: I2VConditioning, device) -> bool:
    """Batch cond+uncond in one forward unless asked not to, or a GPU lacks the memory for it."""
    if cfg_mode != "auto":
        return cfg_mode == "batched"
    if torch.device(device).type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    per_pass = cond.seq_len * dit.config.ffn_dim * torch.finfo(dit.compute_dtype).bits // 8 * 3
    return free > 4 * per_pass


def _device_of(dit) -> torch.device:
    return next(dit.parameters()).device


def _check_model_matches(dit, cond: I2VConditioning) -> None:
    model_type = dit.config.model_type
    if model_type == "t2v" and cond.has_image:
        raise ValueError("model: this is a text-to-video (t2v) DiT, but the conditioning carries an image; "
                         "load an image-to-video (i2v) checkpoint such as wan2.1_i2v_480p_14B_fp16.safetensors")
    if model_type in ("i2v", "flf2v") and not cond.has_image:
        raise ValueError(f"conditioning: the DiT is {model_type} and needs a start image, found none")
    if model_type == "i2v" and cond.clip_fea is not None and cond.clip_fea.shape[1] != 257:
        raise ValueError(f"conditioning: an i2v DiT takes 257 image tokens (one frame), found "
                         f"{cond.clip_fea.shape[1]}; first+last-frame conditioning needs an flf2v checkpoint")


def sample_batch(dit, cond: I2VConditioning, options: SamplingOptions, samples: torch.Tensor, *,
                 callback: Callable[[int, StepInfo], None] | None = None, alignment: FrameAlignment | None = None,
                 windows: ContextWindows | None = None) -> torch.Tensor:
    """Denoise every item of a RAW latent batch [B, 16, T, h, w]; returns the raw latents (float32, CPU).

    One seeded noise draw of the batch's shape (`options.seed`, as ComfyUI's KSampler), each item
    sampled with its own slice. With options.denoise < 1 or options.start_step > 0 the items are the
    latents to continue (normalised for the DiT, which refuses an all-zero batch); otherwise only
    their shape counts. callback(index, info): after every step of item `index` (0-based).
    alignment / windows: as in `sample`, for every item.
    """
    check_coherence(cond, alignment, windows, caller="sample_batch")
    needs_input = check_latent_batch(samples, options)
    noise = make_noise(samples.shape, options.seed, options.noise_device)
    outputs = []
    for b in range(samples.shape[0]):
        init = normalize_latent(samples[b:b + 1]) if needs_input else None
        on_step = None if callback is None else (lambda info, b=b: callback(b, info))
        x = sample(dit, cond, options, init_latent=init, noise=noise[b:b + 1], callback=on_step,
                   alignment=alignment, windows=windows)
        outputs.append(denormalize_latent(x).cpu())
    return torch.cat(outputs)


def check_latent_batch(samples: torch.Tensor, options: SamplingOptions) -> bool:
    """Whether `sample_batch` continues the given latents (denoise < 1 or start_step > 0); refuses an
    all-zero batch then. Callers may run it before moving the DiT to its device."""
    needs_input = options.denoise < 1.0 or options.start_step > 0
    if needs_input and not samples.abs().sum():
        raise ValueError("latent: denoise < 1 or start_step > 0 continues an existing video latent, "
                         "but the latent is empty (all zeros)")
    return needs_input

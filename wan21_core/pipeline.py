"""Wan2.1 image-to-video end to end: fusion conditioning -> joint denoising -> VAE decode.

    pipe = I2VPipeline(dit, vae, text_encoder, image_encoder)
    frames = pipe(image, "a prompt", frames=81, steps=40, guidance=5.0, shift=3.0, seed=0)
    # -> float tensor [F, H, W, 3] in 0..1; pipe.stats lists each stage's time and peak memory
"""
from __future__ import annotations

from typing import Callable

import torch

from .sampling.conditioning import I2VConditioning, build_conditioning, denormalize_latent
from .sampling.defaults import AREA_480P, default_negative_prompt
from .media.images import to_unit
from .profiling import StageStats, stage
from .sampling.coherence import ContextWindows, FrameAlignment, check_coherence
from .sampling.sampler import SamplerHooks, SamplingOptions, StepInfo, sample


class I2VPipeline:
    """The four Wan2.1 models wired into the official image-to-video pipeline."""

    def __init__(self, dit, vae, text_encoder, image_encoder):
        if not dit.config.has_image_input:
            raise ValueError("dit: this is a text-to-video (t2v) DiT; image-to-video needs an i2v or flf2v "
                             "checkpoint such as wan2.1_i2v_480p_14B_fp16.safetensors")
        self.dit, self.vae = dit, vae
        self.text_encoder, self.image_encoder = text_encoder, image_encoder
        self.stats: list[StageStats] = []

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    def __call__(self, image, prompt: str, negative_prompt: str | None = None, frames: int = 81,
                 steps: int = 40, guidance: float = 5.0, shift: float = 3.0, solver: str = "unipc",
                 seed: int = 0, max_area: int | None = AREA_480P, width: int | None = None,
                 height: int | None = None, end_image=None, schedule: str = "official",
                 callback: Callable[[StepInfo], None] | None = None, hooks: SamplerHooks | None = None,
                 vae_options: dict | None = None, cfg_mode: str = "auto", snap_frames: bool = False,
                 crop: str = "none", noise: torch.Tensor | None = None, alignment: FrameAlignment | None = None,
                 windows: ContextWindows | None = None) -> torch.Tensor:
        """Generate a clip from `image`; returns [F, H, W, 3] float in 0..1 (on CPU).

        negative_prompt None or "" uses the official default negative prompt (as the official code
        does; pass " " for an empty one). width and height (both)
        give an exact size; otherwise the official rule keeps the image's aspect at max_area.
        noise: [1, 16, T, h, w] to start from instead of the noise drawn from `seed` (for example the
        official CUDA-generator noise, or another implementation's, in parity checks).
        alignment / windows: frame alignment and context windows of the sampler (`sampling.coherence`);
        None: off. For clips longer than 81 frames pass e.g. `windows=ContextWindows()`.
        """
        self.stats = []
        check_coherence(None, alignment, windows, caller="I2VPipeline")    # before the encoders run
        cond = self.condition(image, prompt, negative_prompt, frames=frames, max_area=max_area, width=width,
                              height=height, end_image=end_image, snap=snap_frames, crop=crop,
                              vae_options=vae_options)
        options = SamplingOptions(steps=steps, guidance=guidance, shift=shift, solver=solver, schedule=schedule,
                                  seed=seed, cfg_mode=cfg_mode)
        with stage("sample", self.stats, self.device):
            latent = sample(self.dit, cond, options, noise=noise, callback=callback, hooks=hooks,
                            alignment=alignment, windows=windows)
        return self.decode(denormalize_latent(latent), vae_options)

    def condition(self, image, prompt: str, negative_prompt: str | None, *, vae_options: dict | None = None,
                  **plan_options) -> I2VConditioning:
        """The fusion stage (`sampling.build_conditioning`), timed per model (text, image features, VAE encode)."""
        model_type = self.dit.config.model_type
        if not negative_prompt:                 # None or "" -> the official default, as generate.py does
            negative_prompt = default_negative_prompt(model_type)
        return build_conditioning(self.text_encoder, self.image_encoder, self.vae, image, prompt, negative_prompt,
                                  vae_options=vae_options, model_type=model_type, stats=self.stats, **plan_options)

    def decode(self, raw_latent: torch.Tensor, vae_options: dict | None = None) -> torch.Tensor:
        """Raw latent [1, 16, T, h, w] -> frames [F, H, W, 3] in 0..1."""
        with stage("vae decode", self.stats, self.vae.device):
            video = self.vae.decode(raw_latent.to(self.vae.device, self.vae.dtype), **(vae_options or {}))
        return to_unit(video[0].cpu())


def load_pipeline(dit: str, vae: str, t5: str, clip: str, device: torch.device | str = "cpu", *,
                  dit_dtype: torch.dtype | None = None, t5_device: torch.device | str | None = None) -> I2VPipeline:
    """The four model files (any supported format) loaded into an `I2VPipeline` on `device`.

    dit_dtype None: the loader node's rule (`checkpoints.default_dit_dtype`: fp8 stays fp8, fp16 computing
    on a CPU becomes float32, otherwise as stored). The text encoder runs on `t5_device` (default `device`).
    """
    from .checkpoints import (default_dit_dtype, inspect_checkpoint, load_dit, load_image_encoder,
                              load_text_encoder, load_vae)

    if dit_dtype is None:
        dit_dtype = default_dit_dtype(inspect_checkpoint(dit, "dit"), device)
    return I2VPipeline(load_dit(dit, device, dit_dtype, require=("i2v", "flf2v")), load_vae(vae, device),
                       load_text_encoder(t5, t5_device or device), load_image_encoder(clip, device))

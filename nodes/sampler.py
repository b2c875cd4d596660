"""Wan Sampler: classifier-free-guided flow-matching denoising of all frames at once."""
from __future__ import annotations

from wan21_core.sampling import (CFG_MODES, SCHEDULE_KINDS, SOLVERS, SamplingOptions, check_coherence,
                                 check_latent_batch, from_comfy_conditioning, preview_image, sample_batch)

from . import comfy_adapter as comfy
from .base import WAN_ALIGNMENT, WAN_DIT, WanNode, tooltip

MAX_SEED = 0xFFFFFFFFFFFFFFFF


class WanSampler(WanNode):
    DESCRIPTION = ("Denoises every frame of the clip together with the Wan2.1 DiT: classifier-free guidance "
                   "(prompt and negative prompt in one batched pass), shifted flow-matching sigmas and the "
                   "official UniPC solver. Works with this pack's fusion or ComfyUI's WanImageToVideo.")
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised raw latent, for Wan VAE Decode or ComfyUI's VAE Decode.",)

    @classmethod
    def inputs(cls):
        return {
            "required": {
                "dit": (WAN_DIT, tooltip("The diffusion model from Wan DiT Loader (i2v or flf2v).")),
                "positive": ("CONDITIONING", tooltip("Prompt conditioning with the image conditioning (fusion output).")),
                "negative": ("CONDITIONING", tooltip("Negative prompt conditioning (fusion output).")),
                "latent": ("LATENT", tooltip("The latent to fill: the fusion's empty latent, or a video latent "
                                             "with denoise < 1 (video-to-video).")),
                "seed": ("INT", tooltip("Noise seed; the same seed gives the same clip (CPU noise, like KSampler).",
                                        default=0, min=0, max=MAX_SEED, control_after_generate=True)),
                "steps": ("INT", tooltip("Sampling steps (official: 40).", default=40, min=1, max=1000)),
                "guidance": ("FLOAT", tooltip("Classifier-free guidance scale (official: 5.0; 1.0 skips the negative pass).",
                                              default=5.0, min=0.0, max=30.0, step=0.1, round=0.01)),
                "shift": ("FLOAT", tooltip("Sigma shift (official: 3.0 at 480p, 5.0 at 720p).",
                                           default=3.0, min=0.1, max=100.0, step=0.1, round=0.01)),
                "solver": (list(SOLVERS), tooltip("unipc: the official default; dpm++: DPM-Solver++ 2M; euler: first order.",
                                                  default="unipc")),
                "schedule": (list(SCHEDULE_KINDS), tooltip(
                    "official: Wan2.1's own timesteps; diffusers: diffusers' (differ by about one timestep).",
                    default="official")),
                "denoise": ("FLOAT", tooltip("1.0 generates from noise; lower keeps that much of the input latent.",
                                             default=1.0, min=0.01, max=1.0, step=0.01)),
            },
            "optional": {
                "cfg_mode": (list(CFG_MODES), tooltip(
                    "auto: one batched forward for prompt and negative when memory allows; split: two passes "
                    "(less memory).", default="auto")),
                "start_step": ("INT", tooltip("First step to run (for split sampling).", default=0, min=0, max=1000)),
                "end_step": ("INT", tooltip("Stop before this step; 0 = run to the end.", default=0, min=0, max=1000)),
                "alignment": (WAN_ALIGNMENT, tooltip(
                    "Frame alignment and context windows from Wan Sampler Alignment (first-frame anchoring, "
                    "colour/brightness steadying, long clips). Unconnected: plain sampling.")),
            },
        }

    def execute(self, dit, positive, negative, latent, seed, steps, guidance, shift, solver, schedule, denoise,
                cfg_mode="auto", start_step=0, end_step=0, alignment=None):
        samples = latent["samples"]
        cond = from_comfy_conditioning(positive, negative, latent, text_dim=dit.model.config.text_dim)
        options = SamplingOptions(steps=steps, guidance=guidance, shift=shift, solver=solver, schedule=schedule,
                                  seed=seed, denoise=denoise, start_step=start_step, end_step=end_step or None,
                                  cfg_mode=cfg_mode)
        coherence = alignment or {}
        check_coherence(cond, coherence.get("alignment"), coherence.get("windows"), caller="Wan Sampler")
        check_latent_batch(samples, options)              # before the DiT moves to the GPU
        batch = samples.shape[0]
        progress = comfy.Progress(steps * batch)
        show_preview = comfy.previews_enabled()

        def on_step(b: int, info) -> None:
            progress.update(b * info.total + info.step, batch * info.total,
                            preview_image(info.x0) if show_preview else None)

        with dit.use() as model:
            out = sample_batch(model, cond, options, samples, callback=on_step, **coherence)
        return ({**latent, "samples": out},)


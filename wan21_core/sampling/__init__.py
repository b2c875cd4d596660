"""Sampling: the fusion stage (conditioning), sigma schedules, flow solvers, the guided sampler, the
official defaults, latent previews, ComfyUI's CONDITIONING/LATENT layouts, and the temporal-coherence
options of the sampler (frame alignment, context windows)."""
from .coherence import ContextWindows, FrameAlignment, check_coherence
from .comfy_format import clip_features_of, from_comfy_conditioning, fusion_extras, pad_text, with_extras
from .conditioning import (I2VConditioning, build_conditioning, check_frames, conditioning_clip, denormalize_latent,
                           encode_clip_features, frame_mask, fuse_frames, join_clip_features, normalize_latent,
                           plan_fusion)
from .defaults import (AREA_480P, AREA_720P, FPS, I2V_FRAMES, I2V_GUIDANCE, I2V_SHIFT, I2V_STEPS, NEGATIVE_PROMPT_I2V,
                       default_negative_prompt, default_shift)
from .preview import preview_image
from .sampler import (CFG_MODES, SamplerHooks, SamplingOptions, StepInfo, check_latent_batch, make_noise, sample,
                      sample_batch)
from .sigmas import SCHEDULE_KINDS, make_schedule
from .solvers import SOLVERS, make_solver

__all__ = ["AREA_480P", "AREA_720P", "CFG_MODES", "ContextWindows", "FPS", "FrameAlignment", "I2VConditioning",
           "I2V_FRAMES", "I2V_GUIDANCE", "I2V_SHIFT", "I2V_STEPS", "NEGATIVE_PROMPT_I2V", "SCHEDULE_KINDS", "SOLVERS",
           "SamplerHooks", "SamplingOptions", "StepInfo", "build_conditioning", "check_coherence", "check_frames",
           "check_latent_batch", "clip_features_of", "conditioning_clip", "default_negative_prompt", "default_shift",
           "denormalize_latent", "encode_clip_features", "frame_mask", "from_comfy_conditioning", "fuse_frames",
           "fusion_extras", "join_clip_features", "make_noise", "make_schedule", "make_solver", "normalize_latent",
           "pad_text", "plan_fusion", "preview_image", "sample", "sample_batch", "with_extras"]

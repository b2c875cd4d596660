"""Tiny random-weight Wan2.1 models in float32, built once per test session and shared by the
conditioning, sampler and pipeline tests (`wan21_core.tiny` weights: every tensor random, none of the
official zero inits, so a mapping bug cannot hide behind a zero).

Also small helpers: `rel_l2`, a random `I2VConditioning` that needs no encoder, and a DiT call
counter.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from wan21_core import tiny
from wan21_core.checkpoints import image_encoder_from_state_dict, text_encoder_from_state_dict, vae_from_state_dict
from wan21_core.models import ImageEncoder, TextEncoder, WanModel, WanVAE
from wan21_core.sampling.conditioning import I2VConditioning, frame_mask, keep_flags


@dataclass
class TinyModels:
    dit: WanModel
    vae: WanVAE
    text_encoder: TextEncoder
    image_encoder: ImageEncoder


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@functools.lru_cache(maxsize=None)
def tiny_dit(model_type: str = "i2v") -> WanModel:
    model = WanModel(tiny.tiny_dit_config(model_type))
    model.load_state_dict(tiny.tiny_dit_state_dict(model_type), strict=True)
    return model.eval()


@functools.lru_cache(maxsize=None)
def tiny_models() -> TinyModels:
    """The i2v DiT, VAE, umT5 (float32, with the tiny tokenizer) and CLIP of `wan21_core.tiny`."""
    text_encoder = text_encoder_from_state_dict(tiny.tiny_t5_state_dict(), tiny.tiny_spiece_model(),
                                                dtype=torch.float32)
    return TinyModels(dit=tiny_dit("i2v"), vae=vae_from_state_dict(tiny.tiny_vae_state_dict()),
                      text_encoder=text_encoder,
                      image_encoder=image_encoder_from_state_dict(tiny.tiny_clip_state_dict()))


def random_conditioning(latent_shape=(16, 3, 4, 6), seed: int = 0, text_lengths=(7, 11),
                        image_tokens: int = 257, start_frames: int = 1) -> I2VConditioning:
    """An image-to-video conditioning of random tensors (no encoder needed)."""
    g = torch.Generator().manual_seed(seed)
    _, frames, lat_h, lat_w = latent_shape
    pixel_frames = (frames - 1) * 4 + 1
    mask = frame_mask(keep_flags(pixel_frames, start_frames, end_frame=image_tokens == 514), lat_h, lat_w)
    return I2VConditioning(context=torch.randn(text_lengths[0], 4096, generator=g),
                           context_null=torch.randn(text_lengths[1], 4096, generator=g),
                           clip_fea=torch.randn(1, image_tokens, 1280, generator=g),
                           latent_image=2.0 * torch.randn(1, *latent_shape, generator=g),
                           mask=mask[None], latent_shape=tuple(latent_shape))


class CallCounter:
    """Counts forward calls of a module and records the timesteps and output batch of each."""

    def __init__(self, module: torch.nn.Module):
        self.timesteps: list[int] = []
        self.batches: list[int] = []
        self._handle = module.register_forward_hook(self._record)

    def _record(self, module, args, output) -> None:
        self.timesteps.append(int(torch.as_tensor(args[1]).reshape(-1)[0]))
        self.batches.append(output.shape[0])

    @property
    def calls(self) -> int:
        return len(self.batches)

    def __enter__(self) -> "CallCounter":
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

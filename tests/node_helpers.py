"""Shared helpers of the node tests (tests/nodes): the clip geometry, the loaded pack and calling a node
(`run`), the fusion and sampler nodes with the tests' settings (`fuse`, `sample`)."""
from __future__ import annotations

import types
from dataclasses import dataclass

HEIGHT, WIDTH, LENGTH = 32, 48, 5                  # latent [1, 16, 2, 4, 6]: 12 DiT tokens
LATENT = (1, 16, 2, HEIGHT // 8, WIDTH // 8)
STEPS = 3


@dataclass
class Pack:
    classes: dict
    display_names: dict
    adapter: types.ModuleType


def run(pack: Pack, node: str, **inputs):
    return pack.classes[node]().run(**inputs)


def fuse(pack, encoded, vae, image, **overrides):
    inputs = dict(positive=encoded["positive"], negative=encoded["negative"], vae=vae, start_image=image,
                  width=WIDTH, height=HEIGHT, length=LENGTH, batch_size=1, size_mode="exact", crop="none",
                  vae_tile=0, clip_vision_output=encoded["clip_vision_output"])
    return run(pack, "WanFusionConditioning", **(inputs | overrides))


def sample(pack, dit, positive, negative, latent, seed=7, **overrides):
    inputs = dict(dit=dit, positive=positive, negative=negative, latent=latent, seed=seed, steps=STEPS,
                  guidance=5.0, shift=3.0, solver="unipc", schedule="official", denoise=1.0)
    (out,) = run(pack, "WanSampler", **(inputs | overrides))
    return out["samples"]

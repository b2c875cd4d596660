"""First-frame anchoring: keep the given latent frames on the encoded start image(s) through the steps.

An image-to-video DiT re-generates frame 0 itself; the conditioning only asks it to. The anchor is an
x0 hook of the sampler: within its step range it moves the x0 estimate of the leading latent
frames that the conditioning gives completely (mask 1 on all four of its pixel frames: frame 0 of
an ordinary start image; more frames when the fusion stage was given several start frames, e.g.
the last frames of a previous clip) towards the conditioning latent of those frames:

    x0[:, :, :k] <- x0[:, :, :k] + strength · (start_latent[:, :, :k] − x0[:, :, :k])

A partly given latent frame (mask 1 on some of its four pixel frames) is not anchored: its
conditioning latent mixes the given frames with grey ones.
"""
from __future__ import annotations

import torch

from .conditioning import I2VConditioning, normalize_latent
from .step_range import StepRange


def given_latent_frames(mask: torch.Tensor) -> int:
    """Number of leading latent frames whose four pixel frames are all given.  mask [1, 4, T, h, w] -> k"""
    complete = mask[0].flatten(2).amin(dim=(0, 2)) >= 1            # [T]: every channel and pixel is 1
    return int(complete.to(torch.int64).cumprod(0).sum())


def anchor_target(cond: I2VConditioning) -> torch.Tensor:
    """Normalised conditioning latent of the given leading frames: [1, 16, k, h, w] (k may be 0)."""
    k = given_latent_frames(cond.mask)
    return normalize_latent(cond.latent_image[:, :, :k])


class FrameAnchor:
    """x0 hook: pulls the given leading latent frames towards their conditioning latent."""

    def __init__(self, target: torch.Tensor, strength: float, steps: StepRange):
        self.target = target              # [1, 16, k, h, w], normalised
        self.strength = strength
        self.steps = steps

    def __call__(self, x0: torch.Tensor, info) -> torch.Tensor:
        k = self.target.shape[2]
        if k == 0 or not self.steps.contains(info.step, info.total):
            return x0
        target = self.target.to(x0.device, x0.dtype)
        anchored = torch.lerp(x0[:, :, :k], target, self.strength)
        return torch.cat([anchored, x0[:, :, k:]], dim=2)

"""First-frame anchoring (wan21_core.sampling.frame_anchor): which latent frames are given, the x0 hook,
and the anchor in the sampler with the tiny i2v DiT."""
import pytest
import torch

from i2v_models import random_conditioning, tiny_dit
from wan21_core.sampling import (FrameAlignment, SamplingOptions, StepInfo, frame_mask, make_noise, normalize_latent,
                                 sample)
from wan21_core.sampling.conditioning import keep_flags
from wan21_core.sampling.frame_anchor import FrameAnchor, anchor_target, given_latent_frames
from wan21_core.sampling.step_range import StepRange


@pytest.mark.parametrize("start_frames, end_frame, expected", [(1, False, 1), (2, False, 1), (5, False, 2),
                                                                (9, False, 3), (1, True, 1), (0, False, 0)])
def test_only_completely_given_leading_latent_frames_count(start_frames, end_frame, expected):
    mask = frame_mask(keep_flags(21, start_frames, end_frame), 2, 2)[None]
    assert given_latent_frames(mask) == expected


def test_the_anchor_hook_pulls_only_the_given_frames_within_its_steps():
    target = torch.zeros(1, 16, 2, 2, 2)
    x0 = torch.ones(1, 16, 5, 2, 2)
    hook = FrameAnchor(target, 0.25, StepRange(0.0, 0.5))
    out = hook(x0, StepInfo(1, 4, 0.9, 900, x0))
    assert torch.equal(out[:, :, :2], torch.full_like(target, 0.75)) and torch.equal(out[:, :, 2:], x0[:, :, 2:])
    assert hook(x0, StepInfo(3, 4, 0.3, 300, x0)) is x0                 # step 3 of 4 starts at 0.5: outside
    assert FrameAnchor(target[:, :, :0], 1.0, StepRange())(x0, StepInfo(1, 4, 0.9, 900, x0)) is x0


@pytest.fixture(scope="module")
def dit():
    return tiny_dit("i2v")


def frame_distance(latent, target):
    k = target.shape[2]
    return (latent[:, :, :k] - target).norm().item()


@pytest.mark.parametrize("solver", ["unipc", "euler"])
def test_anchoring_keeps_frame_zero_on_the_start_latent(dit, solver):
    cond = random_conditioning()
    target = anchor_target(cond)
    options = SamplingOptions(steps=4, solver=solver)
    noise = make_noise((1, *cond.latent_shape), 3)
    plain = sample(dit, cond, options, noise=noise)
    half = sample(dit, cond, options, noise=noise, alignment=FrameAlignment(anchor_strength=0.5))
    full = sample(dit, cond, options, noise=noise, alignment=FrameAlignment(anchor_strength=1.0))
    assert frame_distance(full, target) < 1e-4 * target.norm()
    assert 1e-4 * target.norm() < frame_distance(half, target) < frame_distance(plain, target)
    assert not torch.equal(full[:, :, 1:], plain[:, :, 1:])             # the rest follows the anchored frame


def test_a_continued_clip_anchors_all_its_given_frames(dit):
    cond = random_conditioning(latent_shape=(16, 4, 4, 6), start_frames=5)    # 5 frames: latent frames 0 and 1
    target = anchor_target(cond)
    assert target.shape[2] == 2
    assert torch.equal(target, normalize_latent(cond.latent_image[:, :, :2]))
    out = sample(dit, cond, SamplingOptions(steps=3), alignment=FrameAlignment(anchor_strength=1.0))
    assert frame_distance(out, target) < 1e-4 * target.norm()

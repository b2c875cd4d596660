"""Wan Sampler Alignment and the Wan Sampler's optional `alignment` input, called directly on the tiny
random model set: unconnected or all off it is plain sampling (bit-identical), a clip that fits one
context window is sampled exactly as without windows, the options change the result, and bad
settings are refused by name."""
import pytest
import torch

from node_helpers import LATENT, run, sample

OFF = dict(anchor_strength=0.0, anchor_start=0.0, anchor_end=1.0, stats_strength=0.0, stats_start=0.5, stats_end=1.0,
           stats_window=3, context_frames=0, context_overlap=20, closed_loop=False)


def alignment(pack, **overrides):
    (out,) = run(pack, "WanSamplerAlignment", **(OFF | overrides))
    return out


def test_the_node_builds_the_core_options(pack):
    out = alignment(pack, anchor_strength=0.5, context_frames=81, context_overlap=18, closed_loop=True)
    assert out["alignment"].anchor_strength == 0.5 and out["alignment"].stats_strength == 0.0
    windows = out["windows"]
    assert (windows.length, windows.overlap, windows.closed_loop) == (21, 5, True)
    assert alignment(pack)["windows"] is None


def test_off_and_one_window_are_plain_sampling(pack, loaded, fused, reference):
    assert reference.shape == LATENT
    off = sample(pack, loaded["dit"], *fused, alignment=alignment(pack))
    one_window = sample(pack, loaded["dit"], *fused, alignment=alignment(pack, context_frames=81))
    assert torch.equal(off, reference) and torch.equal(one_window, reference)


def test_alignment_changes_the_sample(pack, loaded, fused, reference):
    anchored = sample(pack, loaded["dit"], *fused, alignment=alignment(pack, anchor_strength=1.0, stats_strength=1.0))
    assert anchored.shape == reference.shape and not torch.equal(anchored, reference)
    windowed = sample(pack, loaded["dit"], *fused, alignment=alignment(pack, context_frames=1, context_overlap=0))
    assert windowed.shape == reference.shape and not torch.equal(windowed, reference)


def test_bad_settings_are_refused_by_name(pack):
    with pytest.raises(ValueError, match=r"ContextWindows.from_video_frames: frames: expected 4n\+1"):
        alignment(pack, context_frames=80)
    with pytest.raises(ValueError, match="FrameAlignment: anchor_start/anchor_end: expected start < end"):
        alignment(pack, anchor_start=0.6, anchor_end=0.4)

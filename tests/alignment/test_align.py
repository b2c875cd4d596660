"""`align_frames` on real and constructed clips: it removes injected jitter, keeps what it must keep,
preserves the tensor's layout, and refuses bad arguments with clear messages."""
from __future__ import annotations

import pytest
import torch

from alignment_clips import carphone, jitter, other_scene, psnr
from wan21_core.alignment import METHODS, align_frames
from wan21_core.metrics import color_drift, flicker_index, warp_error


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    return carphone(40)


@pytest.fixture(scope="module")
def degraded(clean) -> torch.Tensor:
    return jitter(clean, seed=3)


# ------------------------------------------------------------------------------------- recovery

@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_removes_injected_jitter_from_a_real_clip(method, clean, degraded):
    out = align_frames(degraded, method=method)
    assert psnr(out, clean) > psnr(degraded, clean) + 3
    assert flicker_index(out) < 0.3 * flicker_index(degraded)
    assert abs(flicker_index(out) - flicker_index(clean)) < 0.5
    assert color_drift(out).mean() < color_drift(degraded).mean()


def test_defaults_lower_the_warping_error_of_a_jittered_clip(clean, degraded):
    clip, noisy = clean[:12], degraded[:12]
    out = align_frames(noisy)
    assert warp_error(out, reference=clip) < 0.7 * warp_error(noisy, reference=clip)


def test_deflicker_equalises_mean_luma_over_the_window(degraded):
    out = align_frames(degraded, deflicker=3)
    assert flicker_index(out) < flicker_index(align_frames(degraded, deflicker=False))


def test_first_reference_matches_every_frame_to_frame_0(degraded):
    out = align_frames(degraded, reference="first", method="mkl")
    assert color_drift(out).max() < 0.5 < color_drift(degraded).max()


def test_image_reference_recovers_a_colour_cast(clean):
    truth = clean[:1]
    cast = (truth * torch.tensor([1.08, 1.0, 0.9])).clamp(0, 1) ** 0.9
    for method in METHODS:
        out = align_frames(cast, reference=truth, method=method)
        assert color_drift(out, anchor=truth)[0] < 0.25 * color_drift(cast, anchor=truth)[0], method


def test_per_frame_reference_images(clean, degraded):
    out = align_frames(degraded, reference=clean, method="histogram")
    assert psnr(out, clean) > 40


def test_a_perfectly_stable_clip_is_nearly_unchanged(clean):
    still = clean[:1].expand(10, -1, -1, -1).contiguous()
    for method in METHODS:
        assert (align_frames(still, method=method) - still).abs().max() < 2e-3, method


def test_shots_are_aligned_separately():
    """A bright shot and a dark shot: neither may borrow the other's colours at the cut."""
    clip = carphone(16)
    dark = (other_scene(clip[8:]) * torch.tensor([0.5, 0.4, 0.6])).clamp(0, 1)
    both = torch.cat([clip[:8], dark])
    out = align_frames(both)
    assert psnr(out, both) > 40


# ------------------------------------------------------------------------------------- layout

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_shape_dtype_and_device_are_kept(dtype, degraded):
    frames = degraded[:6, :32, :40].to(dtype)
    for method in METHODS:
        out = align_frames(frames, method=method)
        assert out.shape == frames.shape and out.dtype == dtype and out.device == frames.device
        assert out.min() >= 0 and out.max() <= 1


def test_strength_zero_returns_the_input_exactly(degraded):
    frames = degraded[:5] * 1.2 - 0.1                       # slightly outside 0..1: kept as is
    out = align_frames(frames, strength=0, deflicker=True)
    assert torch.equal(out, frames) and out.data_ptr() != frames.data_ptr()


def test_strength_blends_linearly(degraded):
    frames = degraded[:8]
    full, half = align_frames(frames, method="mkl"), align_frames(frames, method="mkl", strength=0.5)
    inside = (full > 0) & (full < 1)                        # where the full transform was not clamped
    assert inside.float().mean() > 0.9
    assert torch.allclose(half[inside], ((frames + full) / 2)[inside], atol=1e-5)


def test_single_frame_and_tiny_frames():
    one = torch.rand(1, 3, 2, 3, generator=torch.Generator().manual_seed(0))
    for method in METHODS:
        assert torch.allclose(align_frames(one, method=method), one, atol=2e-3), method


# ------------------------------------------------------------------------------------- errors

GOOD = torch.rand(4, 8, 8, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"frames": torch.rand(8, 8, 3)}, r"frames must be a 4-d tensor .* found 3 dimensions"),
    ({"frames": torch.rand(4, 8, 8, 4)}, r"frames must be RGB with 3 channels last .* found 4 channels"),
    ({"frames": torch.randint(0, 255, (4, 8, 8, 3))},
     r"frames must be a floating-point tensor .* found dtype torch.int64"),
    ({"frames": GOOD * 255}, r"frames must be values in 0..1, found values from .* \(0..255 values\? divide by 255\)"),
    ({"frames": GOOD.clone().index_fill_(0, torch.tensor([1]), float("nan"))}, r"frames must be finite values"),
    ({"frames": [[1.0]]}, r"frames must be a float tensor .* found \[\[1.0\]\] \(list\)"),
    ({"method": "mvgd"}, r"method must be one of \('lab', 'mkl', 'histogram'\), found 'mvgd'"),
    ({"window": 0}, r"window must be an integer >= 1, found 0"),
    ({"window": 2.5}, r"window must be an integer >= 1, found 2.5"),
    ({"strength": 1.5}, r"strength must be a number in 0..1, found 1.5"),
    ({"strength": -0.1}, r"strength must be a number in 0..1"),
    ({"deflicker": -1}, r"deflicker must be a bool or a window half-width"),
    ({"reference": "last"}, r"reference must be one of \('window', 'first'\) or an IMAGE tensor, found 'last'"),
    ({"reference": torch.rand(3, 8, 8, 3)}, r"reference must be an IMAGE of 1 or 4 frames .* found 3 frames"),
    ({"reference": torch.rand(1, 8, 8, 2)}, r"reference must be RGB with 3 channels last"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    arguments = {"frames": GOOD, **kwargs}
    with pytest.raises(ValueError, match=r"^align_frames: " + message):
        align_frames(**arguments)

"""Metric definitions on constructed cases: flicker index, CIEDE2000 colour drift, warping error."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wan21_core.alignment import ciede2000
from wan21_core.metrics import color_drift, flicker_index, warp_error

skimage_color = pytest.importorskip("skimage.color")


def flat_clip(levels: list[float], size: int = 8) -> torch.Tensor:
    """Grey frames of the given 0..1 levels.  -> [F, size, size, 3]"""
    return torch.tensor(levels, dtype=torch.float32)[:, None, None, None].expand(-1, size, size, 3).contiguous()


# ------------------------------------------------------------------------------------- flicker

def test_flicker_index_is_the_mean_step_of_mean_luma_in_8bit_units():
    clip = flat_clip([0.2, 0.3, 0.25, 0.25])                     # grey: luma = level
    assert flicker_index(clip) == pytest.approx((25.5 + 12.75 + 0) / 3, abs=1e-4)


def test_flicker_index_uses_bt601_luma():
    red = torch.zeros(2, 4, 4, 3)
    red[1, ..., 0] = 1.0                                         # mean luma jumps by 0.299 · 255
    assert flicker_index(red) == pytest.approx(0.299 * 255, abs=1e-4)
    assert flicker_index(red[:1]) == 0.0


# ------------------------------------------------------------------------------------- ΔE00

def test_ciede2000_matches_skimage_on_random_and_edge_colours():
    g = torch.Generator().manual_seed(0)
    lab1 = torch.rand(2000, 3, generator=g, dtype=torch.float64) * torch.tensor([100, 200, 200])
    lab1 -= torch.tensor([0, 100, 100])
    lab2 = (lab1 + torch.randn(2000, 3, generator=g, dtype=torch.float64) * 8).clamp(-100, 100)
    edges = torch.tensor([[[50, 0, 0], [50, 0, 0]], [[50, 0, 0], [60, 0, 0]], [[50, 2, 0], [50, 0, 2]],
                          [[50, -1, 1e-9], [50, -1, -1e-9]],          # hue wrap across ±180°
                          [[50, 10, -2], [50, 10, 2]], [[30, -20, 5], [40, 0, 0]]], dtype=torch.float64)
    lab1, lab2 = torch.cat([lab1, edges[:, 0]]), torch.cat([lab2, edges[:, 1]])
    ours = ciede2000(lab1, lab2).numpy()
    theirs = skimage_color.deltaE_ciede2000(lab1.numpy(), lab2.numpy())
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_ciede2000_published_pair():
    """Sharma, Wu & Dalal (2005), test pair 1: ΔE00 = 2.0425."""
    value = ciede2000(torch.tensor([50.0, 2.6772, -79.7751]), torch.tensor([50.0, 0.0, -82.7485]))
    assert float(value) == pytest.approx(2.0425, abs=1e-4)


def test_color_drift_is_delta_e00_of_mean_lab_per_frame():
    frames = torch.rand(3, 6, 6, 3, generator=torch.Generator().manual_seed(1))
    drift = color_drift(frames)
    assert drift.shape == (3,) and drift.dtype == torch.float64 and drift[0] == 0
    labs = skimage_color.rgb2lab(frames.double().numpy()).reshape(3, -1, 3).mean(axis=1)
    np.testing.assert_allclose(drift.numpy(), skimage_color.deltaE_ciede2000(labs, labs[:1]), atol=2e-3)
    np.testing.assert_allclose(color_drift(frames, anchor=2).numpy(),
                               skimage_color.deltaE_ciede2000(labs, labs[2:]), atol=2e-3)
    assert torch.allclose(color_drift(frames, anchor=frames[1]), color_drift(frames, anchor=1), atol=1e-5)


# ------------------------------------------------------------------------------------- warping error

def translated_clip(frames: int = 5, size: int = 64, step: tuple[int, int] = (2, 1)) -> torch.Tensor:
    """Crops of one real photo, moved by `step` (rows, cols) pixels per frame: a known pure translation."""
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).float() / 255
    return torch.stack([photo[100 + t * step[0]:100 + t * step[0] + size, 180 + t * step[1]:180 + t * step[1] + size]
                        for t in range(frames)])


def test_warp_error_is_near_zero_for_a_pure_translation_and_grows_with_noise():
    clip = translated_clip()
    clean_error = warp_error(clip)
    g = torch.Generator().manual_seed(0)
    errors = [warp_error((clip + sigma * torch.randn(clip.shape, generator=g)).clamp(0, 1), reference=clip)
              for sigma in (0.01, 0.03)]
    assert clean_error < 5e-4                         # DIS sub-pixel error and the entering borders only
    assert clean_error < errors[0] < errors[1]
    for sigma, error in zip((0.01, 0.03), errors):   # two independent noises per pair add 2σ²
        assert error - clean_error == pytest.approx(2 * sigma ** 2, rel=0.3)


def test_warp_error_uses_the_reference_motion():
    clip = translated_clip()
    frozen = clip[:1].expand_as(clip).contiguous()    # no motion: judged on the clip's motion it is wrong
    assert warp_error(frozen) < 1e-6
    assert warp_error(frozen, reference=clip) > 10 * warp_error(clip)


@pytest.mark.parametrize("call, message", [
    (lambda: flicker_index(torch.rand(2, 4, 4)), "flicker_index: frames must be a 4-d tensor"),
    (lambda: color_drift(torch.rand(2, 4, 4, 3), anchor=5), "outside the 2 frames"),
    (lambda: warp_error(torch.rand(1, 8, 8, 3)), "at least 2 frames"),
    (lambda: warp_error(torch.rand(2, 8, 8, 3), reference=torch.rand(2, 8, 9, 3)), "reference must have the shape"),
])
def test_metric_errors_name_the_metric(call, message):
    with pytest.raises(ValueError, match=message):
        call()

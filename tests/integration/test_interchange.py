"""Stages of this pack and ComfyUI's own Wan nodes swap freely in one graph.

Two prompts run once per module; the tests read what they saved.

- `native_fusion_run`: ComfyUI's CLIPVisionEncode and VAE feed both ComfyUI's WanImageToVideo and
  this pack's fusion; both go to this pack's sampler with the same seed, so the two latents must
  agree to float precision (the start image is already 64x48, so neither node resizes: native
  bilinear center crop and the pack's bicubic are both the identity). A third branch encodes with
  this pack's VAE loaded from the same file. The native branch's latent is decoded by ComfyUI's
  VAEDecode and by this pack's Wan VAE Decode, each to CreateVideo + SaveVideo.
- `native_sampler_run`: this pack's fusion feeds ComfyUI's KSampler (UNETLoader on the tiny DiT,
  ModelSamplingSD3, euler), decoded by ComfyUI's VAEDecode, then upscaled by this pack's upscaler
  with ComfyUI's UPSCALE_MODEL and with its own loader, next to ComfyUI's ImageUpscaleWithModel.

KSampler is not compared with this pack's sampler number by number: the node offers no way to
give it the same sigmas (KSampler's "simple" schedule starts at sigma 1.0 and feeds float
timesteps sigma*1000; the official schedule starts at 0.999 and truncates timesteps to integers).
"""
import numpy as np
import pytest
import torch

import model_files as mf
from graphs import (HEIGHT, LENGTH, WIDTH, Graph, pack_dit, pack_fusion, pack_image_features, pack_sampler,
                    pack_text, read_latent, read_pngs, saved_files, video_info, video_out)

LATENT_SHAPE = (1, 16, 3, HEIGHT // 8, WIDTH // 8)


def run_graph(comfy, g: Graph, saves: dict) -> dict:
    """Run the prompt; {role: [saved paths]} for the SaveX nodes in `saves` ({role: node})."""
    outputs = comfy.run(g.prompt(), timeout=900)
    return {role: saved_files(comfy, outputs, node.id) for role, node in saves.items()}


@pytest.fixture(scope="module")
def native_fusion_run(comfy, start_image):
    g = Graph()
    image = g.add("LoadImage", image=start_image)
    positive, negative = pack_text(g, t5_name=mf.LEGACY_T5)                  # from models/clip
    clip_vision = g.add("CLIPVisionLoader", clip_name=mf.CLIP_VISION)
    features = g.add("CLIPVisionEncode", clip_vision=clip_vision[0], image=image[0], crop="none")
    native_vae = g.add("VAELoader", vae_name=mf.VAE)
    pack_vae = g.add("WanVAELoader", vae_name=mf.VAE, dtype="fp32", device="cpu")
    dit = pack_dit(g, mf.LEGACY_DIT)                                          # from models/unet

    native_i2v = g.add("WanImageToVideo", positive=positive[0], negative=negative[0], vae=native_vae[0],
                       width=WIDTH, height=HEIGHT, length=LENGTH, batch_size=1,
                       clip_vision_output=features[0], start_image=image[0])
    fusion = pack_fusion(g, positive[0], negative[0], native_vae[0], image[0], features[0], crop="center")
    fusion_pack_vae = pack_fusion(g, positive[0], negative[0], pack_vae[0], image[0], features[0], crop="center")
    samples = {name: pack_sampler(g, dit[0], node[0], node[1], node[2])
               for name, node in (("native_i2v", native_i2v), ("pack_fusion", fusion),
                                  ("pack_vae", fusion_pack_vae))}
    saves = {name: g.add("SaveLatent", samples=s[0], filename_prefix=f"parity/{name}") for name, s in samples.items()}

    native_decode = g.add("VAEDecode", samples=samples["native_i2v"][0], vae=native_vae[0])
    pack_decode = g.add("WanVAEDecode", samples=samples["native_i2v"][0], vae=pack_vae[0], tile_size=0)
    for name, frames in (("native_decode", native_decode), ("pack_decode", pack_decode)):
        saves[f"{name}_video"] = video_out(g, frames[0], f"interchange/{name}")
        saves[f"{name}_png"] = g.add("SaveImage", images=frames[0], filename_prefix=f"interchange/{name}")
    return run_graph(comfy, g, saves)


@pytest.fixture(scope="module")
def native_sampler_run(comfy, start_image):
    g = Graph()
    image = g.add("LoadImage", image=start_image)
    positive, negative = pack_text(g)
    features = pack_image_features(g, image[0])
    tiny_vae = g.add("WanVAELoader", vae_name=mf.TINY_VAE, dtype="fp32", device="cpu")
    fusion = pack_fusion(g, positive[0], negative[0], tiny_vae[0], image[0], features[0])

    unet = g.add("UNETLoader", unet_name=mf.DIT_I2V, weight_dtype="default")
    model = g.add("ModelSamplingSD3", model=unet[0], shift=3.0)
    latent = g.add("KSampler", model=model[0], seed=7, steps=2, cfg=5.0, sampler_name="euler", scheduler="simple",
                   positive=fusion[0], negative=fusion[1], latent_image=fusion[2], denoise=1.0)
    native_vae = g.add("VAELoader", vae_name=mf.VAE)
    frames = g.add("VAEDecode", samples=latent[0], vae=native_vae[0])

    upscale_model = g.add("UpscaleModelLoader", model_name=mf.UPSCALE_STAGE)
    pack_upscaler = g.add("WanUpscalerLoader", model_name=mf.UPSCALE_STAGE)
    upscale = dict(mode="x2", target_height=1080, tile=512, overlap=32, batch=4)
    upscaled = {
        "pack_with_native_model": g.add("WanCascadedUpscaler", images=frames[0], upscaler=upscale_model[0], **upscale),
        "pack_with_pack_loader": g.add("WanCascadedUpscaler", images=frames[0], upscaler=pack_upscaler[0], **upscale),
        "native": g.add("ImageUpscaleWithModel", upscale_model=upscale_model[0], image=frames[0]),
        "pack_mirror": g.add("WanCascadedUpscaler", images=frames[0], upscaler=upscale_model[0],
                             **upscale | {"self_ensemble": "mirror (2x time)"}),
    }
    mirrored = g.add("ImageFlip", image=frames[0], flip_method="y-axis: horizontally")
    native_of_mirrored = g.add("ImageUpscaleWithModel", upscale_model=upscale_model[0], image=mirrored[0])
    upscaled["native_mirrored_back"] = g.add("ImageFlip", image=native_of_mirrored[0],
                                             flip_method="y-axis: horizontally")
    saves = {"latent": g.add("SaveLatent", samples=latent[0], filename_prefix="interchange/ksampler"),
             "video": video_out(g, frames[0], "interchange/ksampler"),
             "upscaled_video": video_out(g, upscaled["pack_with_native_model"][0], "interchange/upscaled")}
    for name, node in upscaled.items():
        saves[name] = g.add("SaveImage", images=node[0], filename_prefix=f"interchange/up_{name}")
    return run_graph(comfy, g, saves)


# ------------------------------------------------------------------------------------- native -> pack

def test_native_wan_image_to_video_feeds_pack_sampler(native_fusion_run):
    (path,) = native_fusion_run["native_i2v"]
    latent = read_latent(path)
    assert tuple(latent.shape) == LATENT_SHAPE
    assert torch.isfinite(latent).all() and latent.abs().max() > 0


def test_pack_fusion_matches_native_wan_image_to_video(native_fusion_run):
    # Same VAE object, same CLIP vision output, same text, same sampler and seed: the two
    # conditionings differ only in layout (the pack's 4-channel mask vs native's 1-channel one).
    native = read_latent(native_fusion_run["native_i2v"][0])
    pack = read_latent(native_fusion_run["pack_fusion"][0])
    torch.testing.assert_close(pack, native, rtol=1e-5, atol=1e-5)


def test_pack_vae_encode_matches_native_vae(native_fusion_run):
    # This pack's WanVAE and ComfyUI's read the same full-size file; fp32 on the CPU.
    native = read_latent(native_fusion_run["native_i2v"][0])
    pack = read_latent(native_fusion_run["pack_vae"][0])
    torch.testing.assert_close(pack, native, rtol=1e-4, atol=1e-4)


def test_pack_sampler_output_through_native_vae_decode_to_video(native_fusion_run):
    (video,) = native_fusion_run["native_decode_video"]
    assert video_info(video) == (LENGTH, WIDTH, HEIGHT)


def test_pack_vae_decode_to_native_save_video(native_fusion_run):
    (video,) = native_fusion_run["pack_decode_video"]
    assert video_info(video) == (LENGTH, WIDTH, HEIGHT)


def test_pack_vae_decode_matches_native_vae_decode(native_fusion_run):
    native = read_pngs(native_fusion_run["native_decode_png"]).astype(np.int16)
    pack = read_pngs(native_fusion_run["pack_decode_png"]).astype(np.int16)
    assert native.shape == pack.shape == (LENGTH, HEIGHT, WIDTH, 3)
    assert np.abs(native - pack).max() <= 1          # SaveImage truncates to 8 bits


# ------------------------------------------------------------------------------------- pack -> native

def test_pack_fusion_feeds_native_ksampler(native_sampler_run):
    latent = read_latent(native_sampler_run["latent"][0])
    assert tuple(latent.shape) == LATENT_SHAPE and torch.isfinite(latent).all()
    (video,) = native_sampler_run["video"]
    assert video_info(video) == (LENGTH, WIDTH, HEIGHT)


def test_native_vae_decode_feeds_pack_upscaler(native_sampler_run):
    (video,) = native_sampler_run["upscaled_video"]
    assert video_info(video) == (LENGTH, 2 * WIDTH, 2 * HEIGHT)


def test_pack_upscaler_matches_native_upscale_with_model(native_sampler_run):
    # One x2 Compact stage, no enhancer, a single tile: the pack's upscaler with ComfyUI's
    # UPSCALE_MODEL, with its own loader, and ComfyUI's ImageUpscaleWithModel give the same frames.
    native = read_pngs(native_sampler_run["native"]).astype(np.int16)
    assert native.shape == (LENGTH, 2 * HEIGHT, 2 * WIDTH, 3)
    for name in ("pack_with_native_model", "pack_with_pack_loader"):
        pack = read_pngs(native_sampler_run[name]).astype(np.int16)
        assert pack.shape == native.shape, name
        assert np.abs(pack - native).max() <= 1, name


def test_pack_upscaler_self_ensemble_matches_native_nodes(native_sampler_run):
    # self_ensemble "mirror": the mean of the stage on the frames and, turned back, on their mirror
    # image, built here from ComfyUI's ImageFlip and ImageUpscaleWithModel (8-bit PNGs: within 1 level).
    native = read_pngs(native_sampler_run["native"]).astype(np.float64)
    back = read_pngs(native_sampler_run["native_mirrored_back"]).astype(np.float64)
    pack = read_pngs(native_sampler_run["pack_mirror"]).astype(np.float64)
    assert pack.shape == native.shape == back.shape
    assert np.abs(pack - (native + back) / 2).max() <= 1
    assert np.abs(native - back).max() > 2  # the random stage is not mirror-symmetric: a real check


@pytest.mark.skip(reason="ComfyUI's CLIPLoader(type='wan') accepts only the full umT5-XXL (5.7 B parameters, "
                         "6.7-11 GB with its spiece_model); a smaller umT5 is detected as T5-base and fails with "
                         "a size mismatch, so native CLIPTextEncode -> Wan Fusion Conditioning cannot run here")
def test_native_clip_text_encode_feeds_pack_fusion():
    """Would run CLIPLoader(umt5_xxl, wan) -> CLIPTextEncode -> WanFusionConditioning -> WanSampler."""

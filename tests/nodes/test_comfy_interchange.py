"""The interchange of the nodes with ComfyUI-native objects built by hand as ComfyUI 0.3.64 makes them
(CONDITIONING, WanImageToVideo's keys, comfy.sd.VAE, comfy.clip_vision.Output, spandrel's
ImageModelDescriptor), on tiny random models. Source paths in comments are relative to ComfyUI's tree.
"""
from __future__ import annotations

import pytest
import torch

from node_helpers import HEIGHT, LATENT, LENGTH, WIDTH, fuse, run, sample
from wan21_core.upscale import CompactConfig, CompactSR
from wan21_core.upscale.stages import stage_from_compact


# ------------------------------------------------------------------------------------- ComfyUI-style objects

class NativeClipVisionOutput:
    """comfy.clip_vision.Output (clip_vision.py:14-18): attributes, also readable as items."""

    def __init__(self, penultimate_hidden_states: torch.Tensor):
        self.penultimate_hidden_states = penultimate_hidden_states
        self.last_hidden_state = penultimate_hidden_states
        self.image_embeds = torch.zeros(penultimate_hidden_states.shape[0], 1024)
        self.mm_projected = None

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, value):
        setattr(self, key, value)


def model_class(module: str, name: str) -> type:
    """A torch module class that claims to live in `module` (how the nodes recognise ComfyUI's VAEs)."""
    return type(name, (torch.nn.Module,), {"__module__": module})


class ComfyStyleVAE:
    """What comfy.sd.VAE looks like to a node for the Wan 2.1 VAE (comfy/sd.py:476-500, 676-786), around our WanVAE.

    encode: IMAGE [F, H, W, 3] in 0..1 -> raw latent mu [1, 16, 1+(F-1)//4, H/8, W/8] (fp32, CPU);
    decode: raw latent [B, 16, T, h, w] -> [B, 4(T-1)+1, 8h, 8w, 3] in 0..1 (fp32, CPU).
    """

    def __init__(self, wan_vae, module: str = "comfy.ldm.wan.vae", name: str = "WanVAE", latent_channels: int = 16):
        self.first_stage_model = model_class(module, name)()
        self.first_stage_model.inner = wan_vae
        self.latent_channels = latent_channels

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        height, width = pixels.shape[1] // 8 * 8, pixels.shape[2] // 8 * 8      # vae_encode_crop_pixels
        top, left = (pixels.shape[1] % 8) // 2, (pixels.shape[2] % 8) // 2
        pixels = pixels[:, top:top + height, left:left + width, :3]
        video = pixels.movedim(-1, 1).movedim(1, 0).unsqueeze(0)                # [F,H,W,3] -> [1, 3, F, H, W]
        return self.first_stage_model.inner.encode(video * 2 - 1).float().cpu()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        video = self.first_stage_model.inner.decode(latent)                     # [B, 3, F, H, W] in [-1, 1]
        return ((video + 1) / 2).clamp(0, 1).movedim(1, -1).float().cpu()       # [B, F, H, W, 3]


def native_wan_image_to_video(vae: ComfyStyleVAE, positive: list, negative: list, image: torch.Tensor,
                              clip_vision_output) -> tuple[list, list, dict]:
    """WanImageToVideo (nodes_wan.py:15-60) for a start image already at the output size."""
    clip = torch.ones(LENGTH, HEIGHT, WIDTH, 3) * 0.5
    clip[: image.shape[0]] = image
    latent = vae.encode(clip)
    mask = torch.ones(1, 1, *latent.shape[2:])
    mask[:, :, : (image.shape[0] - 1) // 4 + 1] = 0.0                          # 1 = generate, 0 = keep
    extras = {"concat_latent_image": latent, "concat_mask": mask, "clip_vision_output": clip_vision_output}
    positive = [[text, {**options, **extras}] for text, options in positive]
    negative = [[text, {**options, **extras}] for text, options in negative]
    return positive, negative, {"samples": torch.zeros(LATENT)}


# ------------------------------------------------------------------------------------- interchange

def test_native_text_conditioning_into_our_fusion(pack, loaded, encoded, reference, start_image):
    """CLIPTextEncode's layout (comfy/sd1_clip.py:180-199, 266-272): [1, max(512, n+1), 4096] fp32, zero
    after EOS, pooled_output None."""
    ours = encoded["positive"][0][0][0]
    tokens = int(ours.abs().sum(-1).nonzero().max()) + 1
    native = torch.zeros(1, 512, 4096)
    native[0, :tokens] = ours[:tokens]
    native_negative = torch.zeros(1, 512, 4096)
    native_negative[0, :1] = encoded["negative"][0][0][0, :1]
    positive = [[native, {"pooled_output": None}]]
    negative = [[native_negative, {"pooled_output": None}]]
    text_native = {"positive": positive, "negative": negative, "clip_vision_output": encoded["clip_vision_output"]}
    pos, neg, latent = fuse(pack, text_native, loaded["vae"], start_image)
    assert pos[0][0] is native and pos[0][1]["pooled_output"] is None and neg[0][0] is native_negative
    assert torch.equal(sample(pack, loaded["dit"], pos, neg, latent), reference)
    # A prompt of more than 511 tokens gives more than 512 rows natively: Wan reads the first 512.
    longer = [[torch.cat([native, torch.zeros(1, 88, 4096)], dim=1), pos[0][1]]]
    with pytest.warns(UserWarning, match="600 tokens"):
        assert torch.equal(sample(pack, loaded["dit"], longer, neg, latent), reference)


def test_native_wan_image_to_video_conditioning_into_our_sampler(pack, loaded, encoded, reference, start_image):
    """WanImageToVideo's keys (comfy_extras/nodes_wan.py:41-56) with a zero LATENT give our fusion's result."""
    vae = ComfyStyleVAE(loaded["vae"].model)
    clip_output = NativeClipVisionOutput(encoded["clip_vision_output"].penultimate_hidden_states)
    positive, negative, latent = native_wan_image_to_video(vae, encoded["positive"], encoded["negative"],
                                                           start_image, clip_output)
    native = sample(pack, loaded["dit"], positive, negative, latent)
    torch.testing.assert_close(native, reference, rtol=1e-6, atol=1e-6)


def test_fusion_output_is_what_the_native_model_reads(pack, loaded, encoded, fused, start_image):
    """Keys, shapes and meaning that WAN21.concat_cond / extra_conds read (comfy/model_base.py:1103-1168)."""
    positive, negative, latent = fused
    (text, extras), (text_negative, extras_negative) = positive[0], negative[0]
    assert text is encoded["positive"][0][0] and text_negative is encoded["negative"][0][0]
    assert set(extras) == {"pooled_output", "concat_latent_image", "concat_mask", "clip_vision_output"}
    for key in ("concat_latent_image", "concat_mask", "clip_vision_output"):
        assert extras_negative[key] is extras[key]
    assert extras["clip_vision_output"].penultimate_hidden_states.shape == (1, 257, 1280)
    # concat_latent_image: the RAW VAE latent of [start frame, grey frames...]
    clip = torch.zeros(1, 3, LENGTH, HEIGHT, WIDTH)
    clip[:, :, 0] = start_image[0].permute(2, 0, 1) * 2 - 1
    raw = loaded["vae"].model.encode(clip)
    torch.testing.assert_close(extras["concat_latent_image"], raw, rtol=0, atol=1e-6)
    # concat_mask: [1, 1 or 4, T, h, w], 1 = generate; the first latent frame is kept
    mask = extras["concat_mask"]
    assert mask.shape[0] == 1 and mask.shape[1] in (1, 4) and mask.shape[2:] == LATENT[2:]
    assert (mask[:, :, 0] == 0).all() and (mask[:, :, 1:] == 1).all()
    # the 20 conditioning channels native builds: 1 - mask (4 channels) + process_latent_in(latent)
    inside = 1.0 - (mask if mask.shape[1] == 4 else mask.mean(1, keepdim=True).repeat(1, 4, 1, 1, 1))
    assert inside[:, :, 0].eq(1).all() and inside[:, :, 1:].eq(0).all()
    # the LATENT: zeros of the clip's shape, batch_size clips
    assert latent["samples"].shape == LATENT and not latent["samples"].any()


def test_comfy_vae_object_works_in_fusion_and_decode(pack, loaded, encoded, fused, start_image):
    vae = ComfyStyleVAE(loaded["vae"].model)
    positive, _, _ = fuse(pack, encoded, vae, start_image)
    torch.testing.assert_close(positive[0][1]["concat_latent_image"], fused[0][0][1]["concat_latent_image"],
                               rtol=0, atol=1e-6)
    latent = torch.randn(2, *LATENT[1:], generator=torch.Generator().manual_seed(5))
    (ours,) = run(pack, "WanVAEDecode", samples={"samples": latent}, vae=loaded["vae"], tile_size=0)
    assert ours.shape == (2 * LENGTH, HEIGHT, WIDTH, 3)              # the clips of a batch one after another
    (native,) = run(pack, "WanVAEDecode", samples={"samples": latent[1:]}, vae=vae, tile_size=0)
    torch.testing.assert_close(native, ours[LENGTH:], rtol=0, atol=1e-6)


@pytest.mark.parametrize("module, name, channels", [
    ("comfy.ldm.models.autoencoder", "AutoencoderKL", 4),            # an SD VAE
    ("comfy.ldm.hunyuan_video.vae", "AutoencoderKL", 16),            # 16 channels, 4x8x8, but not Wan's
])
def test_non_wan_comfy_vae_is_refused(pack, loaded, encoded, start_image, module, name, channels):
    vae = ComfyStyleVAE(loaded["vae"].model, module, name, channels)
    with pytest.raises(ValueError, match=r"vae: expected the Wan 2\.1 VAE.*" + module.replace(".", r"\.")):
        fuse(pack, encoded, vae, start_image)
    with pytest.raises(ValueError, match=r"vae: expected the Wan 2\.1 VAE"):
        run(pack, "WanVAEDecode", samples={"samples": torch.zeros(LATENT)}, vae=vae, tile_size=0)


def test_decode_refuses_an_object_that_is_no_vae(pack, loaded):
    with pytest.raises(ValueError, match=r"vae: expected a Wan VAE .*found WanModel"):
        run(pack, "WanVAEDecode", samples={"samples": torch.zeros(LATENT)}, vae=loaded["dit"].model, tile_size=0)


def tiny_descriptor():
    """A spandrel ImageModelDescriptor (ComfyUI's UPSCALE_MODEL) of a tiny Compact x2 network."""
    from spandrel import ImageModelDescriptor, ModelLoader

    torch.manual_seed(1)
    stage = stage_from_compact(CompactSR(CompactConfig(scale=2, num_feat=8, num_conv=2)))
    descriptor = ModelLoader().load_from_state_dict(stage.state_dict()).eval()
    assert isinstance(descriptor, ImageModelDescriptor) and descriptor.scale == 2
    return descriptor


def test_spandrel_upscale_model_in_our_upscaler(pack):
    descriptor = tiny_descriptor()
    frames = torch.rand(3, 24, 40, 3, generator=torch.Generator().manual_seed(2))
    upscale = dict(images=frames, upscaler=descriptor, target_height=1080, tile=512, overlap=32, batch=2)
    (out,) = run(pack, "WanCascadedUpscaler", mode="x2", **upscale)
    expected = torch.cat([descriptor(f[None].permute(0, 3, 1, 2)) for f in frames]).permute(0, 2, 3, 1)
    assert out.shape == (3, 48, 80, 3)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    (to_height,) = run(pack, "WanCascadedUpscaler", mode="to height", **(upscale | {"target_height": 60}))
    assert to_height.shape == (3, 60, 100, 3)
    (mirrored,) = run(pack, "WanCascadedUpscaler", mode="x2", self_ensemble="mirror (2x time)", **upscale)
    flipped = torch.cat([descriptor(f[None].permute(0, 3, 1, 2).flip(3)).flip(3) for f in frames])
    torch.testing.assert_close(mirrored, (expected + flipped.permute(0, 2, 3, 1)) / 2, rtol=0, atol=1e-6)
    assert next(descriptor.model.parameters()).device == torch.device("cpu")

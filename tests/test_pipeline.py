"""Wan2.1 image-to-video end to end (wan21_core.pipeline) against diffusers' WanImageToVideoPipeline.

Both pipelines run the same tiny random weights: diffusers gets the DiT and the VAE through its own
converters (`convert_wan_transformer_to_diffusers`, `convert_wan_vae_to_diffusers`), the same noise
(`latents`), the text features of our umT5 zero-padded to [1, 512, 4096] (`prompt_embeds`), and
UniPC in flow mode with the same shift; ours samples with `schedule="diffusers"` (the official
`wan/utils/fm_solvers_unipc.py` `FlowUniPCMultistepScheduler.set_timesteps` starts at σ ≈ 0.999, diffusers'
`src/diffusers/schedulers/scheduling_unipc_multistep.py` `UniPCMultistepScheduler.set_timesteps` at 1.0,
so the timesteps differ by about one; see tests/sampling/test_schedulers.py).

Known preprocessing differences (official `wan/image2video.py` `WanI2V.generate` and
`wan/modules/clip.py` `CLIPModel.visual` against diffusers `src/diffusers/pipelines/wan/pipeline_wan_i2v.py`
`WanImageToVideoPipeline.__call__` / `encode_image`), neutralised here:
- VAE conditioning frame: diffusers resizes with PIL Lanczos to the explicit height/width, the
  official code squashes with torch bicubic. The start image is given at the output size, so both
  resizes are the identity (PIL returns a copy at the same size; ours skips the interpolation).
- CLIP input: diffusers' CLIPImageProcessor scales the short side and centre-crops; the official
  code squashes to 224x224 with torch bicubic. diffusers 0.42.1 refuses `image` together with
  `image_embeds` (check_inputs), yet needs `image` for the VAE condition, so the image features
  cannot be passed in. Instead its image encoder is transformers' CLIPVisionModel on our CLIP weights
  (`hidden_states[-2]`) behind a stand-in image processor that applies the official squash
  preprocessing (official `wan/modules/clip.py`, `CLIPModel.visual`), written out below.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from i2v_models import rel_l2, tiny_dit, tiny_models
from wan21_core import tiny
from wan21_core.sampling.defaults import NEGATIVE_PROMPT_FLF2V, NEGATIVE_PROMPT_I2V
from wan21_core.pipeline import I2VPipeline
from wan21_core.sampling.sampler import SamplingOptions, make_noise, sample

E2E_TOL = 1e-4           # relative L2 of the decoded video (issue requirement)
FRAMES, HEIGHT, WIDTH = 9, 64, 96
STEPS, SHIFT, GUIDANCE = 4, 3.0, 5.0
PROMPT, NEGATIVE = "a cat walks on the beach at sunset", "blurry, static"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class OfficialClipProcessor:
    """Stand-in for CLIPImageProcessor: official Wan2.1 CLIP preprocessing of one PIL image."""

    def __call__(self, images, return_tensors="pt"):
        from transformers.feature_extraction_utils import BatchFeature

        pixels = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        signed = F.interpolate(pixels * 2 - 1, size=(224, 224), mode="bicubic", align_corners=False)
        unit = (signed + 1) / 2
        mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        return BatchFeature({"pixel_values": (unit - mean) / std})


def diffusers_pipeline(shift: float):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from diffusers.loaders.single_file_utils import (convert_wan_transformer_to_diffusers,
                                                     convert_wan_vae_to_diffusers)
    from transformers import CLIPVisionModel

    models = tiny_models()
    c = models.dit.config
    transformer = WanTransformer3DModel(patch_size=c.patch_size, num_attention_heads=c.num_heads,
                                        attention_head_dim=c.head_dim, in_channels=c.in_dim, out_channels=c.out_dim,
                                        text_dim=c.text_dim, freq_dim=c.freq_dim, ffn_dim=c.ffn_dim,
                                        num_layers=c.num_layers, eps=c.eps, image_dim=c.img_dim,
                                        added_kv_proj_dim=c.dim)
    official = {k: v.clone() for k, v in models.dit.state_dict().items()}
    transformer.load_state_dict(convert_wan_transformer_to_diffusers(official), strict=True)
    vae = AutoencoderKLWan(base_dim=models.vae.config.base_dim, z_dim=16, num_res_blocks=2)
    vae.load_state_dict(convert_wan_vae_to_diffusers(dict(models.vae.state_dict())), strict=True)
    clip = CLIPVisionModel(tiny.tiny_clip_config())
    prefix = "vision_model." if any(k.startswith("vision_model.") for k in clip.state_dict()) else ""
    clip.load_state_dict({prefix + k: v for k, v in tiny.tiny_clip_state_dict().items()}, strict=True)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift,
                                        num_train_timesteps=1000)
    pipe = WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae.eval(), scheduler=scheduler,
                                   image_processor=OfficialClipProcessor(), image_encoder=clip.eval(),
                                   transformer=transformer.eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def start_image(height=HEIGHT, width=WIDTH, seed=5) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def pipe():
    m = tiny_models()
    return I2VPipeline(m.dit, m.vae, m.text_encoder, m.image_encoder)


def padded(context: torch.Tensor) -> torch.Tensor:
    return F.pad(context, (0, 0, 0, 512 - context.shape[0]))[None]


# ------------------------------------------------------------------------------------ parity

def test_end_to_end_matches_diffusers(pipe):
    image = start_image()
    noise = make_noise((1, 16, (FRAMES - 1) // 4 + 1, HEIGHT // 8, WIDTH // 8), seed=7)
    context, context_null = pipe.text_encoder.encode([PROMPT, NEGATIVE])
    with torch.no_grad():
        reference = diffusers_pipeline(SHIFT)(
            image=image, prompt_embeds=padded(context), negative_prompt_embeds=padded(context_null),
            height=HEIGHT, width=WIDTH, num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
            latents=noise.clone(), output_type="pt").frames[0]                      # [F, 3, H, W] in 0..1
    reference = reference.permute(0, 2, 3, 1)
    video = pipe(image, PROMPT, NEGATIVE, frames=FRAMES, steps=STEPS, guidance=GUIDANCE, shift=SHIFT,
                 width=WIDTH, height=HEIGHT, schedule="diffusers", noise=noise)
    assert video.shape == reference.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert ((reference > 0) & (reference < 1)).float().mean() > 0.5     # the clamps hide little of the video
    error = rel_l2(video, reference)
    print(f"end-to-end relative L2 vs diffusers: {error:.3e}")
    assert error <= E2E_TOL
    assert [s.name for s in pipe.stats] == ["text encoder", "image encoder", "vae encode", "sample", "vae decode"]


# ------------------------------------------------------------------------------------ determinism

def test_same_seed_gives_the_same_video_and_another_seed_does_not(pipe):
    image = start_image(32, 48, seed=1)
    run = lambda seed: pipe(image, PROMPT, frames=5, steps=2, width=48, height=32, seed=seed)  # noqa: E731
    first, again, other = run(3), run(3), run(4)
    assert first.shape == (5, 32, 48, 3)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


# ------------------------------------------------------------------------------------ bad input

def test_frame_count_must_be_4n_plus_1_or_is_snapped_with_a_warning(pipe):
    image = start_image(32, 48)
    with pytest.raises(ValueError, match=r"frames: expected 4n\+1 \(e.g. 5 or 9\), found 6"):
        pipe(image, PROMPT, frames=6, steps=1, width=48, height=32)
    rgba = Image.fromarray(np.concatenate([np.asarray(image), np.full((32, 48, 1), 128, np.uint8)], axis=2))
    with pytest.warns(UserWarning) as caught:
        video = pipe(rgba, PROMPT, frames=6, steps=1, width=48, height=32, snap_frames=True)
    messages = [str(w.message) for w in caught]
    assert any("frames=6 is not 4n+1; using 5" in m for m in messages)
    assert any("alpha channel; it is dropped" in m for m in messages)
    assert video.shape == (5, 32, 48, 3)


def test_an_image_smaller_than_one_latent_cell_is_refused(pipe):
    with pytest.raises(ValueError, match=r"image: expected at least 16x16 px \(one latent cell\), found 12x48"):
        pipe(start_image(12, 48), PROMPT, frames=5, steps=1)


def test_empty_prompt_grayscale_image_and_the_default_negative_prompt(pipe):
    gray = start_image(32, 48).convert("L")
    cond = pipe.condition(gray, "", None, frames=5, width=48, height=32)
    assert cond.context.shape == (1, 4096)                       # just the EOS token
    expected_null = pipe.text_encoder.encode([NEGATIVE_PROMPT_I2V])[0]   # alone: another batch, same features
    assert cond.context_null.shape == expected_null.shape and rel_l2(cond.context_null, expected_null) <= 1e-6
    assert cond.latent_shape == (16, 2, 4, 6) and cond.clip_fea.shape == (1, 257, 1280)
    empty_null = pipe.condition(gray, "", "", frames=5, width=48, height=32).context_null   # "" too, as official
    assert torch.equal(empty_null, cond.context_null)


def test_a_prompt_past_512_tokens_is_truncated_with_a_warning(pipe):
    with pytest.warns(UserWarning, match="more than the 512 the text encoder takes"):
        cond = pipe.condition(start_image(32, 48), "the cat walks slowly " * 200, NEGATIVE,
                              frames=5, width=48, height=32)
    assert cond.context.shape == (512, 4096)


def test_a_t2v_dit_is_refused(pipe):
    m = tiny_models()
    with pytest.raises(ValueError, match=r"dit: this is a text-to-video \(t2v\) DiT; image-to-video needs"):
        I2VPipeline(tiny_dit("t2v"), m.vae, m.text_encoder, m.image_encoder)
    cond = pipe.condition(start_image(32, 48), PROMPT, NEGATIVE, frames=5, width=48, height=32)
    with pytest.raises(ValueError, match=r"text-to-video \(t2v\) DiT, but the conditioning carries an image"):
        sample(tiny_dit("t2v"), cond, SamplingOptions(steps=1))


def test_end_image_needs_an_flf2v_dit(pipe):
    with pytest.raises(ValueError, match="end_image: first\\+last-frame conditioning needs an flf2v checkpoint"):
        pipe.condition(start_image(32, 48), PROMPT, NEGATIVE, frames=5, width=48, height=32,
                       end_image=start_image(32, 48, seed=2))


def test_first_last_frame_conditioning_with_an_flf2v_dit():
    m = tiny_models()
    flf = I2VPipeline(tiny_dit("flf2v"), m.vae, m.text_encoder, m.image_encoder)
    first, last = start_image(32, 48, seed=1), start_image(40, 40, seed=2)     # the last frame may differ in size
    cond = flf.condition(first, PROMPT, None, frames=5, width=48, height=32, end_image=last)
    assert cond.clip_fea.shape == (1, 514, 1280)
    last_features = m.image_encoder.encode(torch.from_numpy(np.array(last)).float()[None] / 255)
    assert torch.equal(cond.clip_fea[:, 257:], last_features.penultimate_hidden_states)
    assert cond.mask[0, :, -1, 0, 0].tolist() == [0, 0, 0, 1] and cond.mask[0, :, 0].eq(1).all()
    expected_null = m.text_encoder.encode([NEGATIVE_PROMPT_FLF2V])[0]
    assert cond.context_null.shape == expected_null.shape and rel_l2(cond.context_null, expected_null) <= 1e-6
    latent = sample(flf.dit, cond, SamplingOptions(steps=1))
    assert latent.shape == (1, 16, 2, 4, 6) and torch.isfinite(latent).all()

"""The nodes called directly, without ComfyUI, on tiny random models.

Covers the node declarations, the whole chain through each node's `run`, the model cache, the
interchange with ComfyUI-native objects built by hand as ComfyUI 0.3.64 makes them (CONDITIONING,
WanImageToVideo's keys, comfy.sd.VAE, comfy.clip_vision.Output, spandrel's ImageModelDescriptor),
bad inputs and cancelling the sampler. Source paths in comments are relative to ComfyUI's tree.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import shutil
import sys
import types
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import save_file

from wan21_core.tiny import tiny_dit_state_dict, write_tiny_model_set
from wan21_core.upscale import CompactConfig, CompactSR, save_stage
from wan21_core.upscale.cascade import VARIANTS, WEIGHTS_DIR
from wan21_core.upscale.stages import stage_from_compact

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEIGHT, WIDTH, LENGTH = 32, 48, 5                  # latent [1, 16, 2, 4, 6]: 12 DiT tokens
LATENT = (1, 16, 2, HEIGHT // 8, WIDTH // 8)
STEPS = 3
COMFY_MODULES = ("comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "server", "execution",
                 "nodes", "latent_preview")


# ------------------------------------------------------------------------------------- fixtures

@dataclass
class Pack:
    classes: dict
    display_names: dict
    adapter: types.ModuleType


@pytest.fixture(scope="module")
def pack(plugin) -> Pack:
    """The node classes and the adapter module they use (the package imported as ComfyUI does)."""
    adapter = importlib.import_module(f"{plugin.__name__}.nodes.comfy_adapter")
    return Pack(plugin.NODE_CLASS_MAPPINGS, plugin.NODE_DISPLAY_NAME_MAPPINGS, adapter)


def run(pack: Pack, node: str, **inputs):
    return pack.classes[node]().run(**inputs)


@pytest.fixture(scope="module")
def models(pack, tmp_path_factory):
    """Tiny fp32 model files in ComfyUI's folder layout, plus wrong files for the loaders' errors."""
    adapter = pack.adapter
    root = tmp_path_factory.mktemp("node_models")
    paths = write_tiny_model_set(root, dtype=torch.float32)
    dit_dir = root / "diffusion_models"
    t2v = {k: v.contiguous() for k, v in tiny_dit_state_dict("t2v").items()}
    save_file(t2v, dit_dir / "wan2.1_t2v_tiny.safetensors")
    shutil.copy(paths["vae"], dit_dir / "a_vae_file.safetensors")
    os.makedirs(root / "upscale_models")
    torch.manual_seed(0)
    save_stage(stage_from_compact(CompactSR(CompactConfig(scale=2, num_feat=8, num_conv=2))),
               root / "upscale_models" / "tiny_compact_x2.safetensors")
    adapter.set_models_dir(str(root))
    yield {kind: os.path.basename(path) for kind, path in paths.items()} | {"root": root}
    adapter.set_models_dir(os.environ.get("WAN21_MODELS_DIR"))


@pytest.fixture(scope="module")
def loaded(pack, models):
    (dit,) = run(pack, "WanDiTLoader", dit_name=models["dit"], weight_dtype="default", device="auto")
    (t5,) = run(pack, "WanT5Loader", t5_name=models["t5"], dtype="fp32", device="cpu")
    (image_encoder,) = run(pack, "WanImageEncoderLoader", clip_name=models["clip_vision"], dtype="default",
                           device="auto")
    # The VAE computes on the CPU, so the tests below can compare with it called directly, on any machine.
    (vae,) = run(pack, "WanVAELoader", vae_name=models["vae"], dtype="fp32", device="cpu")
    return {"dit": dit, "t5": t5, "image_encoder": image_encoder, "vae": vae}


@pytest.fixture(scope="module")
def start_image():
    return torch.rand(1, HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def encoded(pack, loaded, start_image):
    (positive,) = run(pack, "WanT5TextEncode", t5=loaded["t5"], text="a red cat walks on the beach at sunset")
    (negative,) = run(pack, "WanT5TextEncode", t5=loaded["t5"], text="")
    (features,) = run(pack, "WanImageEncode", image_encoder=loaded["image_encoder"], image=start_image, crop="none")
    return {"positive": positive, "negative": negative, "clip_vision_output": features}


def fuse(pack, encoded, vae, image, **overrides):
    inputs = dict(positive=encoded["positive"], negative=encoded["negative"], vae=vae, start_image=image,
                  width=WIDTH, height=HEIGHT, length=LENGTH, batch_size=1, size_mode="exact", crop="none",
                  vae_tile=0, clip_vision_output=encoded["clip_vision_output"])
    return run(pack, "WanFusionConditioning", **(inputs | overrides))


@pytest.fixture(scope="module")
def fused(pack, loaded, encoded, start_image):
    return fuse(pack, encoded, loaded["vae"], start_image)


@pytest.fixture(scope="module")
def reference(pack, loaded, fused):
    """The sampler's latent for our fusion's output, seed 7."""
    return sample(pack, loaded["dit"], *fused)


def sample(pack, dit, positive, negative, latent, seed=7, **overrides):
    inputs = dict(dit=dit, positive=positive, negative=negative, latent=latent, seed=seed, steps=STEPS,
                  guidance=5.0, shift=3.0, solver="unipc", schedule="official", denoise=1.0)
    (out,) = run(pack, "WanSampler", **(inputs | overrides))
    return out["samples"]


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


# ------------------------------------------------------------------------------------- declarations

def test_every_node_is_declared_for_the_frontend(pack):
    classes, display_names = pack.classes, pack.display_names
    assert len(classes) == 11 and set(display_names) == set(classes)
    for name, cls in classes.items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, (kind, *rest) in spec.get(section, {}).items():
                options = rest[0] if rest else {}
                assert options.get("tooltip", "").strip(), f"{name}.{input_name} has no tooltip"
        assert spec.get("hidden", {}).get("unique_id") == "UNIQUE_ID", name
        assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 20, name
        assert cls.CATEGORY == "Wan2.1", name
        assert display_names[name].startswith("Wan ") and len(display_names[name]) <= 28, display_names[name]
        assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES, name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), name
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES), name
        assert callable(getattr(cls, cls.FUNCTION)), name


class NoComfyUI(importlib.abc.MetaPathFinder):
    """Makes every ComfyUI module unimportable, as outside a ComfyUI install."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in COMFY_MODULES:
            raise ImportError(f"ComfyUI is not installed here ({name})")
        return None


def test_pack_imports_without_comfyui():
    """The node package imported the way ComfyUI imports a pack, with no ComfyUI module importable."""
    blocker, name = NoComfyUI(), "pack_without_comfyui"
    sys.meta_path.insert(0, blocker)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        adapter = sys.modules[f"{name}.nodes.comfy_adapter"]
        assert len(module.NODE_CLASS_MAPPINGS) == 11 and not adapter.IN_COMFY
    finally:
        sys.meta_path.remove(blocker)
        for loaded_name in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded_name]


# ------------------------------------------------------------------------------------- the chain

def test_whole_chain_runs_through_the_nodes(pack, loaded, encoded, fused, reference, tmp_path):
    text = encoded["positive"][0][0]
    assert text.shape == (1, 512, 4096) and text.dtype == torch.float32
    assert encoded["clip_vision_output"].penultimate_hidden_states.shape == (1, 257, 1280)
    positive, negative, latent = fused
    assert latent["samples"].shape == LATENT and not latent["samples"].any()
    samples = reference
    assert samples.shape == LATENT and samples.dtype == torch.float32 and torch.isfinite(samples).all()
    assert samples.abs().sum() > 0
    assert next(loaded["dit"].model.parameters()).device == pack.adapter.offload_device()    # "auto" goes back
    (frames,) = run(pack, "WanVAEDecode", samples={"samples": samples}, vae=loaded["vae"], tile_size=0)
    # IMAGE for CreateVideo: [F, H, W, 3] float32 in 0..1, F = 4(T-1)+1
    assert frames.shape == (LENGTH, HEIGHT, WIDTH, 3) and frames.dtype == torch.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert save_video_like_comfyui(frames, tmp_path / "clip.mp4", fps=16) == LENGTH


def save_video_like_comfyui(images: torch.Tensor, path, fps: int) -> int:
    """CreateVideo + SaveVideo's encoding (comfy_api/latest/_input_impl/video_types.py:256-295);
    returns the number of frames read back."""
    import av

    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = images.shape[2], images.shape[1], "yuv420p"
        for frame in images:
            rgb = (frame * 255).clamp(0, 255).byte().cpu().numpy()                  # [H, W, 3]
            output.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")))
        output.mux(stream.encode(None))
    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def test_same_seed_gives_the_same_latent(pack, loaded, fused, reference):
    assert torch.equal(sample(pack, loaded["dit"], *fused, seed=7), reference)
    assert not torch.allclose(sample(pack, loaded["dit"], *fused, seed=8), reference)


def test_loader_cache_keeps_the_model_until_file_or_options_change(pack, models):
    (first,) = run(pack, "WanVAELoader", vae_name=models["vae"], dtype="fp32", device="cpu")
    (same,) = run(pack, "WanVAELoader", vae_name=models["vae"], dtype="fp32", device="cpu")
    assert same.model is first.model
    (other_dtype,) = run(pack, "WanVAELoader", vae_name=models["vae"], dtype="bf16", device="cpu")
    assert other_dtype.model is not first.model and next(other_dtype.model.parameters()).dtype == torch.bfloat16
    path = models["root"] / "vae" / models["vae"]
    (again,) = run(pack, "WanVAELoader", vae_name=models["vae"], dtype="bf16", device="cpu")
    assert again.model is other_dtype.model
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))     # the file was replaced
    (reloaded,) = run(pack, "WanVAELoader", vae_name=models["vae"], dtype="bf16", device="cpu")
    assert reloaded.model is not other_dtype.model


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


def test_upscaler_loader_reads_a_model_file(pack, models):
    (upscaler,) = run(pack, "WanUpscalerLoader", model_name="tiny_compact_x2.safetensors")
    (again,) = run(pack, "WanUpscalerLoader", model_name="tiny_compact_x2.safetensors")
    assert again is upscaler
    (out,) = run(pack, "WanCascadedUpscaler", images=torch.rand(2, 16, 16, 3), upscaler=upscaler, mode="x4",
                 target_height=1080, tile=512, overlap=32, batch=4)
    assert out.shape == (2, 64, 64, 3) and 0 <= out.min() and out.max() <= 1


@pytest.mark.skipif(not os.path.isfile(os.path.join(WEIGHTS_DIR, VARIANTS["psnr"])),
                    reason="the built-in upscaler weights are not trained yet (wan21_core/weights/)")
def test_builtin_upscaler(pack):
    (upscaler,) = run(pack, "WanUpscalerLoader", model_name="built-in: wan21 x2 cascade (PSNR)")
    frames = torch.rand(2, 24, 32, 3, generator=torch.Generator().manual_seed(4))
    (out,) = run(pack, "WanCascadedUpscaler", images=frames, upscaler=upscaler, mode="x2", target_height=1080,
                 tile=512, overlap=32, batch=2)
    assert out.shape == (2, 48, 64, 3) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------- bad inputs

def test_dit_loader_refuses_a_t2v_model(pack, models):
    with pytest.raises(ValueError, match=r"t2v.*expected a i2v|t2v.*i2v"):
        run(pack, "WanDiTLoader", dit_name="wan2.1_t2v_tiny.safetensors", weight_dtype="default", device="auto")


def test_dit_loader_refuses_a_vae_file(pack, models):
    with pytest.raises(ValueError, match=r"expected a Wan2\.1 DiT.*VAE"):
        run(pack, "WanDiTLoader", dit_name="a_vae_file.safetensors", weight_dtype="default", device="auto")


@pytest.mark.parametrize("overrides, message", [
    ({"length": 6}, r"4n\+1.*found 6"),
    ({"width": 40}, r"multiples of 16.*32x40"),
])
def test_fusion_refuses_bad_sizes(pack, loaded, encoded, start_image, overrides, message):
    with pytest.raises(ValueError, match=message):
        fuse(pack, encoded, loaded["vae"], start_image, **overrides)


def test_sampler_refuses_denoise_below_one_on_an_empty_latent(pack, loaded, fused):
    positive, negative, latent = fused
    with pytest.raises(ValueError, match=r"latent: .*empty"):
        sample(pack, loaded["dit"], positive, negative, latent, denoise=0.6)


@pytest.mark.parametrize("node, name_input, options", [
    ("WanDiTLoader", "dit_name", {"weight_dtype": "default", "device": "auto"}),
    ("WanT5Loader", "t5_name", {"dtype": "fp32", "device": "cpu"}),
    ("WanImageEncoderLoader", "clip_name", {"dtype": "default", "device": "auto"}),
    ("WanVAELoader", "vae_name", {"dtype": "fp32", "device": "auto"}),
    ("WanUpscalerLoader", "model_name", {}),
])
def test_loaders_refuse_names_outside_their_folder(pack, models, node, name_input, options):
    outside = str(models["root"] / "vae" / models["vae"])
    for name in ("../vae/" + models["vae"], "sub/../../vae/" + models["vae"], outside):
        with pytest.raises(ValueError, match="expected a name inside"):
            run(pack, node, **{name_input: name}, **options)


def test_symlinked_model_file_loads(pack, models, tmp_path):
    target = tmp_path / "elsewhere.safetensors"
    shutil.copy(models["root"] / "vae" / models["vae"], target)
    link = models["root"] / "vae" / "linked_vae.safetensors"
    link.symlink_to(target)
    try:
        (vae,) = run(pack, "WanVAELoader", vae_name="linked_vae.safetensors", dtype="fp32", device="cpu")
        assert vae.model is not None
    finally:
        link.unlink()


# ------------------------------------------------------------------------------------- cancel

class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


def test_cancel_stops_the_sampler_within_a_step_and_offloads_the_dit(pack, loaded, fused, monkeypatch):
    adapter = pack.adapter
    dit = loaded["dit"]
    checks, forwards, moves = [], [], []

    def check_interrupt():
        checks.append(len(forwards))
        if len(checks) == 2:                         # the user presses Cancel during step 2
            raise Interrupted()

    # A compute device other than the offload device: record the handle's moves instead of making them.
    compute = torch.device("cuda")
    monkeypatch.setattr(adapter, "check_interrupt", check_interrupt)
    monkeypatch.setattr(adapter, "torch_device", lambda: compute)
    monkeypatch.setattr(dit.model, "to", lambda device, *a, **k: moves.append(torch.device(device)) or dit.model)
    hook = dit.model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    try:
        with pytest.raises(Interrupted):
            sample(pack, dit, *fused, steps=10, cfg_mode="batched")
    finally:
        hook.remove()
    assert 2 <= len(forwards) <= 3, f"{len(forwards)} DiT forwards after Cancel at step 2 of 10"
    assert moves == [compute, adapter.offload_device()]

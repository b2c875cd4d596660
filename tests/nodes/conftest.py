"""Fixtures of the node tests: the pack imported as ComfyUI does, tiny random model files in ComfyUI's
folder layout, the models loaded through the loader nodes, and the encoded, fused and sampled results."""
from __future__ import annotations

import importlib
import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

from node_helpers import HEIGHT, WIDTH, Pack, fuse, run, sample
from wan21_core.tiny import tiny_dit_state_dict, write_tiny_model_set
from wan21_core.upscale import CompactConfig, CompactSR, save_stage
from wan21_core.upscale.stages import stage_from_compact


@pytest.fixture(scope="module")
def pack(plugin) -> Pack:
    """The node classes and the adapter module they use (the package imported as ComfyUI does)."""
    adapter = importlib.import_module(f"{plugin.__name__}.nodes.comfy_adapter")
    return Pack(plugin.NODE_CLASS_MAPPINGS, plugin.NODE_DISPLAY_NAME_MAPPINGS, adapter)


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


@pytest.fixture(scope="module")
def fused(pack, loaded, encoded, start_image):
    return fuse(pack, encoded, loaded["vae"], start_image)


@pytest.fixture(scope="module")
def reference(pack, loaded, fused):
    """The sampler's latent for our fusion's output, seed 7."""
    return sample(pack, loaded["dit"], *fused)

"""Checkpoint files for the integration tests, under the Comfy-Org names the workflows use.

Runs in the test process (this repository's venv), never in the server. Two kinds of file:

- tiny random models (`wan21_core.tiny`): the DiT (dim 256 = 2 heads of 128, which ComfyUI's own
  UNETLoader also reads), the umT5 with its `spiece_model` (only this pack's T5 loader can read a
  tiny umT5), a tiny ViT and a tiny VAE (this pack's loaders only), and a small x2 Compact stage
  that spandrel and ComfyUI's UpscaleModelLoader load;
- full-size random models for ComfyUI's own CLIPVisionLoader and VAELoader, which only accept the
  released sizes: a Wan2.1 VAE (`VAEConfig()`, 127 M parameters, 242 MiB fp16) and a ViT-H/14
  (`clip_vit_h14_config()`, 632 M parameters, 1.2 GiB fp16), written in the Comfy layout with this
  pack's key maps. This pack's loaders read the same files.

Everything is generated once into a cache folder (`build_model_cache`) and hard-linked (copied
across file systems) into each server's model folders (`link_model_set`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

CACHE_VERSION = 1
SEED = 0

# Comfy-Org names used by the workflows and the tests -> cache file.
DIT_I2V = "wan2.1_i2v_480p_14B_fp16.safetensors"
DIT_T2V = "wan2.1_t2v_1.3B_fp16.safetensors"
T5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
CLIP_VISION = "clip_vision_h.safetensors"
VAE = "wan_2.1_vae.safetensors"
TINY_CLIP_VISION = "clip_vision_tiny.safetensors"
TINY_VAE = "wan_2.1_vae_tiny.safetensors"
UPSCALE_STAGE = "wan21_test_compact_x2.safetensors"
LEGACY_DIT = "wan2.1_i2v_tiny_in_unet_folder.safetensors"
LEGACY_T5 = "umt5_tiny_in_clip_folder.safetensors"

MODEL_SET = {  # path under models/ -> file in the cache
    f"diffusion_models/{DIT_I2V}": "dit_i2v_tiny.safetensors",
    f"diffusion_models/{DIT_T2V}": "dit_t2v_tiny.safetensors",
    f"unet/{LEGACY_DIT}": "dit_i2v_tiny.safetensors",
    f"text_encoders/{T5}": "umt5_tiny.safetensors",
    f"clip/{LEGACY_T5}": "umt5_tiny.safetensors",
    f"clip_vision/{CLIP_VISION}": "vit_h14_full_random.safetensors",
    f"clip_vision/{TINY_CLIP_VISION}": "clip_vision_tiny.safetensors",
    f"vae/{VAE}": "wan21_vae_full_random.safetensors",
    f"vae/{TINY_VAE}": "wan21_vae_tiny.safetensors",
    f"upscale_models/{UPSCALE_STAGE}": "compact_x2_small.safetensors",
}


TINY_FILES = ("dit_i2v_tiny.safetensors", "dit_t2v_tiny.safetensors", "umt5_tiny.safetensors",
              "clip_vision_tiny.safetensors", "wan21_vae_tiny.safetensors")


# ------------------------------------------------------------------------------------- generation

def _save(tensors: dict, path: Path, dtype: torch.dtype = torch.float16) -> None:
    """Write float tensors as `dtype` (others as they are) through a temporary name, then rename."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".partial")
    save_file({k: v.to(dtype).contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _random_fp16(shapes: dict) -> dict:
    """Seeded random weights (`wan21_core.tiny.random_tensor`), converted to fp16 one by one."""
    from wan21_core.tiny import random_tensor

    return {key: random_tensor(key, tuple(shape), SEED).half() for key, shape in sorted(shapes.items())}


def full_size_vae_tensors() -> dict:
    """A random Wan2.1 VAE of the released size, official keys (= the Comfy `wan_2.1_vae` layout)."""
    from wan21_core.models.configs import VAEConfig
    from wan21_core.models.vae.model import WanVAE

    with torch.device("meta"):
        model = WanVAE(VAEConfig())
    return _random_fp16({k: v.shape for k, v in model.state_dict().items()})


def full_size_clip_vision_tensors() -> dict:
    """A random ViT-H/14 in the Comfy `clip_vision_h` layout (`vision_model.*` + `visual_projection`)."""
    from transformers import CLIPVisionModel

    from wan21_core.models.image_encoder import clip_vit_h14_config

    with torch.device("meta"):
        model = CLIPVisionModel(clip_vit_h14_config())
    shapes = {k.removeprefix("vision_model."): v.shape for k, v in model.state_dict().items()}
    tensors = {"vision_model." + k: v for k, v in _random_fp16(shapes).items()}
    tensors["visual_projection.weight"] = _random_fp16({"visual_projection.weight": (1024, 1280)})[
        "visual_projection.weight"]
    return tensors


def tiny_tensors() -> dict[str, dict]:
    """{cache file: tensors} of the tiny models (official DiT/VAE keys, Comfy T5/CLIP layouts)."""
    from wan21_core import tiny

    t5 = tiny.tiny_t5_state_dict(SEED)
    t5["spiece_model"] = tiny.spiece_tensor(tiny.tiny_spiece_model(SEED))
    return {
        "dit_i2v_tiny.safetensors": tiny.tiny_dit_state_dict("i2v", SEED),
        "dit_t2v_tiny.safetensors": tiny.tiny_dit_state_dict("t2v", SEED),
        "umt5_tiny.safetensors": t5,
        "clip_vision_tiny.safetensors": tiny.comfy_clip_tensors(tiny.tiny_clip_state_dict(SEED), SEED),
        "wan21_vae_tiny.safetensors": tiny.tiny_vae_state_dict(SEED),
    }


def write_upscale_stage(path: Path) -> None:
    """A small random x2 `CompactSR` stage (spandrel "Compact" layout) written with `save_stage`."""
    from wan21_core.upscale import CompactConfig, CompactSR, save_stage
    from wan21_core.upscale.stages import stage_from_compact

    torch.manual_seed(SEED)
    tmp = path.with_suffix(".partial.safetensors")
    save_stage(stage_from_compact(CompactSR(CompactConfig(scale=2, num_feat=8, num_conv=2))), tmp)
    os.replace(tmp, path)


def build_model_cache(cache_dir: Path) -> Path:
    """Generate every missing cache file into `cache_dir/v<version>-seed<seed>/`; returns that folder."""
    folder = Path(cache_dir) / f"v{CACHE_VERSION}-seed{SEED}"
    folder.mkdir(parents=True, exist_ok=True)
    if not all((folder / name).is_file() for name in TINY_FILES):
        for name, tensors in tiny_tensors().items():
            if not (folder / name).is_file():
                _save(tensors, folder / name)
    if not (folder / "compact_x2_small.safetensors").is_file():
        write_upscale_stage(folder / "compact_x2_small.safetensors")
    for name, make in (("wan21_vae_full_random.safetensors", full_size_vae_tensors),
                       ("vit_h14_full_random.safetensors", full_size_clip_vision_tensors)):
        if not (folder / name).is_file():
            _save(make(), folder / name)          # one model in memory at a time
    return folder


# ------------------------------------------------------------------------------------- linking

def place_file(source: Path, target: Path) -> None:
    """Hard-link `source` to `target` (a copy across file systems): plain files in every server's
    model folders (symlinked files are tested on their own, in test_comfy_boot)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def link_model_set(cache_folder: Path, models_dir: Path) -> dict[str, Path]:
    """Place every file of MODEL_SET under `models_dir`; returns {path under models/: full path}."""
    placed = {}
    for relative, name in MODEL_SET.items():
        target = Path(models_dir) / relative
        place_file(Path(cache_folder) / name, target)
        placed[relative] = target
    return placed

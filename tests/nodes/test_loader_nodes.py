"""The loader nodes on tiny model files in ComfyUI's folder layout: the model cache, the upscaler loader,
refused model files and names outside a model folder, symlinked files, the built-in Wan2.1-tiny."""
from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch

from builtin_weights import needs_builtin
from node_helpers import run
from wan21_core import load_dit, load_image_encoder, load_text_encoder, load_vae
from wan21_core.embedded import BUILTIN_NAME, builtin_path
from wan21_core.upscale.cascade import VARIANTS, WEIGHTS_DIR

# node, its file input, other inputs, model kind, the same load done directly, the torch module inside the model
BUILTIN_LOADS = [
    ("WanDiTLoader", "dit_name", {"weight_dtype": "fp16", "device": "cpu"}, "dit",
     lambda path: load_dit(path, "cpu", torch.float16), lambda model: model),
    ("WanT5Loader", "t5_name", {"dtype": "bf16", "device": "cpu"}, "t5",
     lambda path: load_text_encoder(path, "cpu", torch.bfloat16), lambda model: model.model),
    ("WanImageEncoderLoader", "clip_name", {"dtype": "default", "device": "cpu"}, "clip_vision",
     lambda path: load_image_encoder(path, "cpu"), lambda model: model.model),
    ("WanVAELoader", "vae_name", {"dtype": "fp32", "device": "cpu"}, "vae",
     lambda path: load_vae(path, "cpu", torch.float32), lambda model: model),
]


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


def test_dit_loader_refuses_a_t2v_model(pack, models):
    with pytest.raises(ValueError, match=r"t2v.*expected a i2v|t2v.*i2v"):
        run(pack, "WanDiTLoader", dit_name="wan2.1_t2v_tiny.safetensors", weight_dtype="default", device="auto")


def test_dit_loader_refuses_a_vae_file(pack, models):
    with pytest.raises(ValueError, match=r"expected a Wan2\.1 DiT.*VAE"):
        run(pack, "WanDiTLoader", dit_name="a_vae_file.safetensors", weight_dtype="default", device="auto")


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


@needs_builtin
@pytest.mark.parametrize("node, name_input, options, kind, direct, module", BUILTIN_LOADS,
                         ids=[case[0] for case in BUILTIN_LOADS])
def test_loaders_offer_the_builtin_model_after_the_folder_files(pack, models, node, name_input, options, kind,
                                                                direct, module):
    choices, spec = pack.classes[node].INPUT_TYPES()["required"][name_input]
    assert choices[-1] == BUILTIN_NAME and choices.count(BUILTIN_NAME) == 1
    assert models[kind] in choices[:-1]                          # the model folder's files come first
    assert BUILTIN_NAME in spec["tooltip"]


def test_loaders_do_not_offer_the_builtin_model_without_its_files(pack, monkeypatch):
    for node, name_input, *_ in BUILTIN_LOADS:
        loaders = sys.modules[pack.classes[node].__module__]
        monkeypatch.setattr(loaders, "builtin_available", lambda: False)
        choices, _ = pack.classes[node].INPUT_TYPES()["required"][name_input]
        assert BUILTIN_NAME not in choices, node


@needs_builtin
@pytest.mark.parametrize("node, name_input, options, kind, direct, module", BUILTIN_LOADS,
                         ids=[case[0] for case in BUILTIN_LOADS])
def test_the_builtin_name_loads_the_shipped_file(pack, models, monkeypatch, node, name_input, options, kind, direct,
                                                 module):
    loaders = sys.modules[pack.classes[node].__module__]
    asked = []
    monkeypatch.setattr(loaders, "builtin_path", lambda k: asked.append(k) or builtin_path(k))
    (handle,) = run(pack, node, **{name_input: BUILTIN_NAME}, **options)
    assert asked == [kind] and handle.label == BUILTIN_NAME and handle.placement == "cpu"
    loaded, expected = module(handle.model).state_dict(), module(direct(builtin_path(kind))).state_dict()
    assert list(loaded) == list(expected)
    for key, tensor in expected.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key

"""The checkpoint layer: detection, key maps, fp8 helpers, laziness and the errors for bad input."""
import os
import shutil
import weakref

import pytest
import torch
from safetensors.torch import save_file

from factory import checkpoint_set  # noqa: F401  (session fixture)
from wan21_core import CheckpointError, load_dit, load_image_encoder, load_text_encoder, load_vae, tiny
from wan21_core.checkpoints import files as checkpoint_files
from wan21_core.checkpoints.checkpoint import inspect_checkpoint, open_checkpoint
from wan21_core.checkpoints.configs import dit_config_from_shapes
from wan21_core.checkpoints.fp8 import FP8Linear, dequantize, quantize
from wan21_core.checkpoints.keymaps import dit_diffusers_to_official, rename_keys, vae_diffusers_to_official


def _message(excinfo) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------------------------- key maps

@pytest.mark.parametrize("model_type", ["t2v", "i2v", "flf2v"])
def test_dit_key_map_agrees_with_the_diffusers_converter(checkpoint_set, model_type):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    official = list(checkpoint_set.reference[f"dit_{model_type}"])
    converted = convert_wan_transformer_to_diffusers({k: k for k in official})   # value = official key
    # The converter leaves the FLF2V position embedding unrenamed; diffusers' model calls it pos_embed.
    converted = {("condition_embedder.image_embedder.pos_embed" if k == "img_emb.emb_pos" else k): v
                 for k, v in converted.items()}
    back, unknown = rename_keys(converted, dit_diffusers_to_official)
    assert not unknown and {o: converted[d] for o, d in back.items()} == {k: k for k in official}


def test_vae_key_map_agrees_with_the_diffusers_converter(checkpoint_set):
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    official = list(checkpoint_set.reference["vae"])
    converted = convert_wan_vae_to_diffusers({k: k for k in official})
    assert {vae_diffusers_to_official(d): o for d, o in converted.items()} == {k: k for k in official}
    assert vae_diffusers_to_official("decoder.up_blocks.1.resnets.0.conv_shortcut.weight") == \
        "decoder.upsamples.4.shortcut.weight"
    assert dit_diffusers_to_official("blocks.3.attn2.norm_added_k.weight") == "blocks.3.cross_attn.norm_k_img.weight"
    assert dit_diffusers_to_official("not.a.key") is None


# ------------------------------------------------------------------------------------- detection

EXPECTED = {   # (kind, format name) -> (naming, container, stored dtype, fp8, scaled)
    ("dit", "official_index"): ("official", "sharded-safetensors", torch.float32, None, False),
    ("dit", "official_folder"): ("official", "sharded-safetensors", torch.float32, None, False),
    ("dit", "comfy_bf16_prefixed"): ("official", "safetensors", torch.bfloat16, None, False),
    ("dit", "comfy_fp8_e4m3fn"): ("official", "safetensors", torch.float8_e4m3fn, torch.float8_e4m3fn, False),
    ("dit", "comfy_fp8_scaled"): ("official", "safetensors", torch.float8_e4m3fn, torch.float8_e4m3fn, True),
    ("dit", "diffusers_pipeline"): ("diffusers", "safetensors", torch.float32, None, False),
    ("vae", "official"): ("official", "pth", torch.float32, None, False),
    ("vae", "diffusers"): ("diffusers", "safetensors", torch.float32, None, False),
    ("t5", "official"): ("official", "pth", torch.bfloat16, None, False),
    ("t5", "comfy_fp8_scaled"): ("hf", "safetensors", torch.float8_e4m3fn, torch.float8_e4m3fn, True),
    ("t5", "diffusers"): ("hf", "safetensors", torch.float32, None, False),
    ("clip_vision", "official"): ("official", "pth", torch.float16, None, False),
    ("clip_vision", "comfy_fp16"): ("hf", "safetensors", torch.float16, None, False),
}
_PATHS = {"dit": "dit", "vae": "vae", "t5": "t5", "clip_vision": "clip"}


@pytest.mark.parametrize("kind,name", sorted(EXPECTED))
def test_inspect_reports_kind_format_dtype_and_config_without_reading_tensors(checkpoint_set, monkeypatch,
                                                                              kind, name):
    def no_reads(self, key):
        if key != "spiece_model":
            raise AssertionError(f"inspect read tensor {key}")
    monkeypatch.setattr(checkpoint_files.TensorFiles, "read", no_reads)
    path = getattr(checkpoint_set, _PATHS[kind])[name]
    info = inspect_checkpoint(path, kind if name.endswith("pipeline") else None)
    assert info.kind == kind
    assert (info.naming, info.container, info.stored_dtype, info.fp8, info.scaled_fp8) == EXPECTED[kind, name]
    reference = checkpoint_set.reference["dit_i2v" if kind == "dit" else _PATHS[kind]]
    assert info.tensor_count == len(reference)   # canonical tensors, whatever the stored layout
    if kind == "dit":
        assert info.config == tiny.tiny_dit_config("i2v")
    if kind == "vae":
        assert info.config == tiny.tiny_vae_config()
    if kind == "t5":
        assert (info.config.d_model, info.config.num_layers, info.config.num_heads) == (4096, 2, 2)
        assert info.tokenizer is not None
    assert info.path.startswith(path) and info.describe().startswith(os.path.basename(os.path.normpath(info.path)))


def test_the_clip_text_tower_and_foreign_prefixes_are_ignored(checkpoint_set):
    info = inspect_checkpoint(checkpoint_set.clip["official"])
    assert info.kind == "clip_vision" and info.prefix == "visual."
    assert "log_scale" in info.ignored_keys and "textual.blocks.0.attn.q.weight" in info.ignored_keys
    assert inspect_checkpoint(checkpoint_set.clip["comfy_fp16"]).ignored_keys == ["visual_projection.weight"]
    assert inspect_checkpoint(checkpoint_set.dit["comfy_bf16_prefixed"]).prefix == "model.diffusion_model."


def test_dit_config_detection_rules():
    shapes = {k: torch.empty(v.shape, device="meta")
              for k, v in tiny.tiny_dit_state_dict("t2v").items()}
    assert dit_config_from_shapes(shapes, num_heads=1).num_heads == 1
    shapes["head.modulation"] = torch.empty(1, 2, 192, device="meta")
    with pytest.raises(CheckpointError, match="width 192 is not a multiple of the head size 128.*num_heads"):
        dit_config_from_shapes(shapes)


# ------------------------------------------------------------------------------------- wrong kind

@pytest.mark.parametrize("loader,kind,path_of,found", [
    (load_dit, "dit", lambda s: s.vae["comfy_fp16"], "looks like a Wan2.1 VAE .*load it with the VAE loader"),
    (load_dit, "dit", lambda s: s.t5["comfy_fp16"], "looks like a umT5-XXL text encoder .*load_text_encoder"),
    (load_vae, "vae", lambda s: s.clip["comfy_fp16"], "looks like a CLIP ViT-H/14 image encoder.*load_image_encoder"),
    (load_text_encoder, "t5", lambda s: s.clip["official"], "looks like a CLIP ViT-H/14"),
    (load_image_encoder, "clip_vision", lambda s: s.dit["official_index"], "looks like a Wan2.1 DiT .*load_dit"),
])
def test_a_file_given_to_the_wrong_loader_is_named(checkpoint_set, loader, kind, path_of, found):
    path = path_of(checkpoint_set)
    with pytest.raises(CheckpointError, match=found) as excinfo:
        loader(path)
    assert _message(excinfo).startswith(path)


def test_t2v_where_i2v_is_required(checkpoint_set):
    path = checkpoint_set.dit["t2v_fp16"]
    with pytest.raises(CheckpointError, match=r"t2v \(text-to-video\).*in_dim 16.*expected an i2v \(image-to-video\)"):
        load_dit(path, require="i2v")
    with pytest.raises(CheckpointError, match="flf2v"):
        load_dit(checkpoint_set.dit["official_index"], require="flf2v")


# ------------------------------------------------------------------------------------- bad files

def test_missing_file_and_unsupported_extension(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_dit(tmp_path / "nothing.safetensors")
    gguf = tmp_path / "wan.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match=r"unsupported file type '\.gguf'.*expected \.safetensors"):
        load_dit(gguf)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="folder without a recognised checkpoint.*found an empty folder"):
        load_vae(empty)


@pytest.mark.parametrize("source", ["comfy_fp16", "official_vae"])
def test_truncated_files(checkpoint_set, tmp_path, source):
    original = checkpoint_set.vae["official"] if source == "official_vae" else checkpoint_set.vae["comfy_fp16"]
    broken = tmp_path / os.path.basename(original)
    data = open(original, "rb").read()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as excinfo:
        load_vae(broken)
    assert str(broken) in _message(excinfo)


def test_garbage_pth_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "Wan2.1_VAE.pth"
    junk.write_bytes(b"this is not a pickle at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint.*truncated or corrupt"):
        load_vae(junk)


class _RunsCode:
    """Unpickling this would run `touch <marker>`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_needs_code_execution_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "models_t5_umt5-xxl-enc-bf16.pth"
    torch.save({"token_embedding.weight": torch.zeros(2, 2), "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refused to load.*(posix|os)\.system.*would run code"):
        load_text_encoder(path)
    assert not marker.exists()


def test_missing_shard(checkpoint_set, tmp_path):
    folder = tmp_path / "release"
    shutil.copytree(checkpoint_set.dit["official_folder"], folder)
    os.remove(folder / "diffusion_pytorch_model-00002-of-00002.safetensors")
    expected = r"1 of 2 shards are missing: diffusion_pytorch_model-00002-of-00002\.safetensors"
    for given in (folder / "diffusion_pytorch_model.safetensors.index.json",
                  folder / "diffusion_pytorch_model-00001-of-00002.safetensors", folder):
        with pytest.raises(CheckpointError, match=expected):
            load_dit(given)
    os.remove(folder / "diffusion_pytorch_model.safetensors.index.json")   # no index: shards found by name
    with pytest.raises(CheckpointError, match=expected):
        load_dit(folder / "diffusion_pytorch_model-00001-of-00002.safetensors")


def test_unknown_layout_lists_keys(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"foo.weight": torch.zeros(2), "bar.bias": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"unknown key layout.*head\.modulation.*Found 2 keys: bar\.bias, foo"):
        load_dit(path)


def test_unexpected_and_missing_keys_are_listed(checkpoint_set, tmp_path):
    state = dict(checkpoint_set.reference["dit_i2v"])
    del state["blocks.1.ffn.2.bias"]
    state["blocks.0.vace_adapter.weight"] = torch.zeros(2, 2)
    path = tmp_path / "odd.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \(e\.g\. blocks\.0\.vace_adapter\.weight\); "
                                              r"1 missing keys \(e\.g\. blocks\.1\.ffn\.2\.bias\)"):
        load_dit(path)


def test_wan22_vae_and_missing_tokenizer(checkpoint_set, tmp_path):
    vae = dict(checkpoint_set.reference["vae"])
    vae["decoder.upsamples.0.upsamples.0.residual.2.weight"] = torch.zeros(1)
    save_file(vae, tmp_path / "wan2.2_vae.safetensors")
    with pytest.raises(CheckpointError, match="Wan2.2 VAE"):
        load_vae(tmp_path / "wan2.2_vae.safetensors")
    lonely = tmp_path / "t5" / "models_t5_umt5-xxl-enc-bf16.pth"
    lonely.parent.mkdir()
    shutil.copy(checkpoint_set.t5["official"], lonely)
    with pytest.raises(CheckpointError, match="no umT5 tokenizer found.*spiece_model.*tokenizer="):
        load_text_encoder(lonely)


def test_a_pipeline_folder_needs_the_kind(checkpoint_set):
    with pytest.raises(CheckpointError, match="pipeline folder holds several models"):
        inspect_checkpoint(checkpoint_set.dit["diffusers_pipeline"])
    assert open_checkpoint(checkpoint_set.dit["diffusers_pipeline"], "vae").kind == "vae"


# ------------------------------------------------------------------------------------- laziness

def test_loading_reads_each_tensor_once_and_holds_one_source_tensor_at_a_time(checkpoint_set, monkeypatch):
    """fp16 file -> float32 model: a second full copy would keep the fp16 source tensors alive.
    Every tensor handed out by the reader is tracked until it is garbage; at most one may live."""
    live, peak, reads = set(), [0], []
    original = checkpoint_files.TensorFiles.read

    def tracked(self, key):
        tensor = original(self, key)
        reads.append(key)
        token = object()
        live.add(id(token))
        peak[0] = max(peak[0], len(live))
        weakref.finalize(tensor, live.discard, id(token))
        return tensor

    monkeypatch.setattr(checkpoint_files.TensorFiles, "read", tracked)
    model = load_dit(checkpoint_set.dit["comfy_fp16"], dtype=torch.float32)
    assert sorted(reads) == sorted(checkpoint_set.reference["dit_i2v"])
    assert peak[0] == 1 and not live
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_safetensors_and_pth_are_opened_without_reading_the_data(checkpoint_set, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    checkpoint = open_checkpoint(checkpoint_set.vae["official"])
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]
    assert checkpoint.read("conv2.weight").shape == checkpoint.meta("conv2.weight").shape


def test_a_legacy_non_zip_pth_is_read_without_mmap_and_still_weights_only(checkpoint_set, tmp_path, monkeypatch):
    path = tmp_path / "Wan2.1_VAE.pth"
    torch.save(checkpoint_set.reference["vae"], path, _use_new_zipfile_serialization=False)
    calls, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    vae = load_vae(path)
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": False}]
    assert torch.equal(vae.decoder.conv1.weight, checkpoint_set.reference["vae"]["decoder.conv1.weight"])


# ------------------------------------------------------------------------------------- fp8 helpers

def test_other_scale_spellings_and_non_fp8_quantisation(checkpoint_set, tmp_path):
    from safetensors.torch import load_file

    raw = load_file(checkpoint_set.dit["comfy_fp8_scaled"])
    respelled = {k.replace(".scale_weight", ".weight_scale").replace(".scale_input", ".input_scale"): v
                 for k, v in raw.items()}
    save_file(respelled, tmp_path / "respelled.safetensors")
    expected = load_dit(checkpoint_set.dit["comfy_fp8_scaled"], dtype=torch.float32).state_dict()
    found = load_dit(tmp_path / "respelled.safetensors", dtype=torch.float32).state_dict()
    assert all(torch.equal(found[k], v) for k, v in expected.items())
    raw["blocks.0.ffn.0.weight"] = torch.zeros_like(raw["blocks.0.ffn.0.weight"], dtype=torch.int8)
    save_file(raw, tmp_path / "int8.safetensors")
    with pytest.raises(CheckpointError, match=r"blocks\.0\.ffn\.0\.weight is stored as torch\.int8 with a scale"):
        load_dit(tmp_path / "int8.safetensors")


def test_quantize_dequantize_bound_and_fp8_linear():
    g = torch.Generator().manual_seed(5)
    weight = torch.randn(24, 40, generator=g)
    q, scale = quantize(weight)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == ()
    bound = torch.maximum(weight.abs() * 2.0 ** -4, scale * 2.0 ** -10)
    assert torch.all((dequantize(q, scale, torch.float32) - weight).abs() <= bound)
    rows = torch.linspace(0.5, 2.0, 24)
    assert torch.equal(dequantize(q, rows, torch.float32), q.float() * rows[:, None])
    layer = FP8Linear(40, 24, bias=True, compute_dtype=torch.float32)
    layer.load_state_dict({"weight": q, "scale_weight": scale, "bias": torch.ones(24)})
    x = torch.randn(3, 40, generator=g)
    assert torch.equal(layer(x), torch.nn.functional.linear(x, q.float() * scale, torch.ones(24)))
    with pytest.raises(ValueError, match="storage dtype"):
        FP8Linear(4, 4, storage_dtype=torch.float16)

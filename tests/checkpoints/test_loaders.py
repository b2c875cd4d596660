"""Public loaders: every checkpoint format of the same tiny weights gives the same model.

The tiny weights are exact in fp16 and bf16 (wan21_core.tiny), so every 16-bit and 32-bit format
is lossless: loaded in float32, each must give bit-identical parameters and outputs. fp8 formats
are lossy; for them the loaded weights must equal an independent dequantisation of the file
(`weight.float() * scale_weight`) exactly, lie within fp8 rounding of the originals, and the model
must compute exactly what a model built from those dequantised weights computes.

fp8 rounding bound (float8_e4m3fn: 3 mantissa bits, normal range down to 2^-6, subnormal
spacing 2^-9): rounding to nearest moves a normal value v by at most half a unit in the last
place, ulp(v)/2 <= 2^-3·|v|/2 = 2^-4·|v|; a subnormal moves by at most 2^-9/2 = 2^-10. A weight
stored as q = round(w / s) and read back as q·s is therefore within max(2^-4·|w|, 2^-10·s) of w
(s = 1 for plain fp8 files).
"""
import os

import pytest
import torch
from safetensors.torch import load_file

from factory import checkpoint_set  # noqa: F401  (session fixture)
from wan21_core import load_dit, load_image_encoder, load_text_encoder, load_vae, tiny
from wan21_core.checkpoints import image_encoder_from_state_dict, text_encoder_from_state_dict, vae_from_state_dict
from wan21_core.checkpoints.fp8 import FP8Linear
from wan21_core.models import WanModel

PROMPTS = ["a cat walks on the beach at sunset", "Ｆｕｌｌ－ｗｉｄｔｈ ① 東京 café"]
LOSSLESS_DIT = ["official_index", "official_shard", "official_folder", "comfy_fp32", "comfy_fp16",
                "comfy_bf16_prefixed", "diffusers_pipeline", "diffusers_transformer"]
FP8_DIT = ["comfy_fp8_e4m3fn", "comfy_fp8_scaled"]


def _dit_inputs(model_type: str = "i2v") -> dict:
    g = torch.Generator().manual_seed(1)
    image_tokens = 514 if model_type == "flf2v" else 257
    return dict(x=torch.randn(1, 16, 2, 4, 4, generator=g), t=torch.tensor([637]),
                context=[torch.randn(7, 4096, generator=g)],
                clip_fea=torch.randn(1, image_tokens, 1280, generator=g),
                y=torch.randn(1, 20, 2, 4, 4, generator=g))


def _reference_dit(state: dict) -> WanModel:
    from wan21_core.checkpoints.configs import dit_config_from_shapes

    with torch.device("meta"):
        model = WanModel(dit_config_from_shapes(state))
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


@pytest.fixture(scope="module")
def dit_reference(checkpoint_set):
    state = checkpoint_set.reference["dit_i2v"]
    return state, _reference_dit(state)(**_dit_inputs())


def _assert_same_state(model: torch.nn.Module, reference: dict) -> None:
    state = model.state_dict()
    assert set(state) == set(reference)
    for key, tensor in reference.items():
        assert torch.equal(state[key], tensor), key


# ------------------------------------------------------------------------------------- DiT

@pytest.mark.parametrize("name", LOSSLESS_DIT)
def test_dit_every_lossless_format_is_the_same_model(checkpoint_set, dit_reference, name):
    state, expected = dit_reference
    model = load_dit(checkpoint_set.dit[name], device="cpu", dtype=torch.float32)
    assert model.config == tiny.tiny_dit_config("i2v")
    _assert_same_state(model, state)
    assert torch.equal(model(**_dit_inputs()), expected)


@pytest.mark.parametrize("name", ["flf2v_fp16", "diffusers_flf2v"])
def test_dit_flf2v_formats(checkpoint_set, name):
    model = load_dit(checkpoint_set.dit[name], dtype=torch.float32, require=("i2v", "flf2v"))
    assert model.config.model_type == "flf2v" and model.config.in_dim == 36
    _assert_same_state(model, checkpoint_set.reference["dit_flf2v"])


def test_dit_t2v_config(checkpoint_set):
    model = load_dit(checkpoint_set.dit["t2v_fp16"], dtype=torch.float32)
    config = model.config
    assert (config.model_type, config.in_dim, config.out_dim, config.dim, config.ffn_dim, config.num_heads,
            config.num_layers) == ("t2v", 16, 16, 256, 512, 2, 2)
    _assert_same_state(model, checkpoint_set.reference["dit_t2v"])


def _independent_dequantisation(path: str) -> dict:
    """Official-key float32 weights computed straight from the file: fp8 · scale_weight."""
    raw = load_file(path)
    out = {}
    for key, tensor in raw.items():
        if key == "scaled_fp8" or key.endswith((".scale_weight", ".scale_input")):
            continue
        scale = raw.get(key[: -len("weight")] + "scale_weight") if key.endswith(".weight") else None
        out[key] = tensor.float() * (scale.float() if scale is not None else 1.0)
    return out


@pytest.mark.parametrize("name", FP8_DIT)
def test_dit_fp8_files_dequantise_exactly(checkpoint_set, name):
    path = checkpoint_set.dit[name]
    model = load_dit(path, dtype=torch.float32)
    dequantised = _independent_dequantisation(path)
    _assert_same_state(model, dequantised)
    raw = load_file(path)
    for key, original in checkpoint_set.reference["dit_i2v"].items():
        scale_key = key[: -len("weight")] + "scale_weight"
        scale = raw[scale_key].float() if scale_key in raw else torch.tensor(1.0)
        bound = torch.maximum(original.abs() * 2.0 ** -4, scale * 2.0 ** -10)
        assert torch.all((dequantised[key] - original).abs() <= bound), key
    assert torch.equal(model(**_dit_inputs()), _reference_dit(dequantised)(**_dit_inputs()))


def test_dit_fp8_storage_matches_dequantise_then_load(checkpoint_set):
    path = checkpoint_set.dit["comfy_fp8_scaled"]
    dequantised = load_dit(path, dtype=torch.bfloat16)
    stored = load_dit(path, dtype=torch.float8_e4m3fn)
    fp8_layers = [m for m in stored.modules() if isinstance(m, FP8Linear)]
    plain = [n for n, m in stored.named_modules() if type(m) is torch.nn.Linear]
    # Every Linear is fp8 except those WanModel keeps in fp32 (time embedding/projection, head).
    assert fp8_layers and all(WanModel.keeps_fp32(f"{n}.weight") for n in plain)
    assert all(m.weight.dtype == torch.float8_e4m3fn and m.weight.element_size() == 1 for m in fp8_layers)
    assert stored.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    assert stored.compute_dtype == torch.bfloat16 == dequantised.compute_dtype
    expected, found = dequantised(**_dit_inputs()), stored(**_dit_inputs())
    # Same dequantised bf16 weights and the same ops: equal within bf16 rounding (2^-8 relative).
    assert (found - expected).norm() <= 2.0 ** -8 * expected.norm()


def test_dit_fp8_storage_from_a_16_bit_file_quantises_per_tensor(checkpoint_set):
    model = load_dit(checkpoint_set.dit["comfy_fp16"], dtype=torch.float8_e4m3fn)
    layer = model.blocks[1].cross_attn.k_img
    original = checkpoint_set.reference["dit_i2v"]["blocks.1.cross_attn.k_img.weight"]
    assert isinstance(layer, FP8Linear) and layer.weight.dtype == torch.float8_e4m3fn
    bound = torch.maximum(original.abs() * 2.0 ** -4, layer.scale_weight * 2.0 ** -10)
    assert torch.all((layer.weight.float() * layer.scale_weight - original).abs() <= bound)


def test_dit_dtype_defaults(checkpoint_set):
    bf16 = load_dit(checkpoint_set.dit["comfy_bf16_prefixed"])
    assert bf16.blocks[0].self_attn.q.weight.dtype == torch.bfloat16
    assert bf16.blocks[0].modulation.dtype == torch.float32 and bf16.head.head.weight.dtype == torch.float32
    assert load_dit(checkpoint_set.dit["comfy_fp16"]).blocks[0].ffn[2].weight.dtype == torch.float16
    fp8 = load_dit(checkpoint_set.dit["comfy_fp8_scaled"])
    assert fp8.blocks[0].ffn[2].weight.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in fp8.parameters()) and not fp8.training


# ------------------------------------------------------------------------------------- VAE

VAE_LATENT = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def vae_reference(checkpoint_set):
    return vae_from_state_dict(checkpoint_set.reference["vae"]).decode(VAE_LATENT)


@pytest.mark.parametrize("name", ["official", "official_folder", "comfy_fp16", "diffusers", "diffusers_pipeline"])
def test_vae_every_format_is_the_same_model(checkpoint_set, vae_reference, name):
    vae = load_vae(checkpoint_set.vae[name])
    assert vae.config == tiny.tiny_vae_config()
    _assert_same_state(vae, checkpoint_set.reference["vae"])
    assert torch.equal(vae.decode(VAE_LATENT), vae_reference)


def test_vae_dtype_none_keeps_the_stored_dtype(checkpoint_set):
    assert load_vae(checkpoint_set.vae["comfy_fp16"], dtype=None).encoder.conv1.weight.dtype == torch.float16
    assert load_vae(checkpoint_set.vae["comfy_fp16"]).encoder.conv1.weight.dtype == torch.float32


# ------------------------------------------------------------------------------------- text encoder

@pytest.fixture(scope="module")
def t5_reference(checkpoint_set):
    encoder = text_encoder_from_state_dict(checkpoint_set.reference["t5"], checkpoint_set.spiece, dtype=torch.float32)
    return encoder.encode(PROMPTS)


@pytest.mark.parametrize("name", ["official", "official_folder", "comfy_fp16", "diffusers", "diffusers_pipeline"])
def test_t5_every_lossless_format_encodes_the_same(checkpoint_set, t5_reference, name):
    encoder = load_text_encoder(checkpoint_set.t5[name], dtype=torch.float32)
    found = encoder.encode(PROMPTS)
    assert [t.shape for t in found] == [t.shape for t in t5_reference]
    assert all(torch.equal(a, b) for a, b in zip(found, t5_reference))


def test_t5_scaled_fp8_dequantises_exactly(checkpoint_set):
    path = checkpoint_set.t5["comfy_fp8_scaled"]
    raw = _independent_dequantisation(path)
    raw.pop("spiece_model")
    expected = text_encoder_from_state_dict(raw, checkpoint_set.spiece, dtype=torch.float32).encode(PROMPTS)
    found = load_text_encoder(path, dtype=torch.float32).encode(PROMPTS)
    assert all(torch.equal(a, b) for a, b in zip(found, expected))


def test_t5_default_dtype_is_bf16_and_tokenizers_agree(checkpoint_set):
    embedded = load_text_encoder(checkpoint_set.t5["comfy_fp16"])
    folder = load_text_encoder(checkpoint_set.t5["official"])
    assert embedded.dtype == torch.bfloat16
    for prompt in PROMPTS:
        assert embedded.tokenizer.encode(prompt) == folder.tokenizer.encode(prompt)
    explicit = load_text_encoder(checkpoint_set.t5["official"], tokenizer=checkpoint_set.spiece)
    assert explicit.tokenizer.encode(PROMPTS[1]) == folder.tokenizer.encode(PROMPTS[1])


# ------------------------------------------------------------------------------------- image encoder

IMAGE = torch.rand(2, 40, 56, 3, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def clip_reference(checkpoint_set):
    return image_encoder_from_state_dict(checkpoint_set.reference["clip"]).encode(IMAGE).penultimate_hidden_states


@pytest.mark.parametrize("name", ["official", "official_folder", "comfy_fp16", "diffusers", "diffusers_pipeline"])
def test_clip_every_format_encodes_the_same(checkpoint_set, clip_reference, name):
    encoder = load_image_encoder(checkpoint_set.clip[name])
    assert encoder.dtype == torch.float32   # the CPU default
    found = encoder.encode(IMAGE).penultimate_hidden_states
    assert found.shape == (2, 257, 1280) and torch.equal(found, clip_reference)


# ------------------------------------------------------------------------------------- tiny model set

def test_tiny_model_set_is_deterministic_and_loads(tmp_path):
    paths = tiny.write_tiny_model_set(tmp_path / "models")
    assert set(paths) == {"dit", "vae", "t5", "clip_vision"}
    assert tiny.tiny_spiece_model() == tiny.tiny_spiece_model()
    first = tiny.tiny_dit_state_dict("i2v")
    assert all(torch.equal(v, tiny.random_tensor(k, tuple(v.shape))) for k, v in list(first.items())[:5])
    dit = load_dit(paths["dit"], dtype=torch.float32, require="i2v")
    _assert_same_state(dit, first)
    contexts = load_text_encoder(paths["t5"], dtype=torch.float32).encode(PROMPTS[:1])
    features = load_image_encoder(paths["clip_vision"]).encode(torch.rand(1, 32, 32, 3)).penultimate_hidden_states
    video = dit(**{**_dit_inputs(), "context": contexts, "clip_fea": features})
    assert video.shape == (1, 16, 2, 4, 4) and torch.isfinite(video).all()
    assert load_vae(paths["vae"]).decode(video).shape == (1, 3, 5, 32, 32)
    assert os.path.basename(paths["dit"]) == "wan2.1_i2v_tiny_fp16.safetensors"

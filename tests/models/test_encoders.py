"""umT5 text encoder, tokenizer and CLIP image encoder against transformers on the same random weights.

The models are built from the transformers modules' own tensors; official state dicts are written out
by hand from the same modules (official `wan/modules/t5.py` `T5Encoder`, `wan/modules/clip.py`
`VisionTransformer`), independently of the key maps under test.
"""
import html
import re

import ftfy
import pytest
import torch
import transformers
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

import spm_fixture
from wan21_core.checkpoints import image_encoder_from_state_dict, text_encoder_from_state_dict
from wan21_core.checkpoints.configs import clip_config_from_shapes, t5_config_from_shapes
from wan21_core.checkpoints.keymaps import clip_official_to_hf, t5_hf_alias, t5_official_to_hf
from wan21_core.models.image_encoder import ClipVisionOutput, clip_vit_h14_config, preprocess
from wan21_core.models.text_encoder import umt5_xxl_config
from wan21_core.models.text_encoder.tokenizer import UMT5Tokenizer, clean_prompt

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
PROMPTS = [
    "A cat walks on the grass, realistic photo, golden hour lighting, shallow depth of field.",
    "  two   dogs &amp;amp; a ball\n\tin the park  ",
    "",
    "Ｆｕｌｌ－ｗｉｄｔｈ ① café",
]
LONG_PROMPT = " ".join(spm_fixture._corpus_lines()[:60])   # well over 512 tokens


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Replace every parameter with seeded noise (official inits zero some weights and hide mapping bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim >= 2:
                param.copy_(noise * (param[0].numel() ** -0.5))
            elif name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.5 * noise)


def official_clean(text: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def spm_proto() -> bytes:
    return spm_fixture.train_spm()


@pytest.fixture(scope="module")
def hf_tokenizer(spm_proto):
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("the exact hub-free T5 tokenizer construction needs transformers 5.x")
    return spm_fixture.hf_t5_tokenizer(spm_proto)


@pytest.fixture(scope="module", params=["spiece_tensor", "spiece_file", "tokenizer_json"])
def tokenizer_source(request, spm_proto, tmp_path_factory):
    """The three local tokenizer sources: ComfyUI's uint8 tensor, spiece.model, tokenizer.json."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "tokenizer_json":
        return spm_fixture.write_tokenizer_json(str(folder), request.getfixturevalue("hf_tokenizer"))
    if request.param == "spiece_tensor":
        return torch.frombuffer(bytearray(spm_proto), dtype=torch.uint8)
    path = folder / "spiece.model"
    path.write_bytes(spm_proto)
    return path


@pytest.fixture(scope="module")
def t5_reference(spm_proto) -> UMT5EncoderModel:
    config = UMT5Config(vocab_size=len(spm_fixture.sentencepiece.SentencePieceProcessor(model_proto=spm_proto)),
                        d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=32, relative_attention_max_distance=128,
                        feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
                        is_encoder_decoder=False, use_cache=False)
    model = UMT5EncoderModel(config).eval()
    randomize_(model, seed=1)
    return model


def hf_t5_state_dict(model: UMT5EncoderModel) -> dict:
    """The module's own tensors under canonical names (the tied embedding once, as `shared.weight`)."""
    return {k: v.detach() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}


def official_t5_state_dict(model: UMT5EncoderModel) -> dict:
    """`models_t5_umt5-xxl-enc-bf16.pth` keys (official `T5Encoder`), written out from the modules."""
    sd = {"token_embedding.weight": model.shared.weight, "norm.weight": model.encoder.final_layer_norm.weight}
    for i, block in enumerate(model.encoder.block):
        attn, ffn = block.layer[0], block.layer[1]
        sd[f"blocks.{i}.norm1.weight"] = attn.layer_norm.weight
        for name in "qkvo":
            sd[f"blocks.{i}.attn.{name}.weight"] = getattr(attn.SelfAttention, name).weight
        sd[f"blocks.{i}.pos_embedding.embedding.weight"] = attn.SelfAttention.relative_attention_bias.weight
        sd[f"blocks.{i}.norm2.weight"] = ffn.layer_norm.weight
        sd[f"blocks.{i}.ffn.gate.0.weight"] = ffn.DenseReluDense.wi_0.weight
        sd[f"blocks.{i}.ffn.fc1.weight"] = ffn.DenseReluDense.wi_1.weight
        sd[f"blocks.{i}.ffn.fc2.weight"] = ffn.DenseReluDense.wo.weight
    return {k: v.detach() for k, v in sd.items()}


@pytest.fixture(scope="module")
def clip_reference() -> CLIPVisionModel:
    config = CLIPVisionConfig(image_size=224, patch_size=14, hidden_size=160, num_attention_heads=2,
                              num_hidden_layers=3, intermediate_size=320, hidden_act="gelu", layer_norm_eps=1e-5)
    model = CLIPVisionModel(config).eval()
    randomize_(model, seed=2)
    return model


def hf_clip_state_dict(model: CLIPVisionModel) -> dict:
    """The module's own tensors under canonical names (no `vision_model.` prefix, as in transformers 5.x)."""
    return {k.removeprefix("vision_model."): v.detach() for k, v in model.state_dict().items()}


def official_clip_state_dict(model: CLIPVisionModel, head_dim: int = 48) -> dict:
    """The official CLIP `.pth` visual keys without `visual.` (official `VisionTransformer`), from the modules."""
    tower = getattr(model, "vision_model", model)
    emb, width = tower.embeddings, model.config.hidden_size
    sd = {"patch_embedding.weight": emb.patch_embedding.weight,
          "cls_embedding": emb.class_embedding.reshape(1, 1, width),
          "pos_embedding": emb.position_embedding.weight.unsqueeze(0),
          "pre_norm.weight": tower.pre_layrnorm.weight, "pre_norm.bias": tower.pre_layrnorm.bias,
          "post_norm.weight": tower.post_layernorm.weight, "post_norm.bias": tower.post_layernorm.bias,
          "head": torch.randn(width, head_dim, generator=torch.Generator().manual_seed(3))}
    for i, layer in enumerate(tower.encoder.layers):
        att = layer.self_attn
        for param in ("weight", "bias"):
            sd[f"transformer.{i}.norm1.{param}"] = getattr(layer.layer_norm1, param)
            sd[f"transformer.{i}.attn.to_qkv.{param}"] = torch.cat(
                [getattr(att.q_proj, param), getattr(att.k_proj, param), getattr(att.v_proj, param)])
            sd[f"transformer.{i}.attn.proj.{param}"] = getattr(att.out_proj, param)
            sd[f"transformer.{i}.norm2.{param}"] = getattr(layer.layer_norm2, param)
            sd[f"transformer.{i}.mlp.0.{param}"] = getattr(layer.mlp.fc1, param)
            sd[f"transformer.{i}.mlp.2.{param}"] = getattr(layer.mlp.fc2, param)
    return {k: v.detach() for k, v in sd.items()}


def official_pixels(image: torch.Tensor) -> torch.Tensor:
    """The official recipe (`wan/modules/clip.py`, `CLIPModel.visual`) by hand: [-1,1], bicubic squash
    to 224, back to [0,1], mean/std."""
    x = image.permute(0, 3, 1, 2) * 2.0 - 1.0
    x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
    return (x * 0.5 + 0.5 - MEAN) / STD


# ---------------------------------------------------------------------------------------------- tokenizer

def test_clean_prompt_examples():
    assert clean_prompt("  two   dogs &amp;amp; a ball\n\tin the park  ") == "two dogs & a ball in the park"
    assert clean_prompt("&lt;b&gt;bold&lt;/b&gt;") == "<b>bold</b>"
    assert clean_prompt("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == "The Mona Lisa doesn't have eyebrows."
    assert clean_prompt(" \n ") == ""


def test_tokenizer_matches_transformers(tokenizer_source, hf_tokenizer):
    tokenizer = UMT5Tokenizer.load(tokenizer_source)
    prompts = PROMPTS + spm_fixture._corpus_lines()[::7] + [LONG_PROMPT]
    with pytest.warns(UserWarning, match="tokens were dropped"):
        ours = tokenizer(prompts)
    ref = hf_tokenizer([official_clean(p) for p in prompts], padding="max_length", truncation=True,
                       max_length=512, add_special_tokens=True, return_tensors="pt")
    assert ours.ids.shape == (len(prompts), 512)
    assert torch.equal(ours.ids, ref.input_ids)
    assert torch.equal(ours.attention_mask, ref.attention_mask)
    assert ours.lengths == ref.attention_mask.sum(1).tolist()
    assert (tokenizer.eos_id, tokenizer.pad_id) == (1, 0)


def test_tokenizer_empty_prompt_is_just_eos(spm_proto):
    batch = UMT5Tokenizer.from_spiece_bytes(spm_proto)("")
    assert batch.lengths == [1]
    assert batch.ids[0, 0].item() == 1 and batch.ids[0, 1:].eq(0).all()
    assert batch.attention_mask[0].tolist() == [1] + [0] * 511


def test_tokenizer_truncates_with_warning(spm_proto):
    tokenizer = UMT5Tokenizer.from_spiece_bytes(spm_proto)
    prompt = LONG_PROMPT
    raw = spm_fixture.sentencepiece.SentencePieceProcessor(model_proto=spm_proto).encode(official_clean(prompt))
    assert len(raw) > 600
    with pytest.warns(UserWarning, match=f"the last {len(raw) - 511} tokens were dropped"):
        batch = tokenizer([prompt, "short"])
    assert batch.lengths == [512, batch.attention_mask[1].sum().item()]
    assert batch.ids[0].tolist() == raw[:511] + [1]


def test_tokenizer_bad_sources(tmp_path, spm_proto):
    with pytest.raises(ValueError, match="not a valid SentencePiece model"):
        UMT5Tokenizer.from_spiece_bytes(b"not a model")
    with pytest.raises(TypeError, match="uint8"):
        UMT5Tokenizer.from_spiece_bytes(torch.zeros(4, dtype=torch.float32))
    with pytest.raises(FileNotFoundError, match="spiece.model or tokenizer.json"):
        UMT5Tokenizer.load(tmp_path)
    with pytest.raises(TypeError, match="prompt: expected str"):
        UMT5Tokenizer.from_spiece_bytes(spm_proto)([3])


# ---------------------------------------------------------------------------------------------- umT5

def test_t5_official_key_map(t5_reference):
    official = official_t5_state_dict(t5_reference)
    renamed = {t5_official_to_hf(k): v for k, v in official.items()}
    reference = hf_t5_state_dict(t5_reference)
    assert set(renamed) == set(reference)
    assert all(torch.equal(renamed[k], reference[k]) for k in reference)
    assert t5_hf_alias("encoder.embed_tokens.weight") == "shared.weight"
    assert t5_hf_alias("encoder.block.0.layer.0.layer_norm.weight") == "encoder.block.0.layer.0.layer_norm.weight"
    assert t5_official_to_hf("decoder.blocks.0.attn.q.weight") is None


def test_t5_config_detection(t5_reference):
    config = t5_config_from_shapes(hf_t5_state_dict(t5_reference))
    ref = t5_reference.config
    for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads", "relative_attention_num_buckets",
                 "relative_attention_max_distance", "dense_act_fn", "is_gated_act", "layer_norm_epsilon"):
        assert getattr(config, name) == getattr(ref, name), name
    xxl = umt5_xxl_config()
    assert (xxl.vocab_size, xxl.d_model, xxl.d_kv, xxl.num_heads, xxl.d_ff, xxl.num_layers) == \
        (256384, 4096, 64, 64, 10240, 24)
    assert xxl.dense_act_fn == "gelu_new" and xxl.is_gated_act


def test_text_encoder_matches_transformers_fp32(t5_reference, tokenizer_source):
    """Model parity on the official 512-token padded batch (the tokenizer is checked against transformers above)."""
    encoder = text_encoder_from_state_dict(hf_t5_state_dict(t5_reference), tokenizer_source, dtype=torch.float32)
    out = encoder.encode(PROMPTS)
    batch = encoder.tokenizer(PROMPTS)
    with torch.no_grad():
        ref = t5_reference(input_ids=batch.ids, attention_mask=batch.attention_mask).last_hidden_state
    lengths = batch.attention_mask.sum(1).tolist()
    assert [o.shape for o in out] == [(n, 64) for n in lengths]
    assert lengths[2] == 1                                # the empty prompt is just EOS
    for i, n in enumerate(lengths):
        assert out[i].dtype == torch.float32
        # relative L2. The encoder drops the padding columns beyond the longest prompt, which changes
        # only the fp32 summation order (about 7e-7 on the longest prompt, 0 on the others);
        # test_text_encoder_padding_cut_is_exact_in_float64 shows the cut itself is exact.
        assert rel_l2(out[i], ref[i, :n]) <= 1e-6, i


def test_text_encoder_padding_cut_is_exact_in_float64(t5_reference, spm_proto):
    weights = {k: v.double() for k, v in hf_t5_state_dict(t5_reference).items()}
    encoder = text_encoder_from_state_dict(weights, spm_proto, dtype=torch.float64)
    out = encoder.encode(PROMPTS, output_dtype=None)
    ref_model = UMT5EncoderModel(t5_reference.config).eval()
    ref_model.load_state_dict(t5_reference.state_dict())
    ref_model.double()
    batch = encoder.tokenizer(PROMPTS)
    with torch.no_grad():
        ref = ref_model(input_ids=batch.ids, attention_mask=batch.attention_mask).last_hidden_state
    for i, n in enumerate(batch.lengths):
        assert out[i].dtype == torch.float64
        assert (out[i] - ref[i, :n]).abs().max().item() <= 1e-12, i


def test_text_encoder_bf16(t5_reference, spm_proto):
    weights = hf_t5_state_dict(t5_reference)
    fp32 = text_encoder_from_state_dict(weights, spm_proto, dtype=torch.float32).encode(PROMPTS)
    encoder = text_encoder_from_state_dict(weights, spm_proto)   # bf16 by default, as officially
    assert encoder.dtype == torch.bfloat16 and encoder.device == torch.device("cpu")
    out = encoder.encode(PROMPTS, output_dtype=None)
    assert all(o.dtype == torch.bfloat16 for o in out)
    ref_bf16 = UMT5EncoderModel(t5_reference.config).eval()
    ref_bf16.load_state_dict(t5_reference.state_dict())
    ref_bf16.to(torch.bfloat16)
    batch = encoder.tokenizer(PROMPTS)
    with torch.no_grad():
        ref16 = ref_bf16(input_ids=batch.ids, attention_mask=batch.attention_mask).last_hidden_state
        ref32 = t5_reference(input_ids=batch.ids, attention_mask=batch.attention_mask).last_hidden_state
    for i, n in enumerate(batch.lengths):
        # The bf16 rounding error of this model is what transformers' bf16 run shows against its fp32
        # run (rel L2 1-4e-2 with these weights); ours must be of the same size (measured ratio <= 1.01).
        assert rel_l2(out[i], fp32[i]) <= 1.25 * rel_l2(ref16[i, :n], ref32[i, :n]), i


def test_text_encoder_adopts_weights_without_copy(t5_reference, spm_proto):
    weights = hf_t5_state_dict(t5_reference)
    encoder = text_encoder_from_state_dict(weights, spm_proto, dtype=torch.float32).to("cpu")
    model = encoder.model
    assert model.shared.weight.data_ptr() == weights["shared.weight"].data_ptr()
    assert model.encoder.embed_tokens.weight is model.shared.weight
    assert model.encoder.block[1].layer[1].DenseReluDense.wi_0.weight.data_ptr() == \
        weights["encoder.block.1.layer.1.DenseReluDense.wi_0.weight"].data_ptr()
    assert not any(t.is_meta for t in model.state_dict().values())


def test_text_encoder_rejects_incomplete_or_misshapen_weights(t5_reference, spm_proto):
    weights = hf_t5_state_dict(t5_reference)
    key_k = "encoder.block.1.layer.0.SelfAttention.k.weight"
    with pytest.raises(KeyError, match="missing encoder.block.0.layer.1.DenseReluDense.wi_1.weight"):
        text_encoder_from_state_dict({k: v for k, v in weights.items() if "wi_1" not in k}, spm_proto)
    with pytest.raises(KeyError, match=f"missing 1 weights .*: {key_k}"):
        text_encoder_from_state_dict({k: v for k, v in weights.items() if k != key_k}, spm_proto)
    with pytest.raises(ValueError, match="do not fit the detected config"):
        text_encoder_from_state_dict({**weights, "encoder.block.1.layer.1.layer_norm.weight": torch.ones(65)},
                                     spm_proto)


# ---------------------------------------------------------------------------------------------- CLIP

def test_clip_official_key_map(clip_reference):
    official = official_clip_state_dict(clip_reference)
    hf = clip_official_to_hf(official)
    reference = hf_clip_state_dict(clip_reference)
    assert set(hf) == set(reference)   # `head`, the projection Wan does not use, is dropped
    for key, tensor in reference.items():
        assert torch.equal(hf[key], tensor), key
    qkv = official["transformer.0.attn.to_qkv.weight"]
    assert hf["encoder.layers.0.self_attn.k_proj.weight"].data_ptr() == qkv[160:].data_ptr()   # a view
    assert hf["embeddings.patch_embedding.weight"] is official["patch_embedding.weight"]        # a rename
    with pytest.raises(KeyError, match="textual"):
        clip_official_to_hf({**official, "textual.token_embedding.weight": torch.zeros(1)})


def test_clip_config_detection(clip_reference):
    config = clip_config_from_shapes(hf_clip_state_dict(clip_reference))
    ref = clip_reference.config
    for name in ("image_size", "patch_size", "hidden_size", "num_attention_heads", "num_hidden_layers",
                 "intermediate_size", "hidden_act", "layer_norm_eps", "num_channels"):
        assert getattr(config, name) == getattr(ref, name), name
    h14 = clip_vit_h14_config()
    assert (h14.image_size, h14.patch_size, h14.hidden_size, h14.num_hidden_layers, h14.num_attention_heads,
            h14.intermediate_size, h14.hidden_act, h14.layer_norm_eps) == (224, 14, 1280, 32, 16, 5120, "gelu", 1e-5)


def test_preprocess_is_the_official_recipe():
    image = torch.rand(2, 90, 170, 3, generator=torch.Generator().manual_seed(4))
    pixels = preprocess(image)
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == torch.float32
    assert max_abs(pixels, official_pixels(image)) <= 1e-6


def test_preprocess_center_crop_is_comfyui():
    image = torch.rand(1, 120, 300, 3, generator=torch.Generator().manual_seed(5))
    x = F.interpolate(image.permute(0, 3, 1, 2), size=(224, 560), mode="bicubic", antialias=True)
    x = x[:, :, :, 168:392]
    expected = ((255 * x).clamp(0, 255).round() / 255 - MEAN) / STD
    assert torch.equal(preprocess(image, crop="center"), expected)
    square = torch.rand(1, 224, 224, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(preprocess(square, crop="center"),
                       ((255 * square.permute(0, 3, 1, 2)).round() / 255 - MEAN) / STD)


def test_image_encoder_matches_transformers(clip_reference):
    encoder = image_encoder_from_state_dict(hf_clip_state_dict(clip_reference))
    assert encoder.dtype == torch.float32 and encoder.device == torch.device("cpu")
    image = torch.rand(2, 150, 100, 3, generator=torch.Generator().manual_seed(7))
    out = encoder.encode(image, with_last_hidden_state=True)
    with torch.no_grad():
        ref = clip_reference(pixel_values=official_pixels(image), output_hidden_states=True)
    assert out.penultimate_hidden_states.shape == (2, 257, 160)
    assert max_abs(out.penultimate_hidden_states, ref.hidden_states[-2]) <= 1e-6
    assert max_abs(out.last_hidden_state, ref.last_hidden_state) <= 1e-6
    assert encoder.encode(image).last_hidden_state is None


def test_image_encoder_skips_the_last_block(clip_reference):
    encoder = image_encoder_from_state_dict(hf_clip_state_dict(clip_reference))
    calls = []
    tower = getattr(encoder.model, "vision_model", encoder.model)
    hooks = [layer.register_forward_hook(lambda m, i, o, n=n: calls.append(n))
             for n, layer in enumerate(tower.encoder.layers)]
    encoder.encode(torch.rand(1, 32, 32, 3))
    for hook in hooks:
        hook.remove()
    assert calls == [0, 1]


def test_image_input_shapes(clip_reference):
    encoder = image_encoder_from_state_dict(hf_clip_state_dict(clip_reference))
    gray = torch.rand(64, 48, generator=torch.Generator().manual_seed(8))
    rgb = gray[..., None].expand(64, 48, 3)
    single = encoder.encode(rgb).penultimate_hidden_states
    assert single.shape == (1, 257, 160)
    assert torch.equal(encoder.encode(gray).penultimate_hidden_states, single)
    assert torch.equal(encoder.encode(gray[None, ..., None]).penultimate_hidden_states, single)
    with pytest.warns(UserWarning, match="alpha channel is dropped"):
        rgba = encoder.encode(torch.cat([rgb, torch.zeros(64, 48, 1)], -1))
    assert torch.equal(rgba.penultimate_hidden_states, single)
    with pytest.raises(ValueError, match=r"channels-last .* found shape \(1, 3, 64, 48\)"):
        encoder.encode(rgb.permute(2, 0, 1)[None])
    with pytest.raises(TypeError, match="float tensor"):
        encoder.encode((rgb * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="crop: expected one of"):
        encoder.encode(rgb, crop="left")


def test_clip_vision_output_access(clip_reference):
    encoder = image_encoder_from_state_dict(hf_clip_state_dict(clip_reference))
    out = encoder.encode(torch.rand(1, 30, 30, 3))
    assert isinstance(out, ClipVisionOutput)
    assert out["penultimate_hidden_states"] is out.penultimate_hidden_states
    assert out.image_embeds is None and out["last_hidden_state"] is None
    out["extra"] = 1
    assert out.extra == 1
    with pytest.raises(KeyError):
        out["missing"]


def test_image_encoder_rejects_incomplete_or_misshapen_weights(clip_reference):
    weights = hf_clip_state_dict(clip_reference)
    norm = "encoder.layers.1.layer_norm2.bias"
    with pytest.raises(KeyError, match=f"missing 1 weights .*: {norm}"):
        image_encoder_from_state_dict({k: v for k, v in weights.items() if k != norm})
    with pytest.raises(ValueError, match="do not fit the detected config"):
        image_encoder_from_state_dict({**weights, "encoder.layers.1.mlp.fc2.bias": torch.zeros(161)})


def test_clip_head_count_needs_width_multiple_of_80(clip_reference):
    weights = hf_clip_state_dict(clip_reference)
    weights["embeddings.patch_embedding.weight"] = torch.zeros(100, 3, 14, 14)
    with pytest.raises(ValueError, match="not a multiple of the head size 80"):
        clip_config_from_shapes(weights)

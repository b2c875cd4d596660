"""WanModel (the Wan2.1 DiT) against diffusers' WanTransformer3DModel on the same re-randomised weights.

Tiny models (dim 256 = 2 heads of 128, 2 layers, ffn 512) on a non-square latent with 3 frames,
text shorter than 512 tokens and CLIP features. Tolerances follow the measured gaps in docs/benchmarks.md
("DiT forward"): fp32 implementations of the same math agree to ~4e-6 relative L2 (measured 2.7e-6),
bf16 lands within ~0.9e-2 (diffusers bf16 vs its fp32: 8.4e-3).
"""
import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

import wan21_core.models.dit.attention as attention_module
import wan21_core.kernels.cpu as cpu_kernels
import wan21_core.models.dit.blocks as dit_blocks
import wan21_core.models.dit.ops as dit_ops
from wan21_core.models.dit.attention import attention, available_backends, set_attention_backend
from wan21_core.models.configs import DiTConfig
from wan21_core.models.dit.model import WanModel
from wan21_core.models.dit.ops import gelu_tanh_, linear, onednn_linear_available

DIM, HEADS, LAYERS, FFN = 256, 2, 2, 512
LATENT = (1, 16, 3, 6, 10)
TEXT_TOKENS = 40


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def tiny_config(model_type: str) -> DiTConfig:
    return DiTConfig(model_type=model_type, in_dim=16 if model_type == "t2v" else 36, dim=DIM,
                     ffn_dim=FFN, num_heads=HEADS, num_layers=LAYERS)


def rerandomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (the official init zeroes the head and sets norms to 1, hiding mapping bugs)."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.dim() == 1:   # norm weights and biases: around 1 for weights, random biases
            p.data = 1.0 + 0.3 * torch.randn(p.shape, generator=g)
        else:
            p.data = torch.randn(p.shape, generator=g) * p.shape[-1] ** -0.5
    return model


@pytest.fixture(scope="module")
def models():
    return {mt: rerandomise(WanModel(tiny_config(mt)), seed=i).eval()
            for i, mt in enumerate(("i2v", "t2v", "flf2v"))}


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(123)
    frames, height, width = LATENT[2:]
    return {
        "x": torch.randn(*LATENT, generator=g),
        "y": torch.randn(1, 20, frames, height, width, generator=g),
        "context": torch.randn(1, TEXT_TOKENS, 4096, generator=g),
        "clip": torch.randn(1, 257, 1280, generator=g),
        "clip2": torch.randn(1, 514, 1280, generator=g),
        "t": torch.tensor([637.0]),
    }


def model_kwargs(model_type: str, inputs: dict) -> dict:
    if model_type == "t2v":
        return {}
    return {"y": inputs["y"], "clip_fea": inputs["clip2" if model_type == "flf2v" else "clip"]}


def diffusers_twin(model: WanModel) -> WanTransformer3DModel:
    """The same weights in diffusers, renamed by diffusers' own converter, loaded strictly."""
    c = model.config
    state = convert_wan_transformer_to_diffusers({k: v.clone() for k, v in model.state_dict().items()})
    extra = {}
    if c.has_image_input:
        extra = {"image_dim": c.img_dim, "added_kv_proj_dim": c.dim}
    if c.model_type == "flf2v":   # the converter leaves emb_pos unrenamed: diffusers
        # `src/diffusers/loaders/single_file_utils.py` `convert_wan_transformer_to_diffusers` has no rule for it
        state["condition_embedder.image_embedder.pos_embed"] = state.pop("img_emb.emb_pos")
        extra["pos_embed_seq_len"] = c.image_tokens
    twin = WanTransformer3DModel(patch_size=c.patch_size, num_attention_heads=c.num_heads,
                                 attention_head_dim=c.head_dim, in_channels=c.in_dim, out_channels=c.out_dim,
                                 text_dim=c.text_dim, freq_dim=c.freq_dim, ffn_dim=c.ffn_dim,
                                 num_layers=c.num_layers, eps=c.eps, **extra)
    twin.load_state_dict(state, strict=True)
    return twin.eval()


# ------------------------------------------------------------------------------------ weights

def test_state_dict_has_exactly_the_official_keys(models):
    keys = set(models["i2v"].state_dict())
    block = {f"blocks.0.{name}" for name in (
        "modulation", "norm3.weight", "norm3.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias",
        *(f"{attn}.{p}.{wb}" for attn in ("self_attn", "cross_attn") for p in "qkvo" for wb in ("weight", "bias")),
        *(f"{attn}.{n}.weight" for attn in ("self_attn", "cross_attn") for n in ("norm_q", "norm_k")),
        "cross_attn.k_img.weight", "cross_attn.k_img.bias", "cross_attn.v_img.weight", "cross_attn.v_img.bias",
        "cross_attn.norm_k_img.weight")}
    top = {"patch_embedding.weight", "patch_embedding.bias", "time_projection.1.weight", "time_projection.1.bias",
           "head.modulation", "head.head.weight", "head.head.bias",
           *(f"{m}.{i}.{wb}" for m in ("text_embedding", "time_embedding") for i in (0, 2)
             for wb in ("weight", "bias")),
           *(f"img_emb.proj.{i}.{wb}" for i in (0, 1, 3, 4) for wb in ("weight", "bias"))}
    assert {k for k in keys if not k.startswith("blocks.1.")} == block | top
    assert len(keys) == len(top) + LAYERS * len(block)
    assert not any("img" in k for k in models["t2v"].state_dict())
    assert models["flf2v"].state_dict()["img_emb.emb_pos"].shape == (1, 514, 1280)
    assert models["i2v"].state_dict()["head.modulation"].shape == (1, 2, DIM)


def test_strict_load_into_a_fresh_model(models, inputs):
    fresh = WanModel(tiny_config("i2v")).eval()
    fresh.load_state_dict(models["i2v"].state_dict(), strict=True)
    kw = model_kwargs("i2v", inputs)
    assert torch.equal(fresh(inputs["x"], inputs["t"], inputs["context"], **kw),
                       models["i2v"](inputs["x"], inputs["t"], inputs["context"], **kw))


# ------------------------------------------------------------------------------------- parity

@pytest.mark.parametrize("model_type", ["i2v", "t2v", "flf2v"])
def test_matches_diffusers_in_fp32(models, inputs, model_type):
    model = models[model_type]
    twin = diffusers_twin(model)
    ours = model(inputs["x"], inputs["t"], inputs["context"], **model_kwargs(model_type, inputs))
    hidden = inputs["x"] if model_type == "t2v" else torch.cat([inputs["x"], inputs["y"]], dim=1)
    image = {"i2v": inputs["clip"], "flf2v": inputs["clip2"].reshape(2, 257, 1280)}.get(model_type)
    padded = torch.nn.functional.pad(inputs["context"], (0, 0, 0, 512 - TEXT_TOKENS))
    with torch.no_grad():
        ref = twin(hidden, inputs["t"].long(), padded, encoder_hidden_states_image=image, return_dict=False)[0]
    assert ours.dtype == torch.float32 and ours.shape == LATENT
    assert rel_l2(ours, ref) <= 1e-5


@pytest.mark.parametrize("model_type", ["i2v", "t2v", "flf2v"])
def test_training_forward_equals_inference_and_reaches_every_weight(models, inputs, model_type):
    from wan21_core.models.dit.training import training_forward

    model = models[model_type]
    fast = model(inputs["x"], inputs["t"], inputs["context"], **model_kwargs(model_type, inputs))
    trained = training_forward(model, inputs["x"], inputs["t"], inputs["context"], **model_kwargs(model_type, inputs))
    assert rel_l2(trained.detach(), fast) <= 1e-5
    trained.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    model.zero_grad(set_to_none=True)
    assert missing == []


def test_cache_path_equals_plain_call(models, inputs):
    model = models["i2v"]
    cache = model.prepare_context(inputs["context"], inputs["clip"])
    plain = model(inputs["x"], inputs["t"], inputs["context"], clip_fea=inputs["clip"], y=inputs["y"])
    cached = model(inputs["x"], inputs["t"], y=inputs["y"], cache=cache)
    assert rel_l2(cached, plain) <= 1e-6


def test_batched_cfg_equals_two_single_calls(models, inputs):
    model = models["i2v"]
    uncond = torch.randn(1, 7, 4096, generator=torch.Generator().manual_seed(5))
    x, y, t, clip = inputs["x"], inputs["y"], inputs["t"], inputs["clip"]
    singles = torch.cat([model(x, t, inputs["context"], clip_fea=clip, y=y), model(x, t, uncond, clip_fea=clip, y=y)])
    cache = model.prepare_context([inputs["context"][0], uncond[0]], clip)   # texts batch 2, image batch 1
    shared_latent = model(x, t, y=y, cache=cache)                           # x, t, y batch 1 broadcast
    full_batch = model(x.expand(2, -1, -1, -1, -1), t.expand(2), y=y.expand(2, -1, -1, -1, -1), cache=cache)
    assert shared_latent.shape == full_batch.shape == (2, *LATENT[1:])
    assert rel_l2(shared_latent, singles) <= 1e-6
    assert rel_l2(full_batch, singles) <= 1e-6


def test_list_context_is_zero_padded_like_a_tensor(models, inputs):
    model = models["t2v"]
    as_list = model(inputs["x"], inputs["t"], [inputs["context"][0]])
    padded = torch.nn.functional.pad(inputs["context"], (0, 0, 0, 512 - TEXT_TOKENS))
    assert rel_l2(as_list, model(inputs["x"], inputs["t"], padded)) <= 1e-6


@pytest.mark.parametrize("backend", ["sdpa", "blocked"])
def test_collapsed_text_padding_is_exact(models, inputs, monkeypatch, backend):
    """The cache keeps one of the identical zero-padding keys with logit bias log(count)."""
    model, x, t = models["t2v"], inputs["x"], inputs["t"]
    contexts = [inputs["context"][0], torch.zeros(0, 4096)]          # 40 real tokens; an empty prompt
    set_attention_backend(backend)
    try:
        collapsed = model(x, t, contexts)
        assert model.prepare_context(contexts).blocks[0].k_text.shape[1] == TEXT_TOKENS + 1
        monkeypatch.setattr(dit_blocks, "collapse_padding", lambda k, v, lengths: (k, v, None))
        all_rows = model(x, t, contexts)
    finally:
        set_attention_backend("auto")
    assert rel_l2(collapsed, all_rows) <= 1e-6


def test_token_chunks_do_not_change_the_result(models, inputs, monkeypatch):
    model, x, y, clip = models["i2v"], inputs["x"], inputs["y"], inputs["clip"]
    uncond = torch.randn(1, 7, 4096, generator=torch.Generator().manual_seed(5))
    cache = model.prepare_context([inputs["context"][0], uncond[0]], clip)
    times = torch.tensor([637.0, 120.0])                                     # a modulation per sample too
    whole = [model(x, inputs["t"], y=y, cache=cache), model(x, times, y=y, cache=cache)]
    monkeypatch.setitem(dit_ops.TOKEN_CHUNK_ELEMENTS, "cpu", 8 * DIM)       # 45 tokens in chunks of 8
    monkeypatch.setattr(dit_ops, "MIN_CHUNK_TOKENS", 1)
    monkeypatch.setitem(dit_blocks.FFN_CHUNK_TOKENS, "cpu", 10)
    chunked = [model(x, inputs["t"], y=y, cache=cache), model(x, times, y=y, cache=cache)]
    assert all(rel_l2(c, w) <= 1e-6 for c, w in zip(chunked, whole))


def test_timesteps_are_truncated_to_integers(models, inputs):
    model, kw = models["i2v"], model_kwargs("i2v", inputs)
    args = (inputs["x"],)
    v_int = model(*args, torch.tensor([500]), inputs["context"], **kw)
    assert torch.equal(model(*args, torch.tensor([500.7]), inputs["context"], **kw), v_int)
    assert torch.equal(model(*args, 500.7, inputs["context"], **kw), v_int)
    assert not torch.equal(model(*args, torch.tensor([501.0]), inputs["context"], **kw), v_int)


# ---------------------------------------------------------------------------------- precision

def test_cast_weights_keeps_the_fp32_modules(models):
    model = rerandomise(WanModel(tiny_config("flf2v")), seed=9).cast_weights(torch.bfloat16)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    for name in ("time_embedding.0.weight", "time_projection.1.weight", "blocks.0.modulation", "head.modulation",
                 "blocks.0.norm3.weight", "blocks.0.self_attn.norm_q.weight", "blocks.1.cross_attn.norm_k_img.weight",
                 "img_emb.proj.0.weight", "img_emb.proj.4.bias", "img_emb.emb_pos", "head.head.weight"):
        assert WanModel.keeps_fp32(name) and dtypes[name] == torch.float32, name
    for name in ("patch_embedding.weight", "text_embedding.0.weight", "blocks.0.self_attn.q.weight",
                 "blocks.1.cross_attn.k_img.bias", "blocks.0.ffn.2.weight", "img_emb.proj.1.weight"):
        assert not WanModel.keeps_fp32(name) and dtypes[name] == torch.bfloat16, name
    assert model.compute_dtype == torch.bfloat16
    model.compute_dtype = torch.float16
    assert model.compute_dtype == torch.float16
    model.compute_dtype = None
    assert model.compute_dtype == torch.bfloat16


def bf16_twin_run(models, inputs):
    """(bf16 twin of the i2v model, a call running a model on the test inputs, the fp32 output)."""
    fp32 = models["i2v"]
    bf16 = WanModel(fp32.config).eval()
    bf16.load_state_dict(fp32.state_dict())
    bf16.cast_weights(torch.bfloat16)
    kw = model_kwargs("i2v", inputs)

    def run(model):
        return model(inputs["x"], inputs["t"], inputs["context"], **kw)
    return bf16, run, run(fp32)


def test_bf16_stays_within_the_peers_bf16_gap(models, inputs):
    bf16, run, ref = bf16_twin_run(models, inputs)
    out = run(bf16)
    assert out.dtype == torch.float32
    assert rel_l2(out, ref) <= 0.9e-2     # docs/benchmarks.md ("DiT forward"): diffusers bf16 vs fp32 is 0.84e-2


def test_bf16_cpu_kernels_are_as_accurate_as_the_torch_path(models, inputs, monkeypatch):
    """The compiled softmax / LayerNorm / RMS+RoPE kernels against the same bf16 model on plain torch ops."""
    if cpu_kernels.default_kernels() is None:
        pytest.skip(f"CPU kernels unavailable here: {cpu_kernels._state['reason']}")
    bf16, run, ref = bf16_twin_run(models, inputs)
    with_kernels = run(bf16)
    monkeypatch.setitem(cpu_kernels._state, "kernels", None)
    plain = run(bf16)
    assert not torch.equal(with_kernels, plain)                      # the kernels did run
    assert rel_l2(with_kernels, ref) <= 1.1 * rel_l2(plain, ref)


# --------------------------------------------------------------------------------- bad inputs

BAD_INPUTS = [
    # (model type, overrides of the i2v/t2v call, error fragment)
    ("i2v", {"x": torch.zeros(1, 17, 3, 6, 10)},
     r"x/y channels: the model takes 36 input channels in total, found x 17"),
    ("i2v", {"y": None}, r"y: the model is i2v and needs y"),
    ("i2v", {"clip_fea": None}, r"clip_fea: the model is i2v and needs image features"),
    ("i2v", {"clip_fea": torch.zeros(1, 100, 1280)}, r"clip_fea: expected \[B, 257, 1280\], found \(1, 100, 1280\)"),
    ("flf2v", {"clip_fea": torch.zeros(1, 257, 1280)}, r"clip_fea: expected \[B, 514, 1280\] \(flf2v"),
    ("t2v", {"clip_fea": torch.zeros(1, 257, 1280)}, r"clip_fea: this is a t2v checkpoint"),
    ("t2v", {"y": torch.zeros(1, 20, 3, 6, 10)}, r"y: this is a t2v checkpoint"),
    ("i2v", {"context": torch.zeros(1, 513, 4096)}, r"context: at most 512 text tokens, found 513"),
    ("i2v", {"context": torch.zeros(1, 40, 1024)}, r"context: expected 4096 features per token.*found 1024"),
    ("i2v", {"context": [torch.zeros(40, 4096), torch.zeros(1, 3)]}, r"context\[1\]: expected 4096 features"),
    ("i2v", {"x": torch.zeros(1, 16, 3, 7, 10), "y": torch.zeros(1, 20, 3, 7, 10)},
     r"x: latent \(T, H, W\) must be divisible by the patch size .* found \(3, 7, 10\)"),
    ("i2v", {"y": torch.zeros(1, 20, 3, 6, 8)}, r"y: expected \[B, 20, 3, 6, 10\] like x, found \(1, 20, 3, 6, 8\)"),
    ("i2v", {"x": torch.zeros(2, 16, 3, 6, 10), "context": torch.zeros(3, 40, 4096)},
     r"batch sizes do not match: x 2, t 1, y 1, context 3, clip_fea 1"),
    ("i2v", {"x": torch.zeros(16, 3, 6, 10)}, r"x: expected a latent \[B, 16, T, H, W\], found \(16, 3, 6, 10\)"),
]


@pytest.mark.parametrize("model_type,overrides,message", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(models, inputs, model_type, overrides, message):
    call = {"x": inputs["x"], "t": inputs["t"], "context": inputs["context"], **model_kwargs(model_type, inputs)}
    call.update(overrides)
    with pytest.raises(ValueError, match=message):
        models[model_type](**call)


def test_cache_misuse_is_an_error(models, inputs):
    model = models["i2v"]
    cache = model.prepare_context(inputs["context"], inputs["clip"])
    with pytest.raises(ValueError, match="pass either cache or context/clip_fea, not both"):
        model(inputs["x"], inputs["t"], inputs["context"], y=inputs["y"], cache=cache)
    model.compute_dtype = torch.bfloat16
    try:
        expected = "cache: prepared for 2 blocks in torch.float32 on cpu.*call prepare_context"
        with pytest.raises(ValueError, match=expected):
            model(inputs["x"], inputs["t"], y=inputs["y"], cache=cache)
    finally:
        model.compute_dtype = None


# ---------------------------------------------------------------------------------- attention

def test_attention_matches_explicit_softmax_and_broadcasts_batch():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 9, 2, 128, generator=g), torch.randn(1, 5, 2, 128, generator=g), \
        torch.randn(1, 5, 2, 128, generator=g)
    scores = torch.einsum("bqnd,bknd->bnqk", q, k.expand(2, -1, -1, -1)) / 128**0.5
    expected = torch.einsum("bnqk,bknd->bqnd", scores.softmax(-1), v.expand(2, -1, -1, -1))
    assert rel_l2(attention(q, k, v), expected) <= 1e-6
    assert "sdpa" in available_backends()


@pytest.mark.parametrize("q_batch,kv_batch", [(2, 2), (2, 1), (1, 2)])
def test_blocked_attention_equals_sdpa_in_fp32(monkeypatch, q_batch, kv_batch):
    monkeypatch.setattr(attention_module, "SCORE_BLOCK_BYTES", 4096)   # force several row and head blocks
    monkeypatch.setattr(attention_module, "MIN_BLOCK_ROWS", 7)
    g = torch.Generator().manual_seed(1)
    q = torch.randn(q_batch, 50, 3, 128, generator=g)
    k, v = torch.randn(kv_batch, 33, 3, 128, generator=g) + 2.0, torch.randn(kv_batch, 33, 3, 128, generator=g)
    assert rel_l2(attention(q, k, v, backend="blocked"), attention(q, k, v, backend="sdpa")) <= 1e-6


def test_blocked_bf16_scores_stay_accurate_with_a_shared_key_offset():
    """bf16 scores are rounded after the matmul; centring the keys keeps that error near SDPA's own."""
    g = torch.Generator().manual_seed(0)
    q, v = torch.randn(2, 300, 2, 128, generator=g), torch.randn(2, 200, 2, 128, generator=g)
    k = torch.randn(2, 200, 2, 128, generator=g) + 6.0 * torch.randn(1, 1, 2, 128, generator=g)
    exact = attention(q, k, v, backend="sdpa")
    q16, k16, v16 = (t.bfloat16() for t in (q, k, v))
    blocked_error = rel_l2(attention(q16, k16, v16, backend="blocked").float(), exact)
    sdpa_error = rel_l2(attention(q16, k16, v16, backend="sdpa").float(), exact)
    assert blocked_error <= 1.25 * sdpa_error      # uncentred bf16 scores land at 1.7×


def test_gelu_tanh_equals_torch_gelu_tanh(monkeypatch):
    monkeypatch.setattr(dit_ops, "GELU_BLOCK_ELEMENTS", 3000)          # several row blocks
    x = torch.linspace(-12, 12, 100 * 257).view(100, 257)
    expected = torch.nn.functional.gelu(x, approximate="tanh")
    assert (gelu_tanh_(x.clone()) - expected).abs().max() <= 2e-6
    x16 = x.bfloat16()
    assert gelu_tanh_(x16) is x16 and rel_l2(x16.float(), expected) <= 4e-3


def test_fused_bf16_linear_gelu_rounds_once(monkeypatch):
    """On CPU in bf16 the FFN's first linear runs with bias and GELU fused (oneDNN, when this torch has it):
    one rounding to bf16 instead of two, so it lands closer to the fp32 result than the unfused path."""
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(256, 512)
    x = torch.randn(300, 256, generator=g)
    exact = torch.nn.functional.gelu(layer(x), approximate="tanh").detach()
    layer16, x16 = layer.bfloat16(), x.bfloat16()
    with torch.no_grad():
        fused = linear(layer16, x16, gelu=True)
        unfused = gelu_tanh_(layer16(x16))
        plain = linear(layer16, x16)
    assert fused.dtype == plain.dtype == torch.bfloat16
    assert torch.equal(plain, layer16(x16).detach())            # no activation: same values as the layer
    if onednn_linear_available():   # CPUs without bf16 inner products (AVX2 only) run the unfused path
        assert rel_l2(fused.float(), exact) <= 3e-3
        assert rel_l2(fused.float(), exact) < rel_l2(unfused.float(), exact)
    else:
        assert torch.equal(fused, unfused)
    with torch.enable_grad():                                   # autograd: the plain layer call
        assert linear(layer16, x16).requires_grad
    monkeypatch.setattr(dit_ops, "onednn_linear_available", lambda: False)   # a torch without the op
    with torch.no_grad():
        assert torch.equal(linear(layer16, x16, gelu=True), unfused)


def test_unavailable_attention_backend_is_named():
    with pytest.raises(ValueError, match="backend: expected one of"):
        set_attention_backend("xformers")
    for name in ("flash_attn", "sageattention"):
        if name not in available_backends():
            with pytest.raises(ValueError, match=f"attention backend '{name}' needs the package"):
                set_attention_backend(name)

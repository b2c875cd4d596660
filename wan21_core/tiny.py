"""Tiny Wan2.1 models with random weights, for demos and tests: configs, state dicts, a tokenizer.

Everything is deterministic given the seed. The widths that connect the models are the real
ones (T5 width 4096 = DiT text_dim, CLIP width 1280 = DiT img_dim, 16 latent channels), so a
tiny DiT also loads in ComfyUI's own Wan loader, which fixes those widths (COMFY_NOTES §10);
depth and inner sizes are tiny. Weights are drawn so that every value is exactly representable
in bfloat16 and in float16: saving them in fp32, fp16 or bf16 loses nothing, so every 16-bit
file format holds the very same model.

`write_tiny_model_set(directory)` writes one ComfyUI-style file per model into ComfyUI's model
folder layout (diffusion_models/, vae/, text_encoders/, clip_vision/) and returns their paths.
"""
from __future__ import annotations

import io
import os
import random
import zlib
from typing import Mapping

import torch

from .models.configs import CLIP_HEAD_DIM, DiTConfig, VAEConfig

TINY_SEED = 0
TINY_VOCAB = 256           # T5 embedding rows; the tiny SentencePiece model has at most this many pieces
_FP16_TINY = 2.0 ** -14    # smallest normal float16: smaller magnitudes are flushed to 0


# ------------------------------------------------------------------------------------- configs

def tiny_dit_config(model_type: str = "i2v") -> DiTConfig:
    """dim 256 (2 heads of 128), 2 blocks, FFN 512; text_dim 4096 and img_dim 1280 as released."""
    in_dim = 16 if model_type == "t2v" else 36
    return DiTConfig(model_type=model_type, in_dim=in_dim, out_dim=16, dim=256, ffn_dim=512, num_heads=2,
                     num_layers=2, freq_dim=256, text_dim=4096, img_dim=1280)


def tiny_vae_config() -> VAEConfig:
    """base_dim 8 with the released structure (dim_mult 1,2,4,4, 2 residual blocks, z_dim 16)."""
    return VAEConfig(base_dim=8)


def tiny_t5_config():
    """An umT5 encoder 4096 wide (the DiT's text_dim) with 2 layers, 2 heads of 32, FFN 64."""
    from transformers import UMT5Config

    return UMT5Config(vocab_size=TINY_VOCAB, d_model=4096, d_kv=32, d_ff=64, num_layers=2, num_heads=2,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                      is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1)


def tiny_clip_config():
    """A ViT 1280 wide (16 heads of 80, the DiT's img_dim) with 2 layers, MLP 320, 224 px, patch 14."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=1280, intermediate_size=320, num_hidden_layers=2,
                            num_attention_heads=1280 // CLIP_HEAD_DIM, image_size=224, patch_size=14,
                            projection_dim=64, hidden_act="gelu", layer_norm_eps=1e-5, attention_dropout=0.0)


# ------------------------------------------------------------------------------------- weights

def random_tensor(key: str, shape: tuple, seed: int = TINY_SEED) -> torch.Tensor:
    """A float32 tensor for parameter `key`, the same for the same (key, shape, seed).

    Matrices and kernels: N(0, 1/fan_in); 1-D weights (norm scales) and VAE `gamma`: 1 + N(0, 0.1²);
    biases: N(0, 0.1²); anything else (modulations, embeddings of positions / CLS): N(0, 0.1²).
    Values are rounded to bfloat16 and magnitudes below 2^-14 flushed to zero, so fp16 and bf16
    both hold them exactly.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    value = torch.randn(shape, generator=generator, dtype=torch.float32)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "gamma" or (leaf == "weight" and len(shape) == 1):
        value.mul_(0.1).add_(1.0)
    elif leaf == "weight":
        fan_in = 1
        for size in shape[1:]:
            fan_in *= size
        value.mul_(fan_in ** -0.5)
    else:
        value.mul_(0.1)
    value = value.to(torch.bfloat16)
    return value.masked_fill_(value.abs() < _FP16_TINY, 0.0).float()


def randomize(shapes: Mapping[str, tuple], seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """{key: random_tensor(key, shape, seed)} in sorted key order."""
    return {key: random_tensor(key, tuple(shapes[key]), seed) for key in sorted(shapes)}


def _meta_shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def tiny_dit_state_dict(model_type: str = "i2v", seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """Official-key float32 weights of `tiny_dit_config(model_type)`."""
    from .models.dit.model import WanModel

    with torch.device("meta"):
        model = WanModel(tiny_dit_config(model_type))
    return randomize(_meta_shapes(model), seed)


def tiny_vae_state_dict(seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """Official-key (`Wan2.1_VAE.pth`) float32 weights of `tiny_vae_config()`."""
    from .models.vae.model import WanVAE

    with torch.device("meta"):
        model = WanVAE(tiny_vae_config())
    return randomize(_meta_shapes(model), seed)


def tiny_t5_state_dict(seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """`UMT5EncoderModel`-named float32 weights of `tiny_t5_config()` (the tied embedding as `shared.weight`)."""
    from transformers import UMT5EncoderModel

    with torch.device("meta"):
        model = UMT5EncoderModel(tiny_t5_config())
    shapes = _meta_shapes(model)
    del shapes["encoder.embed_tokens.weight"]
    return randomize(shapes, seed)


def tiny_clip_state_dict(seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """`CLIPVisionModel`-named float32 weights of `tiny_clip_config()`, without the `vision_model.` prefix."""
    from transformers import CLIPVisionModel

    with torch.device("meta"):
        model = CLIPVisionModel(tiny_clip_config())
    return randomize({k.removeprefix("vision_model."): v for k, v in _meta_shapes(model).items()}, seed)


# ------------------------------------------------------------------------------------- tokenizer

_SYLLABLES = ("ka", "to", "ri", "mu", "sen", "la", "vo", "pe", "di", "an", "or", "qu", "zi", "bel", "ch",
              "ne", "fa", "go", "hu", "ix", "el", "wa", "ro", "sy", "th", "ing", "str", "ea")
_WORDS = ("a", "the", "cat", "dog", "video", "of", "in", "on", "at", "walks", "runs", "beach", "sunset",
          "ocean", "camera", "slowly", "red", "blue", "green", "light", "city", "night", "café", "naïve",
          "Ｆｕｌｌ", "①", "½", "東京", "日本語", "ﬁne")


def _tiny_corpus(seed: int, lines: int = 600) -> list[str]:
    rng = random.Random(seed)
    made = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    words = list(_WORDS) + made
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + rng.choice((".", ",", "!", "?", ""))
            for _ in range(lines)]


def tiny_spiece_model(seed: int = TINY_SEED, vocab_size: int = TINY_VOCAB) -> bytes:
    """A serialized SentencePiece unigram model with the umT5 ids (pad 0, eos 1, unk 2, no bos).

    Trained in-process on a seeded synthetic corpus (single thread, so the bytes are reproducible)
    with the NFKC normaliser that umT5 uses; at most `vocab_size` pieces.
    """
    import sentencepiece

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_tiny_corpus(seed)), model_writer=buffer, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return buffer.getvalue()


def spiece_tensor(model: bytes) -> torch.Tensor:
    """The serialized tokenizer as ComfyUI stores it: a 1-D uint8 tensor named `spiece_model`."""
    return torch.frombuffer(bytearray(model), dtype=torch.uint8)


# ------------------------------------------------------------------------------------- ComfyUI files

def comfy_clip_tensors(weights: Mapping[str, torch.Tensor], seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """CLIP vision weights in ComfyUI's clip_vision_h layout: `vision_model.` + transformers names, plus
    the unprefixed `visual_projection.weight` (random; Wan does not use the projection)."""
    width = weights["embeddings.patch_embedding.weight"].shape[0]
    out = {"vision_model." + key: tensor.contiguous() for key, tensor in weights.items()}
    out["visual_projection.weight"] = random_tensor("visual_projection.weight", (tiny_clip_config().projection_dim,
                                                                                  width), seed)
    return out


def write_tiny_model_set(directory: str | os.PathLike, seed: int = TINY_SEED, model_type: str = "i2v",
                         dtype: torch.dtype = torch.float16) -> dict[str, str]:
    """Write one ComfyUI-style file per tiny model and return {"dit", "vae", "t5", "clip_vision": path}.

    Layout: diffusion_models/wan2.1_<type>_tiny_<dtype>.safetensors (official keys),
    vae/wan_2.1_vae_tiny.safetensors (official keys), text_encoders/umt5_xxl_tiny_<dtype>.safetensors
    (transformers names + `spiece_model`), clip_vision/clip_vision_tiny.safetensors
    (`vision_model.` names). fp16 and bf16 hold the tiny weights exactly.
    """
    from safetensors.torch import save_file

    suffix = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]
    root = os.fspath(directory)
    t5 = tiny_t5_state_dict(seed)
    t5["spiece_model"] = spiece_tensor(tiny_spiece_model(seed))
    files = {
        "dit": (os.path.join(root, "diffusion_models", f"wan2.1_{model_type}_tiny_{suffix}.safetensors"),
                tiny_dit_state_dict(model_type, seed)),
        "vae": (os.path.join(root, "vae", "wan_2.1_vae_tiny.safetensors"), tiny_vae_state_dict(seed)),
        "t5": (os.path.join(root, "text_encoders", f"umt5_xxl_tiny_{suffix}.safetensors"), t5),
        "clip_vision": (os.path.join(root, "clip_vision", "clip_vision_tiny.safetensors"),
                        comfy_clip_tensors(tiny_clip_state_dict(seed), seed)),
    }
    paths = {}
    for kind, (path, tensors) in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_file({k: v if not v.is_floating_point() else v.to(dtype).contiguous() for k, v in tensors.items()},
                  path)
        paths[kind] = path
    return paths


def main(argv: list[str] | None = None) -> None:
    """`python -m wan21_core.tiny DIRECTORY [--type i2v|t2v|flf2v]`: write the tiny model set."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m wan21_core.tiny", description=main.__doc__)
    parser.add_argument("directory")
    parser.add_argument("--type", default="i2v", choices=("t2v", "i2v", "flf2v"))
    parser.add_argument("--seed", type=int, default=TINY_SEED)
    args = parser.parse_args(argv)
    for kind, path in write_tiny_model_set(args.directory, args.seed, args.type).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()

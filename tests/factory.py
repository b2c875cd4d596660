"""Fixture factory: the SAME tiny random Wan2.1 weights written in every real checkpoint format.

Weights come from `wan21_core.tiny` (canonical names: official for the DiT and VAE, transformers
for umT5 and CLIP; every value exact in fp16 and bf16).
They are written the way each real distribution writes them:
- official release folder: `config.json` + sharded `diffusion_pytorch_model-0000x-of-00002`
  safetensors + index (DiT), `Wan2.1_VAE.pth`, `models_t5_umt5-xxl-enc-bf16.pth` (bf16) with the
  tokenizer in `google/umt5-xxl/`, `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`
  (fp16, `visual.*` plus a tiny XLM-R `textual.*` tower and `log_scale`);
- ComfyUI repackaged single files: DiT fp32 / fp16 / bf16 with the `model.diffusion_model.`
  prefix / plain fp8_e4m3fn / scaled fp8 (per-layer `scale_weight` and `scale_input`, fp8 biases,
  the `scaled_fp8` marker), umT5 fp16 and scaled fp8 (transformers names + `spiece_model`, no
  `scale_input`), clip_vision_h layout, VAE fp16;
- a diffusers pipeline folder written by diffusers' own converters and `save_pretrained`
  (transformer/, vae/) and by transformers' `save_pretrained` (text_encoder/, image_encoder/),
  plus tokenizer/spiece.model and model_index.json.

Use the session fixture `checkpoint_set` (import it into a test module) or call
`build_checkpoint_set(directory)`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest
import torch
from safetensors.torch import save_file

from wan21_core import tiny
from official_layouts import clip_to_official, t5_to_official
from wan21_core.checkpoints.fp8 import quantize

FP8 = torch.float8_e4m3fn
RELEASE_T5 = "models_t5_umt5-xxl-enc-bf16.pth"
RELEASE_CLIP = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
RELEASE_VAE = "Wan2.1_VAE.pth"


@dataclass
class CheckpointSet:
    """Paths of every written format, and the canonical-named reference weights they all hold.

    dit[name], vae[name], t5[name], clip[name]: path of format `name`. reference[kind]: float32
    canonical-named state dict ("dit_i2v", "dit_t2v", "dit_flf2v", "vae", "t5", "clip").
    spiece: the tiny tokenizer bytes. root: the directory.
    """

    root: str
    reference: dict = field(default_factory=dict)
    spiece: bytes = b""
    dit: dict = field(default_factory=dict)
    vae: dict = field(default_factory=dict)
    t5: dict = field(default_factory=dict)
    clip: dict = field(default_factory=dict)


def build_checkpoint_set(root: str, seed: int = tiny.TINY_SEED) -> CheckpointSet:
    out = CheckpointSet(root=root, spiece=tiny.tiny_spiece_model(seed))
    flf2v = tiny.tiny_dit_state_dict("flf2v", seed)
    # Weights are drawn per key, so the i2v model is the flf2v one without its position embedding.
    out.reference = {"dit_flf2v": flf2v, "dit_i2v": {k: v for k, v in flf2v.items() if k != "img_emb.emb_pos"},
                     "dit_t2v": tiny.tiny_dit_state_dict("t2v", seed)}
    out.reference.update(vae=tiny.tiny_vae_state_dict(seed), t5=tiny.tiny_t5_state_dict(seed),
                         clip=tiny.tiny_clip_state_dict(seed))
    _write_official_release(out, os.path.join(root, "official_i2v"))
    _write_comfy_files(out, os.path.join(root, "comfy"))
    _write_diffusers_pipeline(out, os.path.join(root, "diffusers_i2v"))
    return out


@pytest.fixture(scope="session")
def checkpoint_set(tmp_path_factory) -> CheckpointSet:
    """Every format of the tiny weights, written once per test session."""
    return build_checkpoint_set(str(tmp_path_factory.mktemp("wan21_checkpoints")))


# ------------------------------------------------------------------------------------- official

def _write_official_release(out: CheckpointSet, folder: str) -> None:
    os.makedirs(os.path.join(folder, "google", "umt5-xxl"), exist_ok=True)
    dit = out.reference["dit_i2v"]
    keys = sorted(dit)
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "diffusion_pytorch_model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, part in shards.items():
        save_file({k: dit[k] for k in part}, os.path.join(folder, name))
    weight_map = {k: name for name, part in shards.items() for k in part}
    _write_json(os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json"),
                {"metadata": {"total_size": sum(t.numel() * 4 for t in dit.values())}, "weight_map": weight_map})
    config = tiny.tiny_dit_config("i2v")
    _write_json(os.path.join(folder, "config.json"), {
        "_class_name": "WanModel", "_diffusers_version": "0.30.0", "model_type": "i2v", "in_dim": config.in_dim,
        "out_dim": config.out_dim, "dim": config.dim, "ffn_dim": config.ffn_dim, "freq_dim": config.freq_dim,
        "num_heads": config.num_heads, "num_layers": config.num_layers, "text_len": 512, "eps": 1e-6})
    torch.save(out.reference["vae"], os.path.join(folder, RELEASE_VAE))
    torch.save({k: v.to(torch.bfloat16) for k, v in t5_to_official(out.reference["t5"]).items()},
               os.path.join(folder, RELEASE_T5))
    with open(os.path.join(folder, "google", "umt5-xxl", "spiece.model"), "wb") as handle:
        handle.write(out.spiece)
    clip = {f"visual.{k}": v.to(torch.float16) for k, v in clip_to_official(out.reference["clip"]).items()}
    clip.update(_xlmr_text_tower())
    torch.save(clip, os.path.join(folder, RELEASE_CLIP))
    out.dit.update(official_index=os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json"),
                   official_shard=os.path.join(folder, "diffusion_pytorch_model-00002-of-00002.safetensors"),
                   official_folder=folder)
    out.vae.update(official=os.path.join(folder, RELEASE_VAE), official_folder=folder)
    out.t5.update(official=os.path.join(folder, RELEASE_T5), official_folder=folder)
    out.clip.update(official=os.path.join(folder, RELEASE_CLIP), official_folder=folder)


def _xlmr_text_tower() -> dict:
    """A tiny stand-in for the unused XLM-R text tower of the official CLIP .pth (keys look like T5's)."""
    shapes = {"textual.token_embedding.weight": (16, 8), "textual.type_embedding.weight": (1, 8),
              "textual.pos_embedding.weight": (18, 8), "textual.norm.weight": (8,), "textual.norm.bias": (8,),
              "textual.blocks.0.attn.q.weight": (8, 8), "textual.blocks.0.attn.q.bias": (8,),
              "textual.blocks.0.ffn.0.weight": (16, 8), "textual.head.0.weight": (8, 8), "log_scale": ()}
    return {k: v.to(torch.float16) for k, v in tiny.randomize(shapes).items()}


# ------------------------------------------------------------------------------------- ComfyUI

def _write_comfy_files(out: CheckpointSet, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    dit = out.reference["dit_i2v"]
    files = {
        "comfy_fp32": ("wan2.1_i2v_tiny_fp32.safetensors", dit),
        "comfy_fp16": ("wan2.1_i2v_tiny_fp16.safetensors", _cast(dit, torch.float16)),
        "comfy_bf16_prefixed": ("wan2.1_i2v_tiny_bf16.safetensors",
                                {f"model.diffusion_model.{k}": v for k, v in _cast(dit, torch.bfloat16).items()}),
        "comfy_fp8_e4m3fn": ("wan2.1_i2v_tiny_fp8_e4m3fn.safetensors", _plain_fp8(dit)),
        "comfy_fp8_scaled": ("wan2.1_i2v_tiny_fp8_scaled.safetensors", _scaled_fp8(dit, scale_input=True)),
        "t2v_fp16": ("wan2.1_t2v_tiny_fp16.safetensors", _cast(out.reference["dit_t2v"], torch.float16)),
        "flf2v_fp16": ("wan2.1_flf2v_tiny_fp16.safetensors", _cast(out.reference["dit_flf2v"], torch.float16)),
    }
    for name, (filename, tensors) in files.items():
        out.dit[name] = _save(folder, filename, tensors)
    out.vae["comfy_fp16"] = _save(folder, "wan_2.1_vae_tiny.safetensors", _cast(out.reference["vae"], torch.float16))
    t5 = out.reference["t5"]
    spiece = tiny.spiece_tensor(out.spiece)
    out.t5["comfy_fp16"] = _save(folder, "umt5_xxl_tiny_fp16.safetensors",
                                 {**_cast(t5, torch.float16), "spiece_model": spiece})
    out.t5["comfy_fp8_scaled"] = _save(folder, "umt5_xxl_tiny_fp8_e4m3fn_scaled.safetensors",
                                       {**_scaled_fp8(t5, scale_input=False), "spiece_model": spiece})
    clip = tiny.comfy_clip_tensors(out.reference["clip"])
    out.clip["comfy_fp16"] = _save(folder, "clip_vision_h_tiny.safetensors", _cast(clip, torch.float16))


def _cast(tensors: dict, dtype: torch.dtype) -> dict:
    return {k: v.to(dtype).contiguous() for k, v in tensors.items()}


def _linear_weights(tensors: dict) -> list[str]:
    """The 2-D `.weight` tensors: every Linear layer (ComfyUI quantises all its Linear layers)."""
    return [k for k, v in tensors.items() if k.endswith(".weight") and v.dim() == 2
            and not k.endswith(("shared.weight", "relative_attention_bias.weight"))]


def _plain_fp8(tensors: dict) -> dict:
    """Linear weights cast to fp8_e4m3fn (no scale), everything else fp16."""
    linear = set(_linear_weights(tensors))
    return {k: v.to(FP8 if k in linear else torch.float16) for k, v in tensors.items()}


def _scaled_fp8(tensors: dict, scale_input: bool) -> dict:
    """ComfyUI's scaled fp8, as its `scaled_fp8_ops` Linear layers save themselves: fp8 weight and
    float32 `scale_weight`, the bias cast to fp8 unscaled (the layer is built in the storage dtype),
    everything else fp16. The `scaled_fp8` marker has 2 elements when there is no `scale_input`
    (ComfyUI then turns its fp8 matmul off) and none when every layer has one."""
    out = _cast(tensors, torch.float16)
    for key in _linear_weights(tensors):
        module = key[: -len("weight")]
        out[key], out[module + "scale_weight"] = quantize(tensors[key], FP8)
        if module + "bias" in tensors:
            out[module + "bias"] = tensors[module + "bias"].to(FP8)
        if scale_input:
            out[module + "scale_input"] = torch.tensor(0.75)   # ignored unless fp8 matmul; any value works
    out["scaled_fp8"] = torch.empty(0 if scale_input else 2, dtype=FP8)
    return out


# ------------------------------------------------------------------------------------- diffusers

def _write_diffusers_pipeline(out: CheckpointSet, folder: str) -> None:
    """A WanImageToVideoPipeline-style folder, written by diffusers / transformers themselves."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers, convert_wan_vae_to_diffusers
    from transformers import CLIPVisionModel, UMT5EncoderModel

    _save_pretrained(lambda: WanTransformer3DModel(**_diffusers_dit_config("i2v")),
                     convert_wan_transformer_to_diffusers(dict(out.reference["dit_i2v"])),
                     os.path.join(folder, "transformer"))
    flf2v = convert_wan_transformer_to_diffusers(dict(out.reference["dit_flf2v"]))
    # diffusers' converter (0.42.1) leaves the FLF2V position embedding under its official name.
    flf2v["condition_embedder.image_embedder.pos_embed"] = flf2v.pop("img_emb.emb_pos")
    _save_pretrained(lambda: WanTransformer3DModel(**_diffusers_dit_config("flf2v")), flf2v,
                     os.path.join(out.root, "diffusers_flf2v", "transformer"))
    vae_config = tiny.tiny_vae_config()
    _save_pretrained(lambda: AutoencoderKLWan(base_dim=vae_config.base_dim, z_dim=vae_config.z_dim),
                     convert_wan_vae_to_diffusers(dict(out.reference["vae"])), os.path.join(folder, "vae"))
    t5 = {**out.reference["t5"], "encoder.embed_tokens.weight": out.reference["t5"]["shared.weight"]}
    _save_pretrained(lambda: UMT5EncoderModel(tiny.tiny_t5_config()), t5, os.path.join(folder, "text_encoder"))
    _save_pretrained(lambda: CLIPVisionModel(tiny.tiny_clip_config()), out.reference["clip"],
                     os.path.join(folder, "image_encoder"))
    os.makedirs(os.path.join(folder, "tokenizer"), exist_ok=True)
    with open(os.path.join(folder, "tokenizer", "spiece.model"), "wb") as handle:
        handle.write(out.spiece)
    _write_json(os.path.join(folder, "model_index.json"), {
        "_class_name": "WanImageToVideoPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"], "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"], "image_encoder": ["transformers", "CLIPVisionModel"]})
    out.dit.update(diffusers_pipeline=folder, diffusers_transformer=os.path.join(folder, "transformer"),
                   diffusers_flf2v=os.path.join(out.root, "diffusers_flf2v", "transformer"))
    out.vae.update(diffusers_pipeline=folder, diffusers=os.path.join(folder, "vae"))
    out.t5.update(diffusers_pipeline=folder, diffusers=os.path.join(folder, "text_encoder"))
    out.clip.update(diffusers_pipeline=folder, diffusers=os.path.join(folder, "image_encoder"))


def _diffusers_dit_config(model_type: str) -> dict:
    c = tiny.tiny_dit_config(model_type)
    config = dict(patch_size=c.patch_size, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
                  in_channels=c.in_dim, out_channels=c.out_dim, text_dim=c.text_dim, freq_dim=c.freq_dim,
                  ffn_dim=c.ffn_dim, num_layers=c.num_layers, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=c.eps)
    if c.has_image_input:
        config.update(image_dim=c.img_dim, added_kv_proj_dim=c.dim)
    if model_type == "flf2v":
        config.update(pos_embed_seq_len=c.image_tokens)
    return config


def _save_pretrained(build, state: dict, folder: str) -> None:
    """Build the library's model on the meta device, adopt `state` strictly (so a wrong conversion
    fails here), then let the library write its own format."""
    with torch.device("meta"):
        model = build()
    model.load_state_dict(state, strict=True, assign=True)
    model.save_pretrained(folder)


# ------------------------------------------------------------------------------------- helpers

def _save(folder: str, filename: str, tensors: dict) -> str:
    path = os.path.join(folder, filename)
    save_file(tensors, path)
    return path


def _write_json(path: str, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)

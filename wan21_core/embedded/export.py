"""Wan2.1-tiny's trained networks written as ComfyUI-style single safetensors files (`builtin.FILES`),
each carrying the training summary in its metadata, plus the summary as JSON beside them."""
from __future__ import annotations

import json
import os
from typing import Mapping

import torch

from ..tiny import comfy_clip_tensors, spiece_tensor
from .builtin import DEMO_IMAGE, FILES, SUMMARY_FILE
from .world import demo_scene, render_clip

STORED_DTYPE = torch.float16
METADATA_KEY = "wan2.1_tiny_training"


def model_set_tensors(dit, vae, text_encoder, image_encoder, spiece_model: bytes) -> dict[str, dict[str, torch.Tensor]]:
    """{kind: tensors} in the layouts of the released ComfyUI files.

    dit: a `WanModel` (official names); vae: a `WanVAE` (official names); text_encoder: a transformers
    `UMT5EncoderModel` (its tied embedding once, as `shared.weight`, and the tokenizer as
    `spiece_model`); image_encoder: a transformers `CLIPVisionModel` (`vision_model.` names).
    """
    text = {k: v for k, v in text_encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}
    text["spiece_model"] = spiece_tensor(spiece_model)
    vision = {k.removeprefix("vision_model."): v for k, v in image_encoder.state_dict().items()}
    return {"dit": dict(dit.state_dict()), "vae": dict(vae.state_dict()), "t5": text,
            "clip_vision": comfy_clip_tensors(vision)}


def write_model_set(directory: str, tensors: Mapping[str, Mapping[str, torch.Tensor]], summary: dict) -> dict[str, str]:
    """Write each kind's tensors (floating ones as fp16) to `directory`/FILES[kind] with the summary in
    the metadata, and the summary to `directory`/SUMMARY_FILE; returns {kind: path}."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    text = json.dumps(summary, sort_keys=True)
    paths = {}
    for kind, state in tensors.items():
        path = os.path.join(directory, FILES[kind])
        stored = {k: (v.detach().to(STORED_DTYPE) if v.is_floating_point() else v).contiguous().cpu()
                  for k, v in state.items()}
        save_file(stored, path, metadata={METADATA_KEY: text})
        paths[kind] = path
    with open(os.path.join(directory, SUMMARY_FILE), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return paths


def parameter_count(tensors: Mapping[str, torch.Tensor]) -> int:
    """Number of floating-point values (the tokenizer bytes are not parameters)."""
    return sum(v.numel() for v in tensors.values() if v.is_floating_point())


def write_demo_image(path: str = DEMO_IMAGE, size: int = 96) -> str:
    """The demo's start image: the first frame of `world.demo_scene()` as a PNG."""
    from PIL import Image

    frame = render_clip(demo_scene(), frames=1, size=size)[0]                        # [H, W, 3] in 0..1
    Image.fromarray(frame.mul(255).round().to(torch.uint8).numpy()).save(path)
    return path

"""Where Wan2.1-tiny's files live and the settings it was trained for (imports nothing heavy).

The four files are ComfyUI-style single safetensors in `weights/` beside this module: the i2v DiT
and the VAE in the official key names, the umT5 encoder in transformers names with its SentencePiece
model as `spiece_model`, the CLIP vision tower as `vision_model.` + transformers names. They load
with the same loaders as the released checkpoints; the nodes offer them as `BUILTIN_NAME`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

BUILTIN_NAME = "wan2.1-tiny (built-in)"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
FILES = {   # model kind (as in the loaders and the nodes) -> file name in WEIGHTS_DIR
    "dit": "wan2.1_tiny_i2v_fp16.safetensors",
    "vae": "wan2.1_tiny_vae_fp16.safetensors",
    "t5": "umt5_tiny_fp16.safetensors",
    "clip_vision": "clip_vision_tiny_fp16.safetensors",
}
SUMMARY_FILE = "wan2.1_tiny_training.json"
DEMO_IMAGE = os.path.join(WEIGHTS_DIR, "demo_start.png")


@dataclass(frozen=True)
class DemoSettings:
    """What `python -m wan21_core demo` does by default: the trained size and length, a held-out start
    image (`DEMO_IMAGE`, a scene the model never saw) and a prompt of the trained templates."""

    prompt: str = "the red circle moves to the right"
    size: int = 96
    frames: int = 25
    steps: int = 20
    guidance: float = 4.0
    shift: float = 3.0
    solver: str = "unipc"


DEMO = DemoSettings()


def builtin_path(kind: str) -> str:
    """Path of the built-in file of `kind` ("dit", "vae", "t5" or "clip_vision")."""
    if kind not in FILES:
        raise ValueError(f"builtin_path: kind {kind!r} has no built-in model; expected one of {', '.join(FILES)}")
    path = os.path.join(WEIGHTS_DIR, FILES[kind])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"builtin_path: {path} is missing; this checkout has no Wan2.1-tiny weights "
                                f"(train them with `python -m wan21_core.embedded train DIR`)")
    return path


def builtin_available() -> bool:
    """Whether this checkout holds all four built-in files (until Wan2.1-tiny is trained and
    committed, it does not: the demo then runs on random weights and the loaders do not offer it)."""
    return all(os.path.isfile(os.path.join(WEIGHTS_DIR, name)) for name in FILES.values())


def builtin_paths() -> dict[str, str]:
    """{kind: path} of all four built-in files."""
    return {kind: builtin_path(kind) for kind in FILES}


def training_summary() -> dict:
    """The JSON summary written with the weights (command, sizes, steps, wall times, final losses)."""
    with open(os.path.join(WEIGHTS_DIR, SUMMARY_FILE), encoding="utf-8") as handle:
        return json.load(handle)

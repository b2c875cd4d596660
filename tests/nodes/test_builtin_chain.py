"""The wan21_tiny_demo workflow's node chain, run in-process without ComfyUI, gives exactly the frames of
`python -m wan21_core demo` (`wan21_core.cli.main`), at a small size and few steps to stay fast.

Every node input comes from the committed API workflow (loaders, dtypes, prompts, guidance, shift, solver),
except the clip size, length, steps and seed, which both sides get smaller here. The full-size workflow runs
in a real ComfyUI in tests/integration/test_tiny_demo.py.
"""
from __future__ import annotations

import json
import os

import torch

from builtin_weights import needs_builtin
from node_helpers import run
from wan21_core import cli
from wan21_core.embedded.builtin import DEMO_IMAGE
from wan21_core.media import video as video_io
from wan21_core.media.images import to_image_batch

pytestmark = needs_builtin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOW = os.path.join(ROOT, "workflows", "api", "wan21_tiny_demo.api.json")
SIZE, FRAMES, STEPS, SEED = 32, 5, 2, 3
SMALL = {"WanFusionConditioning": {"width": SIZE, "height": SIZE, "length": FRAMES},
         "WanSampler": {"steps": STEPS, "seed": SEED}}


def run_prompt(pack, prompt: dict, image: torch.Tensor, until: str = "WanVAEDecode") -> torch.Tensor:
    """Execute an API-format prompt with the pack's node classes up to its `until` node (first output);
    LoadImage gives `image`."""
    results = {}

    def outputs(node_id: str) -> tuple:
        if node_id not in results:
            node = prompt[node_id]
            if node["class_type"] == "LoadImage":
                results[node_id] = (image, None)
            else:
                inputs = {name: outputs(value[0])[value[1]] if isinstance(value, list) else value
                          for name, value in node["inputs"].items()}
                results[node_id] = run(pack, node["class_type"], **inputs)
        return results[node_id]

    (target,) = [i for i, node in prompt.items() if node["class_type"] == until]
    return outputs(target)[0]


def cli_frames(tmp_path, monkeypatch) -> torch.Tensor:
    """The float frames `python -m wan21_core demo` writes as PNGs, with the small settings."""
    captured = []
    write_png_frames = video_io.write_png_frames
    monkeypatch.setattr(video_io, "write_png_frames",
                        lambda frames, directory: captured.append(frames) or write_png_frames(frames, directory))
    code = cli.main(["demo", "--width", str(SIZE), "--height", str(SIZE), "--frames", str(FRAMES), "--steps",
                     str(STEPS), "--seed", str(SEED), "--out", str(tmp_path / "demo.mp4"),
                     "--frames-dir", str(tmp_path / "frames")])
    assert code == 0 and len(captured) == 1
    return captured[0]


def test_tiny_demo_nodes_give_the_command_line_frames(pack, tmp_path, monkeypatch):
    with open(WORKFLOW, encoding="utf-8") as handle:
        prompt = json.load(handle)
    for node in prompt.values():
        node["inputs"].update(SMALL.get(node["class_type"], {}))
    frames = run_prompt(pack, prompt, to_image_batch(DEMO_IMAGE, "image"))
    expected = cli_frames(tmp_path, monkeypatch)
    assert frames.shape == expected.shape == (FRAMES, SIZE, SIZE, 3)
    assert torch.isfinite(frames).all() and frames.std() > 0
    assert torch.equal(frames, expected), f"max difference {(frames - expected).abs().max().item():.3e}"

"""The wan21_tiny_demo workflow in a real ComfyUI gives the clip of `python -m wan21_core demo`.

The server has empty model folders: the four loaders read the built-in Wan2.1-tiny shipped in the pack.
The API workflow runs exactly as committed; only its start image, the pack's demo_start.png, is copied
into ComfyUI's input folder under the name its LoadImage asks for. The command line runs in this process
(`wan21_core.cli.main`, the workflow's seed) and its float frames are taken on their way to the PNGs.

Comparison: SaveVideo stores H.264 (yuv420p, libx264 defaults, 8-bit values cut by truncation), which
costs far more than any numerical difference would. So the command line's frames are encoded by
ComfyUI's own code (`VideoFromComponents.save_to`, what CreateVideo + SaveVideo run) in ComfyUI's
interpreter, and the two decoded videos must be equal to the last bit (tolerance 0): equal frames give
the same stream. The codec's cost against the command line's PNG frames is only printed.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from builtin_weights import needs_builtin
from graphs import combo_options, read_pngs, read_video_frames, saved_files, video_info
from wan21_core import cli
from wan21_core.embedded import BUILTIN_NAME, DEMO
from wan21_core.embedded.builtin import DEMO_IMAGE
from wan21_core.media import video as video_io

pytestmark = needs_builtin

API = Path(__file__).resolve().parents[2] / "workflows" / "api" / "wan21_tiny_demo.api.json"
LOADERS = {"WanDiTLoader": "dit_name", "WanT5Loader": "t5_name", "WanImageEncoderLoader": "clip_name",
           "WanVAELoader": "vae_name"}
# Runs in ComfyUI's interpreter (cwd = the ComfyUI tree): argv = frames .npy, output .mp4, fps.
SAVE_LIKE_COMFY = (
    "import sys\nfrom fractions import Fraction\nimport numpy as np, torch\n"
    "from comfy_api.latest._input_impl.video_types import VideoFromComponents\n"
    "from comfy_api.latest._util import VideoCodec, VideoComponents, VideoContainer\n"
    "frames = torch.from_numpy(np.load(sys.argv[1]))\n"
    "video = VideoFromComponents(VideoComponents(images=frames, audio=None, frame_rate=Fraction(float(sys.argv[3]))))\n"
    "video.save_to(sys.argv[2], format=VideoContainer.AUTO, codec=VideoCodec.AUTO)\n")


@pytest.fixture(scope="module")
def bare_comfy(comfy_factory):
    """A ComfyUI server with this pack and empty model folders."""
    return comfy_factory()


def _only(prompt: dict, class_type: str) -> tuple[str, dict]:
    (item,) = [(i, n) for i, n in prompt.items() if n["class_type"] == class_type]
    return item


def test_loaders_offer_the_builtin_model_with_empty_model_folders(bare_comfy):
    for node, name_input in LOADERS.items():
        listed = combo_options(bare_comfy.object_info(node)["input"]["required"][name_input])
        assert listed == [BUILTIN_NAME], (node, listed)


def run_cli_demo(out_dir: Path, seed: int, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """`python -m wan21_core demo` in this process: (its float frames [F, H, W, 3], its PNG frames uint8)."""
    captured = []
    write_png_frames = video_io.write_png_frames

    def keep_frames(frames, directory):
        captured.append(frames.detach().float().cpu().numpy())
        return write_png_frames(frames, directory)

    monkeypatch.setattr(video_io, "write_png_frames", keep_frames)
    code = cli.main(["demo", "--image", DEMO_IMAGE, "--seed", str(seed), "--out", str(out_dir / "cli.mp4"),
                     "--frames-dir", str(out_dir / "cli_frames")])
    assert code == 0 and len(captured) == 1
    return captured[0], read_pngs(list((out_dir / "cli_frames").glob("*.png")))


def encode_like_save_video(install, frames: np.ndarray, path: Path, fps: float) -> Path:
    """`frames` saved by ComfyUI's CreateVideo + SaveVideo code, run in ComfyUI's interpreter."""
    np.save(path.with_suffix(".npy"), frames)
    done = subprocess.run([install.python, "-c", SAVE_LIKE_COMFY, str(path.with_suffix(".npy")), str(path), str(fps)],
                          cwd=install.path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def test_tiny_demo_workflow_gives_the_command_line_clip(bare_comfy, tmp_path, monkeypatch):
    prompt = json.loads(API.read_text(encoding="utf-8"))
    _, image = _only(prompt, "LoadImage")
    _, sampler = _only(prompt, "WanSampler")
    _, create = _only(prompt, "CreateVideo")
    saver_id, _ = _only(prompt, "SaveVideo")
    shutil.copyfile(DEMO_IMAGE, bare_comfy.input_dir / image["inputs"]["image"])

    began = time.monotonic()
    outputs = bare_comfy.run(prompt, timeout=900)
    print(f"wan21_tiny_demo ran in ComfyUI in {time.monotonic() - began:.1f} s")
    (saved,) = saved_files(bare_comfy, outputs, saver_id)
    assert video_info(saved) == (DEMO.frames, DEMO.size, DEMO.size)

    frames, pngs = run_cli_demo(tmp_path, sampler["inputs"]["seed"], monkeypatch)
    assert frames.shape == pngs.shape == (DEMO.frames, DEMO.size, DEMO.size, 3)
    reference = encode_like_save_video(bare_comfy.install, frames, tmp_path / "cli_as_comfy.mp4",
                                       create["inputs"]["fps"])
    ours, expected = read_video_frames(saved).astype(np.int16), read_video_frames(reference).astype(np.int16)
    codec = np.abs(ours - pngs)
    print(f"SaveVideo's H.264 against the command line's PNG frames: max {codec.max()}, mean {codec.mean():.2f}")
    assert ours.shape == expected.shape and ours.std() > 0
    difference = np.abs(ours - expected)
    assert difference.max() == 0, (f"{np.count_nonzero(difference)} of {difference.size} values differ, "
                                   f"max {difference.max()}, mean {difference.mean():.4f}")

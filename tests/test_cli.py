"""Command line (`python -m wan21_core`): the tiny-model demo, i2v with model files, and bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from media_helpers import read_video
from wan21_core import cli, tiny
from wan21_core.embedded import DEMO, builtin_available
from wan21_core.embedded.builtin import DEMO_IMAGE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wan21_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict:
    return tiny.write_tiny_model_set(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("images") / "start.png"
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def i2v_args(model_files: dict, image: str, out: str, *extra: str) -> list[str]:
    return ["i2v", "--image", image, "--dit", model_files["dit"], "--vae", model_files["vae"],
            "--t5", model_files["t5"], "--clip", model_files["clip_vision"], "--device", "cpu",
            "--out", out, *extra]


def test_demo_writes_an_mp4_png_frames_and_a_webp(tmp_path):
    out, frames_dir, webp = tmp_path / "demo.mp4", tmp_path / "frames", tmp_path / "demo.webp"
    result = run_module("demo", "--frames", "5", "--steps", "2", "--out", str(out),
                        "--frames-dir", str(frames_dir), "--webp", str(webp))
    assert result.returncode == 0, result.stderr
    label = "Wan2.1-tiny (built-in)" if builtin_available() else "random-weight tiny models"
    assert f"{label}: {DEMO.prompt!r}, 5 frames, 2 steps, seed 0" in result.stdout
    assert ("RANDOM weights" in result.stdout) == (not builtin_available())
    assert "5 frames at 96x96" in result.stdout            # the bundled start image at the trained size
    for stage in ("load models:", "text encoder:", "image encoder:", "vae encode:", "sample:", "vae decode:", "done in"):
        assert stage in result.stdout
    video = read_video(out)
    assert video.shape == (5, 96, 96, 3)
    pngs = sorted(os.listdir(frames_dir))
    assert pngs == [f"frame_{i:05d}.png" for i in range(5)]
    stills = torch.stack([torch.from_numpy(np.array(Image.open(frames_dir / name))) for name in pngs]).float() / 255
    assert (video - stills).abs().mean() < 0.08             # H.264 holds the same frames, in order
    with Image.open(webp) as animation:
        assert animation.n_frames == 5 and animation.size == (96, 96)


def test_demo_defaults_are_the_trained_settings():
    args = cli.build_parser().parse_args(["demo"])
    assert (args.prompt, args.frames, args.steps, args.guidance, args.shift, args.solver) == \
        (DEMO.prompt, DEMO.frames, DEMO.steps, DEMO.guidance, DEMO.shift, DEMO.solver)
    assert args.max_area == DEMO.size ** 2 and args.image == DEMO_IMAGE and os.path.isfile(args.image)
    assert (args.device, args.out) == ("cpu", "demo.mp4")


def test_i2v_with_model_files_and_a_png(model_files, png, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    code = cli.main(i2v_args(model_files, png, str(out), "--frames", "5", "--steps", "1", "--width", "48",
                             "--height", "32", "--prompt", "a cat"))
    printed = capsys.readouterr().out
    assert code == 0
    assert "5 frames at 48x32" in printed and "load models:" in printed and "sample:" in printed
    assert read_video(out).shape == (5, 32, 48, 3)


def test_a_bad_frame_count_is_one_error_line_before_any_model_loads(png, tmp_path, capsys):
    missing = str(tmp_path / "absent.safetensors")           # never opened: the frame count fails first
    code = cli.main(i2v_args({"dit": missing, "vae": missing, "t5": missing, "clip_vision": missing}, png,
                             str(tmp_path / "x.mp4"), "--frames", "6"))
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: frames: expected 4n+1 (e.g. 5 or 9), found 6\n"


def test_a_missing_checkpoint_is_one_error_line(model_files, png, tmp_path, capsys):
    missing = str(tmp_path / "absent.safetensors")
    code = cli.main(i2v_args({**model_files, "dit": missing}, png, str(tmp_path / "x.mp4"), "--frames", "5"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and missing in err and "does not exist" in err and err.count("\n") == 1


def test_a_missing_image_is_one_error_line(model_files, tmp_path, capsys):
    code = cli.main(i2v_args(model_files, str(tmp_path / "none.png"), str(tmp_path / "x.mp4"), "--frames", "5"))
    assert code == 2
    assert capsys.readouterr().err == f"error: image: file not found: {tmp_path / 'none.png'}\n"


def test_the_module_entry_point_exits_non_zero_without_a_traceback():
    result = run_module("demo", "--frames", "6")
    assert result.returncode == 2
    assert result.stderr == "error: frames: expected 4n+1 (e.g. 5 or 9), found 6\n"
    assert "Traceback" not in result.stdout + result.stderr

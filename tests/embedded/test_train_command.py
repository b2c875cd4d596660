"""`python -m wan21_core.embedded train`: every stage on a tiny budget, ending in four ComfyUI-style files
that the public loaders read like released checkpoints, with the training summary in each."""
import json

import pytest
import torch
from safetensors import safe_open

from wan21_core import load_pipeline
from wan21_core.embedded.__main__ import main
from wan21_core.embedded.builtin import FILES, SUMMARY_FILE
from wan21_core.embedded.export import METADATA_KEY

TINY_RUN = ["--vae-steps", "2", "--vae-base-dim", "4", "--vae-crop", "32", "--vae-clip-size", "48", "--vae-batch", "1",
            "--decoder-steps", "2", "--decoder-batch", "1",
            "--dit-steps", "2", "--dit-scenes", "2", "--dit-variants", "1", "--dit-pans", "0", "--dit-batch", "2", "--dit-dim", "128",
            "--dit-layers", "1", "--dit-ffn", "256", "--dit-warmup", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    main(["train", str(root / "state"), "--out", str(root / "out"), *TINY_RUN])
    return root


def test_four_files_and_a_summary(trained, capsys):
    out = trained / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES.values(), SUMMARY_FILE, "demo_start.png"])
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["command"] == "python -m wan21_core.embedded train " + " ".join(
        [str(trained / "state"), "--out", str(out), *TINY_RUN])
    assert summary["vae"]["steps"] == summary["vae_decoder_refinement"]["steps"] == summary["dit"]["steps"] == 2
    assert summary["dit_data"]["clips"] == 4 and summary["dit"]["settings"]["dim"] == 128
    for name in FILES.values():
        with safe_open(str(out / name), "pt") as handle:
            assert json.loads(handle.metadata()[METADATA_KEY]) == summary
            floats = {handle.get_slice(k).get_dtype() for k in handle.keys() if k != "spiece_model"}
            assert floats == {"F16"}


def test_the_files_load_like_released_checkpoints_and_generate(trained):
    out = trained / "out"
    paths = {kind: str(out / name) for kind, name in FILES.items()}
    pipe = load_pipeline(paths["dit"], paths["vae"], paths["t5"], paths["clip_vision"], "cpu")
    assert pipe.dit.config.model_type == "i2v" and pipe.dit.config.dim == 128 and pipe.vae.config.base_dim == 4
    assert pipe.text_encoder.model.config.d_model == pipe.dit.config.text_dim
    frames = pipe(torch.rand(1, 96, 96, 3), "the red circle grows", frames=5, steps=2, width=96, height=96)
    assert frames.shape == (5, 96, 96, 3)


def test_running_again_resumes_and_writes_the_same_files(trained, tmp_path):
    main(["train", str(trained / "state"), "--out", str(tmp_path), *TINY_RUN])
    for name in FILES.values():
        with safe_open(str(tmp_path / name), "pt") as new, safe_open(str(trained / "out" / name), "pt") as old:
            assert all(torch.equal(new.get_tensor(k), old.get_tensor(k)) for k in old.keys())

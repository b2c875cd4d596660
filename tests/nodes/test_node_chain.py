"""The node pack as a whole, called directly without ComfyUI on tiny random models: the node declarations,
importing without ComfyUI, the whole chain through each node's `run`, the fusion's and the sampler's
refusals of bad inputs, and cancelling the sampler."""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

import pytest
import torch

from node_helpers import HEIGHT, LATENT, LENGTH, WIDTH, fuse, run, sample

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMFY_MODULES = ("comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "server", "execution",
                 "nodes", "latent_preview")


# ------------------------------------------------------------------------------------- declarations

def test_every_node_is_declared_for_the_frontend(pack):
    classes, display_names = pack.classes, pack.display_names
    assert len(classes) == 13 and set(display_names) == set(classes)
    for name, cls in classes.items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, (kind, *rest) in spec.get(section, {}).items():
                options = rest[0] if rest else {}
                assert options.get("tooltip", "").strip(), f"{name}.{input_name} has no tooltip"
        assert spec.get("hidden", {}).get("unique_id") == "UNIQUE_ID", name
        assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 20, name
        assert cls.CATEGORY == "Wan2.1", name
        assert display_names[name].startswith("Wan ") and len(display_names[name]) <= 28, display_names[name]
        assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES, name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), name
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES), name
        assert callable(getattr(cls, cls.FUNCTION)), name


class NoComfyUI(importlib.abc.MetaPathFinder):
    """Makes every ComfyUI module unimportable, as outside a ComfyUI install."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in COMFY_MODULES:
            raise ImportError(f"ComfyUI is not installed here ({name})")
        return None


def test_pack_imports_without_comfyui():
    """The node package imported the way ComfyUI imports a pack, with no ComfyUI module importable."""
    blocker, name = NoComfyUI(), "pack_without_comfyui"
    sys.meta_path.insert(0, blocker)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        adapter = sys.modules[f"{name}.nodes.comfy_adapter"]
        assert len(module.NODE_CLASS_MAPPINGS) == 13 and not adapter.IN_COMFY
    finally:
        sys.meta_path.remove(blocker)
        for loaded_name in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded_name]


# ------------------------------------------------------------------------------------- the chain

def test_whole_chain_runs_through_the_nodes(pack, loaded, encoded, fused, reference, tmp_path):
    text = encoded["positive"][0][0]
    assert text.shape == (1, 512, 4096) and text.dtype == torch.float32
    assert encoded["clip_vision_output"].penultimate_hidden_states.shape == (1, 257, 1280)
    positive, negative, latent = fused
    assert latent["samples"].shape == LATENT and not latent["samples"].any()
    samples = reference
    assert samples.shape == LATENT and samples.dtype == torch.float32 and torch.isfinite(samples).all()
    assert samples.abs().sum() > 0
    assert next(loaded["dit"].model.parameters()).device == pack.adapter.offload_device()    # "auto" goes back
    (frames,) = run(pack, "WanVAEDecode", samples={"samples": samples}, vae=loaded["vae"], tile_size=0)
    # IMAGE for CreateVideo: [F, H, W, 3] float32 in 0..1, F = 4(T-1)+1
    assert frames.shape == (LENGTH, HEIGHT, WIDTH, 3) and frames.dtype == torch.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert save_video_like_comfyui(frames, tmp_path / "clip.mp4", fps=16) == LENGTH


def save_video_like_comfyui(images: torch.Tensor, path, fps: int) -> int:
    """CreateVideo + SaveVideo's encoding (comfy_api/latest/_input_impl/video_types.py:256-295);
    returns the number of frames read back."""
    import av

    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = images.shape[2], images.shape[1], "yuv420p"
        for frame in images:
            rgb = (frame * 255).clamp(0, 255).byte().cpu().numpy()                  # [H, W, 3]
            output.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")))
        output.mux(stream.encode(None))
    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def test_same_seed_gives_the_same_latent(pack, loaded, fused, reference):
    assert torch.equal(sample(pack, loaded["dit"], *fused, seed=7), reference)
    assert not torch.allclose(sample(pack, loaded["dit"], *fused, seed=8), reference)


# ------------------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("overrides, message", [
    ({"length": 6}, r"4n\+1.*found 6"),
    ({"width": 40}, r"multiples of 16.*32x40"),
])
def test_fusion_refuses_bad_sizes(pack, loaded, encoded, start_image, overrides, message):
    with pytest.raises(ValueError, match=message):
        fuse(pack, encoded, loaded["vae"], start_image, **overrides)


def test_sampler_refuses_denoise_below_one_on_an_empty_latent(pack, loaded, fused):
    positive, negative, latent = fused
    with pytest.raises(ValueError, match=r"latent: .*empty"):
        sample(pack, loaded["dit"], positive, negative, latent, denoise=0.6)


# ------------------------------------------------------------------------------------- cancel

class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


def test_cancel_stops_the_sampler_within_a_step_and_offloads_the_dit(pack, loaded, fused, monkeypatch):
    adapter = pack.adapter
    dit = loaded["dit"]
    checks, forwards, moves = [], [], []

    def check_interrupt():
        checks.append(len(forwards))
        if len(checks) == 2:                         # the user presses Cancel during step 2
            raise Interrupted()

    # A compute device other than the offload device: record the handle's moves instead of making them.
    compute = torch.device("cuda")
    monkeypatch.setattr(adapter, "check_interrupt", check_interrupt)
    monkeypatch.setattr(adapter, "torch_device", lambda: compute)
    monkeypatch.setattr(dit.model, "to", lambda device, *a, **k: moves.append(torch.device(device)) or dit.model)
    hook = dit.model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    try:
        with pytest.raises(Interrupted):
            sample(pack, dit, *fused, steps=10, cfg_mode="batched")
    finally:
        hook.remove()
    assert 2 <= len(forwards) <= 3, f"{len(forwards)} DiT forwards after Cancel at step 2 of 10"
    assert moves == [compute, adapter.offload_device()]

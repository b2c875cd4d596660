"""Cascaded upscaler: network layout, tiling seams, cascade planning, file formats, frame runner."""
import math

import numpy as np
import pytest
import torch

from wan21_core.upscale import (Cascade, CompactConfig, CompactSR, UpscaleModelError,
                                load_cascade, load_stage, save_cascade, save_stage)
from wan21_core.upscale.cascade import ResizeStep, RunStep
from wan21_core.upscale.ensemble import ENSEMBLES, run_ensembled
from wan21_core.upscale.network import config_from_state_dict
from wan21_core.upscale.tiling import run_tiled, tile_starts
from wan21_core.upscale.upscaler import upscale_frames

spandrel = pytest.importorskip("spandrel")


def randomized(net: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Every parameter random (PReLU slopes and biases too), so no mapping error hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return net.eval()


def small_compact(scale: int = 2, feat: int = 8, conv: int = 2, seed: int = 0) -> CompactSR:
    return randomized(CompactSR(CompactConfig(scale=scale, num_feat=feat, num_conv=conv)), seed)


def random_esrgan(scale: int):
    from spandrel.architectures.ESRGAN import ESRGAN
    return randomized(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale), 3, 0.05)


def descriptor_of(net: torch.nn.Module):
    """What ComfyUI's UpscaleModelLoader hands over: spandrel's descriptor of a state dict."""
    return spandrel.ModelLoader().load_from_state_dict(net.state_dict())


def random_span():
    from spandrel.architectures.SPAN import SPAN
    return randomized(SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), 4, 0.05)


# --- network -------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 2, 4])
def test_compact_matches_spandrel_compact(scale):
    ours = small_compact(scale=scale, feat=12, conv=3)
    descriptor = spandrel.ModelLoader().load_from_state_dict(ours.state_dict())
    assert descriptor.architecture.id == "Compact" and descriptor.scale == scale
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        ref = descriptor.model(x)
        out = ours(x)
    assert out.shape == (2, 3, 17 * scale, 23 * scale)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_bad_state_dict():
    cfg = CompactConfig(scale=2, num_feat=10, num_conv=5)
    assert config_from_state_dict(CompactSR(cfg).state_dict()) == cfg
    with pytest.raises(ValueError, match="body.0.weight"):
        config_from_state_dict({"conv.weight": torch.zeros(1)})


# --- tiling --------------------------------------------------------------------------------

@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (33, 32, 8), (512, 128, 32),
                                                 (32, 32, 8), (1000, 200, 0)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    for a, b in zip(starts, starts[1:]):
        assert a + tile - b >= overlap


def test_tiling_is_exact_when_receptive_field_fits_the_blend_margin():
    # 4 convolutions: receptive-field radius 4 input pixels = overlap / 4
    stage = Cascade([small_compact(conv=2)]).stages[0]
    x = torch.rand(2, 3, 75, 61)
    full = stage.run(x)
    tiled = run_tiled(stage, x, tile=40, overlap=16, device=torch.device("cpu"))
    torch.testing.assert_close(tiled, full, rtol=0, atol=2e-6)


def test_tiling_seams_are_blended():
    # receptive field (radius 12) larger than the blend margin: small, smooth differences only
    stage = Cascade([small_compact(conv=10, seed=1)]).stages[0]
    x = torch.rand(1, 3, 80, 80)  # overlap 0: 2×2 tiles meeting at hard seams
    full = stage.run(x)
    blended = run_tiled(stage, x, tile=40, overlap=16, device=torch.device("cpu"))
    hard = run_tiled(stage, x, tile=40, overlap=0, device=torch.device("cpu"))
    err_blend, err_hard = (blended - full).abs(), (hard - full).abs()
    assert err_blend.max() < 0.5 * err_hard.max()
    assert err_blend.mean() < 0.25 * err_hard.mean()


# --- self-ensemble -------------------------------------------------------------------------

# (quarter turns, mirror first) of each copy, turned with numpy instead of the package's torch code
NUMPY_COPIES = {1: [(0, False)], 2: [(0, False), (0, True)], 4: [(k, False) for k in range(4)],
                8: [(k, flip) for flip in (False, True) for k in range(4)]}


def _numpy_turn(a, k: int, flip: bool):
    return np.rot90(a[..., ::-1] if flip else a, k, axes=(-2, -1)).copy()


def _numpy_turn_back(a, k: int, flip: bool):
    a = np.rot90(a, -k, axes=(-2, -1))
    return (a[..., ::-1] if flip else a).copy()


@pytest.mark.parametrize("size", sorted(ENSEMBLES))
def test_self_ensemble_averages_the_turned_back_copies(size):
    stage = Cascade([small_compact(conv=3, seed=5)]).stages[0]
    x = torch.rand(2, 3, 12, 17)
    copies = [(torch.from_numpy(_numpy_turn(x.numpy(), k, f)), k, f) for k, f in NUMPY_COPIES[size]]
    expected = sum(torch.from_numpy(_numpy_turn_back(stage.run(c).numpy(), k, f))
                   for c, k, f in copies) / size
    got = run_ensembled(stage.run, x, size)
    assert got.shape == (2, 3, 24, 34)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    if size > 1:  # a random net is not equivariant: the ensemble really changes the output
        assert (got - stage.run(x)).abs().max() > 1e-3


def test_self_ensemble_keeps_an_equivariant_stage_unchanged_and_tiles_exactly():
    nearest = Cascade([CompactSR(CompactConfig(scale=2, num_feat=4, num_conv=1))]).stages[0]
    torch.nn.init.zeros_(nearest.model.body[-1].weight)  # body off: output = nearest upsampling
    torch.nn.init.zeros_(nearest.model.body[-1].bias)
    x = torch.rand(1, 3, 9, 14)
    for size in ENSEMBLES:
        torch.testing.assert_close(run_ensembled(nearest.run, x, size), nearest.run(x))
    stage = Cascade([small_compact(conv=2, seed=6)]).stages[0]  # radius 4 = overlap / 4
    x = torch.rand(1, 3, 75, 61)
    whole = run_ensembled(stage.run, x, 8)
    tiled = run_tiled(stage, x, tile=40, overlap=16, device=torch.device("cpu"), ensemble=8)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=2e-6)


def test_self_ensemble_in_upscale_frames_and_bad_sizes():
    cascade = Cascade([small_compact(seed=1)])  # one stage: its ensemble is the whole run's
    frames = torch.rand(2, 20, 24, 3)
    plain = upscale_frames(frames, cascade, scale=2)
    mirrored = upscale_frames(frames, cascade, scale=2, self_ensemble=2)
    by_hand = (plain + upscale_frames(frames.flip(2), cascade, scale=2).flip(2)) / 2
    torch.testing.assert_close(mirrored, by_hand, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"self_ensemble must be one of \[1, 2, 4, 8\], found 3"):
        upscale_frames(frames, cascade, scale=2, self_ensemble=3)


# --- planning ------------------------------------------------------------------------------

def _kinds(plan):
    return [(type(s).__name__, getattr(s, "stage", None) and s.stage.name, s.out_size)
            for s in plan.steps]


def test_plan_scales_reuse_last_stage_and_enhancer():
    a, b = small_compact(seed=1), small_compact(seed=2)
    cascade = Cascade([a, b], enhancer=small_compact(scale=1))
    assert _kinds(cascade.plan(10, 20, scale=2)) == [
        ("RunStep", "stage0", (20, 40)), ("RunStep", "enhancer", (20, 40))]
    plan8 = cascade.plan(10, 20, scale=8)
    assert [s.stage.name for s in plan8.runs] == ["stage0", "stage1", "stage1", "enhancer"]
    assert plan8.out_size == (80, 160)


def test_plan_target_height_and_x4_model_in_x2_slot():
    cascade = Cascade([descriptor_of(random_esrgan(4))])
    plan = cascade.plan(100, 150, target_height=300)  # 3× → two ×2 steps, then resize
    kinds = [type(s) for s in plan.steps]
    assert kinds == [RunStep, ResizeStep, RunStep, ResizeStep, ResizeStep]
    assert plan.steps[0].out_size == (400, 600) and plan.steps[1].out_size == (200, 300)
    assert plan.out_size == (300, 450)
    assert cascade.plan(100, 150, target_height=80).steps == (ResizeStep((100, 150), (80, 120)),)
    assert len(cascade.plan(100, 150, target_height=200).runs) == 1


@pytest.mark.parametrize("kwargs,match", [({"scale": 3}, "scale must be one of"),
                                          ({}, "exactly one"),
                                          ({"scale": 2, "target_height": 9}, "exactly one"),
                                          ({"target_height": 0}, "positive")])
def test_plan_rejects_bad_requests(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Cascade([small_compact()]).plan(10, 10, **kwargs)


def test_cascade_rejects_wrong_scales():
    with pytest.raises(UpscaleModelError, match="scale >= 2"):
        Cascade([small_compact(scale=1)])
    with pytest.raises(UpscaleModelError, match="×1 model"):
        Cascade([small_compact()], enhancer=small_compact())
    with pytest.raises(UpscaleModelError, match="ImageModelDescriptor"):
        Cascade([object()])


# --- file formats --------------------------------------------------------------------------

def test_cascade_file_round_trip_and_stage_export(tmp_path):
    cascade = Cascade([small_compact(seed=1), small_compact(seed=2)],
                      enhancer=small_compact(scale=1, seed=3), info={"variant": "test"})
    path = tmp_path / "cascade.safetensors"
    save_cascade(cascade, path, half=False)
    loaded = load_cascade(path)
    assert loaded.info == {"variant": "test"} and len(loaded.stages) == 2
    x = torch.rand(1, 24, 20, 3)
    torch.testing.assert_close(upscale_frames(x, loaded, scale=4),
                               upscale_frames(x, cascade, scale=4), rtol=0, atol=1e-6)
    save_cascade(cascade, tmp_path / "half.safetensors")  # float16 storage
    half = load_cascade(tmp_path / "half.safetensors")
    assert half.stages[0].parameter.dtype == torch.float32
    diff = upscale_frames(x, half, scale=2) - upscale_frames(x, cascade, scale=2)
    assert diff.abs().max() < 5e-3
    # a single stage exported from the cascade is a spandrel "Compact" model (ComfyUI loads it)
    save_stage(loaded.stages[1], tmp_path / "stage.safetensors")
    descriptor = spandrel.ModelLoader().load_from_file(str(tmp_path / "stage.safetensors"))
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 2


def test_single_model_files_of_every_kind(tmp_path):
    compact = small_compact(seed=5)
    torch.save({"params_ema": compact.state_dict()}, tmp_path / "compact.pth")
    stage = load_stage(tmp_path / "compact.pth")
    assert stage.arch == "Compact" and stage.scale == 2
    for name, net in (("esrgan", random_esrgan(2)), ("span", random_span())):
        save_stage(Cascade([descriptor_of(net)])
                   .stages[0], tmp_path / f"{name}.safetensors")
        cascade = load_cascade(tmp_path / f"{name}.safetensors")  # a plain file: one stage
        assert cascade.stages[0].arch == {"esrgan": "ESRGAN", "span": "SPAN"}[name]
        assert upscale_frames(torch.rand(1, 16, 12, 3), cascade, scale=2).shape == (1, 32, 24, 3)


def test_cascade_file_with_foreign_stages(tmp_path):
    descriptor = descriptor_of(random_esrgan(4))
    cascade = Cascade.from_stages([descriptor, small_compact()], enhancer=small_compact(scale=1))
    save_cascade(cascade, tmp_path / "mixed.safetensors", half=False)
    loaded = load_cascade(tmp_path / "mixed.safetensors")
    assert [s.arch for s in loaded.stages] == ["ESRGAN", "Compact"]
    x = torch.rand(1, 12, 10, 3)
    out = upscale_frames(x, loaded, scale=4)
    assert out.shape == (1, 48, 40, 3)
    torch.testing.assert_close(out, upscale_frames(x, cascade, scale=4), rtol=0, atol=1e-5)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_cascade(tmp_path / "missing.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(UpscaleModelError, match="expected a .safetensors"):
        load_stage(tmp_path / "model.onnx")
    torch.save({"foo.weight": torch.zeros(3, 3)}, tmp_path / "junk.pth")
    with pytest.raises(UpscaleModelError, match="does not recognise"):
        load_stage(tmp_path / "junk.pth")


# --- frame runner --------------------------------------------------------------------------

def test_upscale_frames_shapes_batches_and_progress():
    cascade = Cascade([small_compact(seed=1), small_compact(seed=2)],
                      enhancer=small_compact(scale=1, seed=3))
    frames = torch.rand(3, 30, 40, 3)
    calls = []
    out = upscale_frames(frames, cascade, scale=4, tile=32, overlap=8, batch=2,
                         callback=lambda done, total: calls.append((done, total)))
    assert out.shape == (3, 120, 160, 3) and 0 <= out.min() and out.max() <= 1
    total = calls[-1][1]
    assert calls[-1][0] == total == len(calls)
    assert [d for d, _ in calls] == list(range(1, total + 1))
    one_by_one = torch.cat([upscale_frames(f[None], cascade, scale=4, tile=32, overlap=8)
                            for f in frames])
    torch.testing.assert_close(out, one_by_one, rtol=0, atol=1e-6)
    small = frames[:1, :12, :16]
    assert upscale_frames(small, cascade, scale=8).shape == (1, 96, 128, 3)
    assert upscale_frames(small, cascade, target_height=40).shape == (1, 40, 53, 3)


def test_callback_exception_cancels():
    cascade = Cascade([small_compact()])
    seen = []

    def cancel_at_three(done, total):
        seen.append(done)
        if done == 3:
            raise KeyboardInterrupt("cancelled")
    with pytest.raises(KeyboardInterrupt):
        upscale_frames(torch.rand(4, 64, 64, 3), cascade, scale=2, tile=32, overlap=8, batch=1,
                       callback=cancel_at_three)
    assert seen == [1, 2, 3]


def test_upscale_frames_rejects_bad_input():
    cascade = Cascade([small_compact()])
    with pytest.raises(ValueError, match=r"\[F, H, W, 3\]"):
        upscale_frames(torch.rand(3, 8, 8), cascade, scale=2)
    with pytest.raises(ValueError, match="float"):
        upscale_frames(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), cascade, scale=2)
    with pytest.raises(ValueError, match="overlap"):
        upscale_frames(torch.rand(1, 8, 8, 3), cascade, scale=2, tile=32, overlap=16)


def test_spandrel_descriptor_plugs_in_like_comfy_upscale_model():
    descriptor = descriptor_of(random_esrgan(4))
    cascade = Cascade.from_stages([descriptor])
    frames = torch.rand(2, 20, 24, 3)
    out = upscale_frames(frames, cascade, scale=2)
    with torch.no_grad():
        x4 = descriptor(frames.permute(0, 3, 1, 2))
    expected = torch.nn.functional.interpolate(x4, size=(40, 48), mode="bicubic",
                                               antialias=True).clamp(0, 1)
    torch.testing.assert_close(out, expected.permute(0, 2, 3, 1), rtol=0, atol=1e-5)
    assert math.isclose(float(out.mean()), float(x4.mean()), abs_tol=0.02)

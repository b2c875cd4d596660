"""Upscaler training library: patch alignment, losses, VGG features vs torchvision, a tiny full run."""
import json

import numpy as np
import pytest
import torch

from wan21_core.upscale import load_cascade
from wan21_core.upscale.training import train as train_module
from wan21_core.upscale.training.data import bicubic_downsample, skimage_photo
from wan21_core.upscale.training.losses import PatchDiscriminator, VGGFeatureLoss, relativistic_losses
from wan21_core.upscale.training.train import PatchSampler, TrainConfig, train_cascade

pytest.importorskip("skimage")


def test_patches_stay_aligned_through_flips_and_rotations():
    photo = skimage_photo("astronaut")[:200, :240]
    sampler = PatchSampler([("astronaut", photo)], torch.device("cpu"), seed=3)
    for scale in (2, 4):
        lr, hr = sampler.sample(8, 16, scale)
        assert lr.shape == (8, 3, 16, 16) and hr.shape == (8, 3, 16 * scale, 16 * scale)
        for lr_patch, hr_patch in zip(lr, hr):
            hr_u8 = (hr_patch.permute(1, 2, 0) * 255).round().byte().numpy()
            again = torch.from_numpy(bicubic_downsample(hr_u8, scale)).permute(2, 0, 1) / 255
            # interior only: the patch border sees different neighbours than the full image
            err = (again - lr_patch)[:, 3:-3, 3:-3].abs().mean()
            assert err < 2 / 255


def test_discriminator_is_spectrally_normalised_and_losses_point_the_right_way():
    disc = PatchDiscriminator(num_feat=8)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6 and all(hasattr(m, "parametrizations") for m in convs)
    logits, feats = disc(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 1, 8, 8) and len(feats) == 5
    g_good, d_good = relativistic_losses(torch.full((4,), 5.0), torch.full((4,), -5.0))
    assert d_good < 0.01 and g_good > 5


def test_vgg_feature_loss_matches_torchvision_features(tmp_path):
    vgg = pytest.importorskip("torchvision.models.vgg")
    torch.manual_seed(0)
    features = vgg.make_layers(vgg.cfgs["E"], batch_norm=False).eval()  # vgg19().features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()},
               tmp_path / "vgg19.pth")
    loss = VGGFeatureLoss(tmp_path / "vgg19.pth")
    x = torch.rand(1, 3, 32, 32)
    normalised = (x - loss.mean) / loss.std
    with torch.no_grad():
        torch.testing.assert_close(loss.features(normalised), features[:35](normalised))
    assert loss(x, x).item() == 0
    torch.save({"classifier.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="features"):
        VGGFeatureLoss(tmp_path / "bad.pth")


def test_tiny_training_run_writes_loadable_cascades(tmp_path, monkeypatch):
    photo = skimage_photo("astronaut")
    monkeypatch.setattr(train_module, "training_photos",
                        lambda **_: [("a", photo[:128, :128]), ("b", photo[200:328, 300:428])])
    monkeypatch.setattr(train_module, "held_out_photos",
                        lambda **_: [("coffee", skimage_photo("coffee")[100:164, 200:264])])
    cfg = TrainConfig(out_dir=str(tmp_path), log_path=str(tmp_path / "log.jsonl"), batch=2,
                      lr_patch=16, steps={"stage_a": 3, "stage_b": 3, "enhancer": 3,
                                          "adversarial": 2}, evals_per_phase=1,
                      stage_features=8, stage_convs=3)
    summary = train_cascade(cfg)
    assert np.isfinite(summary["psnr"]["x2"]["mean"]) and "adversarial" in summary
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert [r["phase"] for r in records if "eval_psnr_y" in r] == [
        "stage_a", "stage_b", "enhancer", "adversarial"]
    for variant in ("psnr", "adversarial"):
        cascade = load_cascade(tmp_path / f"upscale_cascade_{variant}.safetensors")
        assert cascade.info["variant"] == variant and len(cascade.stages) == 2
        assert all(s.model.config.num_feat == 8 and s.model.config.num_conv == 3 for s in cascade.stages)


def test_kaiming_init_keeps_the_gradient_of_a_deep_stage_alive():
    from wan21_core.upscale.network import CompactConfig, CompactSR
    from wan21_core.upscale.training.train import kaiming_init_

    x = torch.rand(2, 3, 24, 24)
    grads = {}
    for scheme in ("torch", "kaiming"):
        torch.manual_seed(0)
        net = CompactSR(CompactConfig(scale=2, num_feat=32, num_conv=24))
        if scheme == "kaiming":
            kaiming_init_(net)
        out = net(x)
        # a deep body with PyTorch's default init starts (and, measured on the GPU, stays) at the
        # nearest-neighbour output; the kaiming one starts as a small residual
        residual = out - torch.nn.functional.interpolate(x, scale_factor=2)
        residual.square().mean().add(out.sub(0.5).square().mean()).backward()
        grads[scheme] = net.body[0].weight.grad.norm().item()
        if scheme == "kaiming":
            assert 1e-4 < residual.std().item() < 0.2
            assert all(m.bias.abs().max() == 0 for m in net.body if isinstance(m, torch.nn.Conv2d))
    assert grads["kaiming"] > 1e4 * grads["torch"]


def test_unknown_stage_init_is_rejected(tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path), log_path=str(tmp_path / "log.jsonl"), stage_init="xavier")
    with pytest.raises(ValueError, match="stage_init: expected one of"):
        train_cascade(cfg, ("stage_a",))


def test_time_budget_fixes_a_total_that_fits_the_budget(monkeypatch):
    clock = iter(np.arange(0, 1000, 0.5))                  # every step takes 0.5 s of fake time
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: float(next(clock)))
    plan = train_module.StepPlan(max_steps=10**6, seconds=100.0)
    step = 0
    while step < plan.total:
        plan.update(step)
        step += 1
    # 5 % of the budget (5 s) is 10 timed steps after the skipped ones; the phase fits in 100 s
    assert plan.fixed and 180 <= plan.total <= 200
    unbounded = train_module.StepPlan(max_steps=7, seconds=None)
    unbounded.update(10)
    assert unbounded.total == 7


def test_plasma_wallpapers_are_opt_in_and_read_at_their_largest_size(tmp_path, monkeypatch):
    from PIL import Image

    from wan21_core.upscale.training import data

    photo = skimage_photo("astronaut")
    for name, sizes in (("Path", (64, 128)), ("Kite", (96,)), ("Canopee", (128,))):   # Canopee: a render
        folder = tmp_path / name / "contents" / "images"
        folder.mkdir(parents=True)
        for w in sizes:
            Image.fromarray(photo[:w // 2, :w]).save(folder / f"{w}x{w // 2}.png")
    photos = dict(data.plasma_photos(str(tmp_path)))
    assert sorted(photos) == ["plasma/Kite", "plasma/Path"]
    assert photos["plasma/Path"].shape == (32, 64, 3)           # 128x64, halved
    monkeypatch.setattr(data, "mate_photos", lambda _: [])
    monkeypatch.setattr(data, "opencv_photos", lambda *_: [])
    assert [n for n, _ in data.training_photos()] == ["skimage/motorcycle_left"]
    assert len(data.training_photos(plasma_dir=str(tmp_path))) == 3


def test_lomiri_photos_are_opt_in_and_only_the_listed_ones(tmp_path, monkeypatch):
    from PIL import Image

    from wan21_core.upscale.training import data

    photo = skimage_photo("astronaut")
    # Fossa is one of the renders left out
    for stem in ("Kleiber_by_Lukas_Baubkus", "life_by_Aitzol_Berasategi", "Fossa_by_Jasper_Roks"):
        Image.fromarray(photo[:100, :160]).save(tmp_path / f"{stem}.jpg")
    photos = dict(data.lomiri_photos(str(tmp_path)))
    assert sorted(photos) == ["lomiri/Kleiber_by_Lukas_Baubkus", "lomiri/life_by_Aitzol_Berasategi"]
    assert photos["lomiri/Kleiber_by_Lukas_Baubkus"].shape == (50, 80, 3)       # 160x100, halved
    monkeypatch.setattr(data, "mate_photos", lambda _: [])
    monkeypatch.setattr(data, "opencv_photos", lambda *_: [])
    assert len(data.training_photos()) == 1
    assert len(data.training_photos(lomiri_dir=str(tmp_path))) == 3


def test_a_grown_stage_computes_the_same_and_its_new_channels_learn():
    from wan21_core.upscale.training.growth import grow_compact
    from wan21_core.upscale.network import CompactConfig, CompactSR

    torch.manual_seed(0)
    src = CompactSR(CompactConfig(scale=2, num_feat=8, num_conv=3))
    with torch.no_grad():
        for p in src.parameters():
            p.normal_(0, 0.3)                     # trained-looking weights, PReLU slopes included
    grown = grow_compact(src, num_feat=12, num_conv=7)
    assert grown.config == CompactConfig(scale=2, num_feat=12, num_conv=7)
    x = torch.rand(2, 3, 9, 11)
    out = grown(x)
    torch.testing.assert_close(out, src(x), rtol=0, atol=1e-6)
    out.square().mean().backward()
    convs = [m for m in grown.body if isinstance(m, torch.nn.Conv2d)]
    # the new channels are computed (random incoming weights) and their zero outgoing weights get a gradient
    assert convs[0].weight[8:].abs().min() > 0 and convs[1].weight.grad[:, 8:].abs().max() > 0
    with pytest.raises(ValueError, match="can only grow"):
        grow_compact(src, num_feat=4, num_conv=7)


def test_a_run_grown_from_a_saved_cascade_starts_where_the_cascade_was(tmp_path, monkeypatch):
    photo = skimage_photo("astronaut")
    monkeypatch.setattr(train_module, "training_photos", lambda **_: [("a", photo[:128, :128])])
    monkeypatch.setattr(train_module, "held_out_photos",
                        lambda **_: [("coffee", skimage_photo("coffee")[100:164, 200:264])])
    base = dict(batch=2, lr_patch=16, evals_per_phase=1, stage_features=8, stage_convs=2)
    first = TrainConfig(out_dir=str(tmp_path / "small"), log_path=str(tmp_path / "small.jsonl"),
                        steps={"stage_a": 3, "stage_b": 3, "enhancer": 3, "adversarial": 0}, **base)
    small = train_cascade(first, ("stage_a", "stage_b", "enhancer"))["psnr"]
    grown = TrainConfig(out_dir=str(tmp_path / "grown"), log_path=str(tmp_path / "grown.jsonl"),
                        steps={"stage_a": 0, "stage_b": 0, "enhancer": 0, "adversarial": 0},
                        **{**base, "stage_features": 12, "stage_convs": 4},
                        grow_from=str(tmp_path / "small" / "upscale_cascade_psnr.safetensors"))
    summary = train_cascade(grown, ("stage_a", "stage_b", "enhancer"))
    for scale in ("x2", "x4"):                    # zero steps: the grown cascade is the small one
        assert summary["psnr"][scale]["mean"] == pytest.approx(small[scale]["mean"], abs=0.02)
    cascade = load_cascade(tmp_path / "grown" / "upscale_cascade_psnr.safetensors")
    assert all(s.model.config.num_feat == 12 and s.model.config.num_conv == 4 for s in cascade.stages)
    with pytest.raises(ValueError, match="stage_init and init do not apply"):
        train_cascade(TrainConfig(**{**grown.__dict__, "stage_init": "kaiming"}), ("stage_a",))

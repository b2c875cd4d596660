"""The VAE stage of Wan2.1-tiny's training: seeded, resumable, and it learns."""
import pytest
import random

import torch

from wan21_core.embedded.vae_training import VAETraining, train_vae, training_batch


def _config(steps: int) -> VAETraining:
    return VAETraining(steps=steps, batch=1, frames=5, crop=32, clip_size=48, base_dim=4, checkpoint_every=2)


def test_batches_are_seeded_crops_in_range():
    config = _config(1)
    batch = training_batch(config, 2)
    assert batch.shape == (1, 3, 5, 32, 32) and -1 <= batch.min() and batch.max() <= 1
    assert torch.equal(batch, training_batch(config, 2)) and not torch.equal(batch, training_batch(config, 4))


def test_every_fourth_step_trains_on_crops_as_long_as_the_clips():
    config = VAETraining(batch=2, clip_size=48, long_crop=24)
    shapes = [tuple(training_batch(config, step).shape) for step in range(8)]
    short, long = (2, 3, 5, 48, 48), (2, 3, 25, 24, 24)
    assert shapes == [short, short, short, long] * 2


def test_resuming_gives_the_same_weights_as_one_run(tmp_path):
    straight = train_vae(str(tmp_path / "a"), _config(4), log=lambda line: None)
    train_vae(str(tmp_path / "b"), _config(2), log=lambda line: None)
    resumed_config = _config(4)
    resumed = train_vae(str(tmp_path / "b"), resumed_config, log=lambda line: None)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert [step for step, _ in resumed_config.losses] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="other settings .*lr"):
        train_vae(str(tmp_path / "b"), VAETraining(**{**_config(5).__dict__, "lr": 1e-2}), log=lambda line: None)


def test_command_line_trains_and_saves_the_state(tmp_path, capsys):
    from wan21_core.embedded.__main__ import main

    main(["train-vae", str(tmp_path), "--steps", "1", "--batch", "1", "--crop", "32", "--clip-size", "48",
          "--base-dim", "4"])
    assert (tmp_path / "vae_training.pt").is_file()
    assert "vae step 1/1" in capsys.readouterr().out


def test_a_share_of_the_batch_are_colour_patch_clips():
    from wan21_core.embedded.vae_training import VAETraining, colour_patch_clip, training_batch

    def colourful(batch):        # clips whose mean spread between R, G and B exceeds 0.6 (on -1..1)
        return (batch.amax(dim=1) - batch.amin(dim=1)).mean(dim=(1, 2, 3)) > 0.6

    mixed = training_batch(VAETraining(batch=16, patches=0.5), 2)
    assert torch.equal(mixed, training_batch(VAETraining(batch=16, patches=0.5), 2))
    assert mixed.min() >= -1 and mixed.max() <= 1
    world = training_batch(VAETraining(batch=16, patches=0.0), 2)
    assert 4 <= colourful(mixed).sum() <= 12 and colourful(world).sum() <= 2        # world crops are rarely
    clip = colour_patch_clip(random.Random(0), 5, 48)
    assert clip.shape == (3, 5, 48, 48) and not torch.equal(clip[:, 0], clip[:, -1])   # the patches drift


def test_the_initial_vae_reads_its_input():
    from wan21_core.embedded.vae_training import signal_preserving_init
    from wan21_core.models import VAEConfig, WanVAE

    torch.manual_seed(0)
    vae = signal_preserving_init(WanVAE(VAEConfig(base_dim=4)))
    convs = [m for m in vae.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    assert all(not m.bias.any() for m in convs)
    colours = torch.tensor([[0.8, -0.7, -0.7], [-0.7, 0.5, -0.5]]).view(2, 3, 1, 1, 1).expand(2, 3, 1, 16, 16)
    with torch.no_grad():
        latents = vae.encode(colours.contiguous())
    spread = (latents[0] - latents[1]).norm() / latents.norm()
    assert spread > 0.3                                          # two colours, two clearly different latents

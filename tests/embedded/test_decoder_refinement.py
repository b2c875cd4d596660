"""The decoder refinement of Wan2.1-tiny's VAE: seeded, resumable, the encoder untouched, and it learns."""
import pytest
import torch

from wan21_core.embedded.decoder_refinement import DecoderRefinement, refine_decoder, refinement_batch
from wan21_core.embedded.vae_training import VAETraining, signal_preserving_init, training_batch
from wan21_core.models import VAEConfig, WanVAE

VAE_CONFIG = VAETraining(steps=10, batch=1, frames=5, crop=32, clip_size=48, base_dim=4)


def _vae() -> WanVAE:
    torch.manual_seed(0)
    return signal_preserving_init(WanVAE(VAEConfig(base_dim=4)))


def _config(steps: int, **changes) -> DecoderRefinement:
    return DecoderRefinement(**{"steps": steps, "batch": 2, "checkpoint_every": 2, "warmup": 1, **changes})


def test_batches_are_seeded_first_frames_and_unseen_vae_batches():
    config = _config(4)
    frames = refinement_batch(config, VAE_CONFIG, 0)
    assert frames.shape == (2, 3, 1, 48, 48) and -1 <= frames.min() and frames.max() <= 1
    assert torch.equal(frames, refinement_batch(config, VAE_CONFIG, 0))
    assert not torch.equal(frames, refinement_batch(config, VAE_CONFIG, 2))
    assert torch.equal(refinement_batch(config, VAE_CONFIG, 1), training_batch(VAE_CONFIG, VAE_CONFIG.steps + 1))


def test_the_encoder_stays_and_resuming_gives_the_same_decoder(tmp_path):
    before = {k: v.clone() for k, v in _vae().state_dict().items()}
    straight = refine_decoder(str(tmp_path / "a"), _config(4), _vae(), VAE_CONFIG, log=lambda line: None)
    refine_decoder(str(tmp_path / "b"), _config(2), _vae(), VAE_CONFIG, log=lambda line: None)
    resumed_config = _config(4)
    resumed = refine_decoder(str(tmp_path / "b"), resumed_config, _vae(), VAE_CONFIG, log=lambda line: None)
    after = straight.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(("encoder.", "conv1.")))
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith(("decoder.", "conv2.")))
    assert all(torch.equal(a, b) for a, b in zip(after.values(), resumed.state_dict().values()))
    assert [step for step, _ in resumed_config.losses] == [1, 2, 3, 4]
    assert not any(p.requires_grad for p in resumed.parameters())
    with pytest.raises(ValueError, match="other settings .*lr"):
        refine_decoder(str(tmp_path / "b"), _config(5, lr=1e-2), _vae(), VAE_CONFIG, log=lambda line: None)


def test_the_first_frames_come_back_closer(tmp_path):
    config = _config(30, lr=2e-3, clip_every=1000, checkpoint_every=100, warmup=5, decay_until=30)
    held_out = refinement_batch(_config(1, seed=7, batch=4), VAE_CONFIG, 0)

    def error(vae):
        with torch.no_grad():
            return (vae.decode(vae.encode(held_out)) - held_out).pow(2).mean().item()

    start = error(_vae())
    refined = error(refine_decoder(str(tmp_path), config, _vae(), VAE_CONFIG, log=lambda line: None))
    assert refined < 0.5 * start, (start, refined)

"""Latent calibration: folding an affine map into the VAE's 1x1x1 convs keeps what it reconstructs and gives
its latent the released per-channel statistics."""
import torch

from wan21_core.embedded.calibration import fold_latent_statistics, latent_statistics
from wan21_core.models import VAEConfig, WanVAE
from wan21_core.models.configs import LATENT_MEAN, LATENT_STD


def _vae() -> WanVAE:
    torch.manual_seed(0)
    return WanVAE(VAEConfig(base_dim=4)).eval()


def test_folded_vae_reconstructs_the_same_video():
    vae = _vae()
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    before = vae.decode(vae.encode(video))
    mean, std = latent_statistics(vae, clips=4, frames=5, size=32)
    fold_latent_statistics(vae, mean, std)
    after = vae.decode(vae.encode(video))
    assert (after - before).abs().max() < 1e-4
    assert not torch.allclose(vae.encode(video), _vae().encode(video), atol=1e-2)   # the latent itself moved


def test_folded_latent_has_the_released_statistics():
    vae = _vae()
    fold_latent_statistics(vae, *latent_statistics(vae, clips=4, frames=5, size=32))
    mean, std = latent_statistics(vae, clips=4, frames=5, size=32)
    assert torch.allclose(mean, torch.tensor(LATENT_MEAN), atol=1e-3)
    assert torch.allclose(std, torch.tensor(LATENT_STD), rtol=1e-3)


def test_statistics_are_per_channel_over_seeded_clips():
    vae = _vae()
    mean, std = latent_statistics(vae, clips=2, frames=5, size=32, batch=1)
    again = latent_statistics(vae, clips=2, frames=5, size=32, batch=2)
    assert mean.shape == std.shape == (16,)
    assert torch.allclose(mean, again[0], atol=1e-6) and torch.allclose(std, again[1], atol=1e-6)
    assert not torch.allclose(mean, latent_statistics(vae, clips=2, frames=5, size=32, seed=1)[0])

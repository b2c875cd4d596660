"""The raw VAE latent <-> the DiT's latent space: per-channel (z - mean) / std with the official statistics."""
import pytest
import torch

from wan21_core.models.configs import LATENT_MEAN, LATENT_STD, VAEConfig
from wan21_core.sampling import denormalize_latent, normalize_latent


def test_normalize_and_denormalize():
    assert VAEConfig().latent_mean == LATENT_MEAN and VAEConfig().latent_std == LATENT_STD
    assert LATENT_MEAN[0] == -0.7571 and LATENT_STD[15] == 1.9160 and len(LATENT_MEAN) == 16
    z = torch.randn(1, 16, 2, 4, 6, generator=torch.Generator().manual_seed(2))
    n = normalize_latent(z)
    mean = torch.tensor(LATENT_MEAN).view(1, 16, 1, 1, 1)
    std = torch.tensor(LATENT_STD).view(1, 16, 1, 1, 1)
    assert torch.allclose(n, (z - mean) / std)
    assert torch.allclose(denormalize_latent(n), z, atol=1e-6)


@pytest.mark.parametrize("function", [normalize_latent, denormalize_latent])
def test_a_latent_of_another_model_family_gets_a_clear_error(function):
    with pytest.raises(ValueError, match=rf"{function.__name__}: `z` must be a Wan2.1 latent .* found shape \(1, 4, 1, 2, 2\)"):
        function(torch.zeros(1, 4, 1, 2, 2))

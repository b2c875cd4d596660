"""Training losses of the upscaler: L_total = L_content + λ·L_GAN.

* Content: Charbonnier (a smooth L1) on pixels, plus in the adversarial phase a feature term:
  VGG19 ``conv5_4`` features (before the ReLU, as in ESRGAN) when the user supplies torchvision
  VGG19 weights, otherwise the offline substitute, feature matching on the discriminator's
  intermediate features between the upscaled and the true patch (pix2pixHD). No weights are
  ever downloaded.
* Adversarial: relativistic average GAN (ESRGAN) against a small patch discriminator whose
  convolutions all carry spectral normalisation.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# torchvision's VGG19 "features": channel counts, "M" = 2×2 max-pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_CONV5_4 = 34  # index of conv5_4 in torchvision's vgg19().features
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps**2).mean()


class PatchDiscriminator(nn.Module):
    """Five strided spectral-norm convolutions → a map of real/fake logits ``[B, 1, h, w]``."""

    def __init__(self, num_feat: int = 32):
        super().__init__()
        f = num_feat
        shapes = [(3, f, 3, 1), (f, 2 * f, 4, 2), (2 * f, 4 * f, 4, 2), (4 * f, 4 * f, 4, 2),
                  (4 * f, 4 * f, 3, 1)]
        self.features = nn.ModuleList(
            spectral_norm(nn.Conv2d(i, o, k, s, padding=1)) for i, o, k, s in shapes)
        self.head = spectral_norm(nn.Conv2d(4 * f, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the activations of every feature layer (for feature matching)."""
        feats = []
        for conv in self.features:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.head(x), feats


def relativistic_losses(real_logits: torch.Tensor,
                        fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, discriminator loss) of the relativistic average GAN."""
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    ones, zeros = torch.ones_like(real_rel), torch.zeros_like(real_rel)
    bce = F.binary_cross_entropy_with_logits
    g_loss = (bce(real_rel, zeros) + bce(fake_rel, ones)) / 2
    d_loss = (bce(real_rel, ones) + bce(fake_rel, zeros)) / 2
    return g_loss, d_loss


def feature_matching(fake_feats: list[torch.Tensor],
                     real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between discriminator activations of the upscaled and the true patches."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


class VGGFeatureLoss(nn.Module):
    """L1 between VGG19 ``conv5_4`` (pre-activation) features; weights from a user-given file.

    ``weights_path`` is torchvision's ``vgg19-dcbb9e9d.pth`` (or any state dict with its
    ``features.{i}.weight/bias`` keys); only the convolutional part is read.
    """

    def __init__(self, weights_path: str | os.PathLike):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for spec in _VGG19:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
                channels = spec
        self.features = nn.Sequential(*layers[: _CONV5_4 + 1])
        state = torch.load(os.fspath(weights_path), map_location="cpu", weights_only=True)
        convs = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        missing = set(self.features.state_dict()) - set(convs)
        if missing:
            raise ValueError(f"VGG weights {weights_path}: expected torchvision vgg19 "
                             f"'features.*' keys, missing {sorted(missing)[:4]}")
        self.features.load_state_dict({k: convs[k] for k in self.features.state_dict()})
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(_IMAGENET_STD)[None, :, None, None])

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        both = (torch.cat([pred, target]) - self.mean) / self.std
        fp, ft = self.features(both).chunk(2)
        return F.l1_loss(fp, ft.detach())

"""Function-preserving growth of a trained ×2 stage into a wider and deeper one (Net2Net style).

A grown stage computes exactly what the trained one computes, so training it goes on from the
trained stage's quality instead of from scratch (docs/upscaler_training.md, "Growing a stage"):

- wider: every new channel gets He-normal incoming weights and zero outgoing weights. It is
  computed but not yet used; its outgoing weights get a gradient from the first step on.
- deeper: the new body layers are identity convolutions (Dirac kernels, zero bias) followed by a
  PReLU of slope 1, spread evenly between the trained layers.
"""
from __future__ import annotations

import torch
from torch import nn

from ..network import CompactConfig, CompactSR

NEW_PRELU_SLOPE = 0.25  # PyTorch's PReLU default, for the new channels of trained layers


def grow_compact(src: CompactSR, num_feat: int, num_conv: int, seed: int = 0) -> CompactSR:
    """A `CompactSR` with `num_feat` channels and `num_conv` body convolutions that computes the
    same function as `src` (up to float rounding), in fp32 and channels-last."""
    old = src.config
    if num_feat < old.num_feat or num_conv < old.num_conv:
        raise ValueError(f"grow_compact: a stage can only grow, from {old.num_feat} features × "
                         f"{old.num_conv} convs; asked for {num_feat} × {num_conv}")
    dst = CompactSR(CompactConfig(scale=old.scale, num_feat=num_feat, num_conv=num_conv,
                                  in_channels=old.in_channels))
    generator = torch.Generator().manual_seed(seed)
    src_convs, src_prelus = _layers(src)
    dst_convs, dst_prelus = _layers(dst)
    with torch.no_grad():
        for position, conv in enumerate(dst_convs):
            trained = _trained_layer(position, old.num_conv, num_conv)
            if trained is None:
                _identity_(conv, dst_prelus[position])
            else:
                prelu = dst_prelus[position] if position < len(dst_prelus) else None
                old_prelu = src_prelus[trained] if prelu is not None else None
                _embed_(conv, src_convs[trained], prelu, old_prelu, generator)
    return dst.to(memory_format=torch.channels_last)


def _layers(net: CompactSR) -> tuple[list[nn.Conv2d], list[nn.PReLU]]:
    """The convs (first, body, last) and the PReLUs after all but the last, in order."""
    return ([m for m in net.body if isinstance(m, nn.Conv2d)],
            [m for m in net.body if isinstance(m, nn.PReLU)])


def _trained_layer(position: int, old_convs: int, new_convs: int) -> int | None:
    """Which trained conv the grown net's conv at `position` copies (None: a new identity layer).

    Position 0 is the first conv, 1..new_convs the body, new_convs + 1 the last conv; trained body
    conv i (1-based) lands at i · new_convs // old_convs, so the new layers fall evenly between.
    """
    if position == 0:
        return 0
    if position == new_convs + 1:
        return old_convs + 1
    for i in range(1, old_convs + 1):
        if i * new_convs // old_convs == position:
            return i
    return None


def _identity_(conv: nn.Conv2d, prelu: nn.PReLU) -> None:
    conv.weight.zero_()
    conv.weight[:, :, 1, 1] = torch.eye(conv.out_channels, conv.in_channels)   # 3×3 Dirac kernels
    conv.bias.zero_()
    prelu.weight.fill_(1.0)                                                     # PReLU(x) = x


def _embed_(conv: nn.Conv2d, old: nn.Conv2d, prelu: nn.PReLU | None, old_prelu: nn.PReLU | None,
            generator: torch.Generator) -> None:
    """conv = old on the old channels; new outputs He-normal over all inputs, new inputs zero.
    (The last conv has no new outputs: its width is the pixel-shuffle's, C·scale².)"""
    nn.init.kaiming_normal_(conv.weight, a=NEW_PRELU_SLOPE, nonlinearity="leaky_relu", generator=generator)
    conv.bias.zero_()
    out_old, in_old = old.weight.shape[:2]
    conv.weight[:, in_old:] = 0.0                              # new input channels are not used yet
    conv.weight[:out_old, :in_old] = old.weight.float()
    conv.bias[:out_old] = old.bias.float()
    if prelu is not None:
        prelu.weight.fill_(NEW_PRELU_SLOPE)
        prelu.weight[:out_old] = old_prelu.weight.float()

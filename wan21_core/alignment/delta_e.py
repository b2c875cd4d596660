"""CIEDE2000 colour difference (Sharma, Wu & Dalal 2005, with kL = kC = kH = 1) in torch.

Computed in float64; inputs are L*a*b* tensors [..., 3] that broadcast against each other.
"""
from __future__ import annotations

import math

import torch

_POW25_7 = 25.0 ** 7


def _chroma_weight(mean_chroma: torch.Tensor) -> torch.Tensor:
    """sqrt(C̄⁷ / (C̄⁷ + 25⁷)), used by both the a* stretch G and the rotation term R_C."""
    c7 = mean_chroma ** 7
    return torch.sqrt(c7 / (c7 + _POW25_7))


def _hue(b: torch.Tensor, a_prime: torch.Tensor) -> torch.Tensor:
    """h' in [0, 2π); 0 for achromatic colours."""
    return torch.remainder(torch.atan2(b, a_prime), 2 * math.pi)


def _hue_difference(h1: torch.Tensor, h2: torch.Tensor, achromatic: torch.Tensor) -> torch.Tensor:
    """Δh' wrapped to (−π, π]; 0 when either colour is achromatic."""
    dh = h2 - h1
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    return torch.where(achromatic, torch.zeros_like(dh), dh)


def _mean_hue(h1: torch.Tensor, h2: torch.Tensor, achromatic: torch.Tensor) -> torch.Tensor:
    """h̄': the mean hue on the circle; the sum when either colour is achromatic."""
    total = h1 + h2
    far = (h1 - h2).abs() > math.pi
    wrapped = torch.where(total < 2 * math.pi, total + 2 * math.pi, total - 2 * math.pi)
    mean = torch.where(far, wrapped, total) / 2
    return torch.where(achromatic, total, mean)


def _hue_weight(mean_hue: torch.Tensor) -> torch.Tensor:
    """T(h̄') of the hue-dependent weighting S_H."""
    deg = math.pi / 180
    return (1 - 0.17 * torch.cos(mean_hue - 30 * deg) + 0.24 * torch.cos(2 * mean_hue)
            + 0.32 * torch.cos(3 * mean_hue + 6 * deg) - 0.20 * torch.cos(4 * mean_hue - 63 * deg))


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """ΔE00 between L*a*b* colours.  [..., 3], [..., 3] -> [...] float64"""
    L1, a1, b1 = lab1.double().unbind(-1)
    L2, a2, b2 = lab2.double().unbind(-1)
    stretch = 1 + 0.5 * (1 - _chroma_weight((torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2))
    a1p, a2p = a1 * stretch, a2 * stretch
    c1, c2 = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1, h2 = _hue(b1, a1p), _hue(b2, a2p)
    achromatic = (c1 * c2) == 0
    delta_h = 2 * torch.sqrt(c1 * c2) * torch.sin(_hue_difference(h1, h2, achromatic) / 2)
    mean_l, mean_c = (L1 + L2) / 2, (c1 + c2) / 2
    mean_h = _mean_hue(h1, h2, achromatic)
    s_l = 1 + 0.015 * (mean_l - 50) ** 2 / torch.sqrt(20 + (mean_l - 50) ** 2)
    s_c = 1 + 0.045 * mean_c
    s_h = 1 + 0.015 * mean_c * _hue_weight(mean_h)
    rotation_angle = (math.pi / 6) * torch.exp(-(((mean_h * 180 / math.pi) - 275) / 25) ** 2)
    r_t = -torch.sin(2 * rotation_angle) * 2 * _chroma_weight(mean_c)
    dl, dc, dh = (L2 - L1) / s_l, (c2 - c1) / s_c, delta_h / s_h
    return torch.sqrt((dl * dl + dc * dc + dh * dh + r_t * dc * dh).clamp_min(0))

"""Building blocks of the Wan2.1 3D causal VAE (official `wan/modules/vae.py`: `CausalConv3d`, `RMS_norm`,
`Resample`, `ResidualBlock`, `AttentionBlock`, `Encoder3d`, `Decoder3d`).

Module and parameter names follow the official `wan/modules/vae.py`, so the state-dict keys are
those of `Wan2.1_VAE.pth` (`residual.{0,2,3,6}`, `shortcut`, `resample.1`, `time_conv`, ...).

Every block runs in *streaming* mode: a video is fed chunk by chunk (encode: frames 1, 4, 4, ...;
decode: one latent frame at a time) and a `FeatureCache` carries what each layer must remember
between chunks. The cache rules are written so that streaming equals one causal pass over the
whole sequence (see `CausalConv3d`, `Resample`).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

CACHE_T = 2  # frames a temporal-kernel-3 causal conv remembers from earlier chunks

# Per-stream memory: layer -> last input frames it saw (or None as a "first chunk done" marker).
FeatureCache = dict


def _triple(value) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value, value)


def _last_frames(history: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The last CACHE_T frames of cat([history, x]) along time, as a new tensor."""
    if history is None or x.shape[2] >= CACHE_T:
        return x[:, :, -CACHE_T:].clone()
    return torch.cat([history[:, :, x.shape[2] - CACHE_T:], x], dim=2)


class CausalConv3d(nn.Conv3d):
    """Conv3d with zero padding of 2·pt frames in front and none behind (causal in time).

    For `padding=(pt, ph, pw)` the conv itself zero-pads ph/pw on both sides spatially; in time
    2·pt zero frames are put in front. With a cache, the frames remembered from earlier chunks
    replace that many zero frames, so chunked processing equals one pass over the whole video.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        pt, ph, pw = _triple(padding)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=(0, ph, pw))
        self.front_pad = 2 * pt

    def forward(self, x: torch.Tensor, cache: Optional[FeatureCache] = None) -> torch.Tensor:
        front = self.front_pad
        if cache is not None and front > 0:
            history = cache.get(self)
            cache[self] = _last_frames(history, x)
            if history is not None:
                x = torch.cat([history, x], dim=2)
                front -= history.shape[2]
        if front:
            x = F.pad(x, (0, 0, 0, 0, front, 0))
        return super().forward(x)


class RMSNorm(nn.Module):
    """Official `RMS_norm`: L2-normalise over channels, times √C and a learned gain γ (no bias).

    γ has shape [C,1,1,1] for videos and [C,1,1] for per-frame images (`images=True`).
    The channel norm of half-precision inputs is accumulated in fp32 so it cannot overflow.
    """

    def __init__(self, dim: int, images: bool = False):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=wide)
        factor = self.scale / norm.clamp_min(1e-12)   # F.normalize's eps; √C/|x| = 1/rms fits fp16
        return (x * factor.to(x.dtype)).mul_(self.gamma)


class NearestUpsample2x(nn.Module):
    """2× spatial nearest-exact upsampling computed in fp32, as the official `Upsample`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class ResidualBlock(nn.Module):
    """`residual = [RMSNorm, SiLU, CausalConv3d 3³, RMSNorm, SiLU, Dropout, CausalConv3d 3³]` + shortcut."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim), nn.SiLU(inplace=True), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim), nn.SiLU(inplace=True),
            nn.Identity(),  # official Dropout(0.0): keeps index 6 for the second conv
            CausalConv3d(out_dim, out_dim, 3, padding=1))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        skip = self.shortcut(x)
        return run_streaming(self.residual, x, cache).add_(skip)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the h·w positions of each frame, plus a residual add."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)            # [(b t), c, h, w]
        qkv = self.to_qkv(self.norm(frames)).reshape(b * t, 1, 3 * c, h * w)  # channels q|k|v
        q, k, v = qkv.transpose(2, 3).chunk(3, dim=-1)                        # [(b t), 1, hw, c] each
        out = F.scaled_dot_product_attention(q, k, v)                         # scale 1/√c
        out = self.proj(out.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w))
        return x + out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class Resample(nn.Module):
    """Spatial 2× up/down sampling per frame, with temporal 2× in the `*3d` modes.

    - `downsample2d/3d`: ZeroPad2d((0,1,0,1)) then a stride-2 3×3 conv (`resample.1`). In 3d mode
      `time_conv` (kernel 3, stride 2, no padding) then runs *after* the spatial path: the video's
      first frame passes alone and later frames go in strided triples (frames 2j-2, 2j-1, 2j).
    - `upsample2d/3d`: nearest-exact 2× (fp32) then a 3×3 conv that halves the channels. In 3d mode
      `time_conv` (C → 2C, causal, kernel 3) runs *before* it and its two halves are interleaved in
      time, doubling the frames; the video's first chunk skips it (official 'Rep'), so latent
      frame 0 gives one frame and every later latent frame gives two.
    """

    MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")

    def __init__(self, dim: int, mode: str):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"Resample mode: expected one of {self.MODES}, found {mode!r}")
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(NearestUpsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._double_frames(x, cache)
        x = self._per_frame(x)
        if self.mode == "downsample3d":
            x = self._halve_frames(x, cache)
        return x

    def _per_frame(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape[:3]
        frames = self.resample(x.transpose(1, 2).flatten(0, 1))           # [(b t), c', h', w']
        return frames.unflatten(0, (b, t)).transpose(1, 2).contiguous()  # [b, c', t, h', w']

    def _double_frames(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self not in cache:  # first chunk of the video: frame 0 is not doubled
            cache[self] = None
            return x
        b, c, t, h, w = x.shape
        y = self.time_conv(x, cache)                                # [b, 2c, t, h, w]
        y = y.reshape(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5)   # [b, c, t, 2, h, w]
        return y.reshape(b, c, 2 * t, h, w)

    def _halve_frames(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        previous = cache.get(self)
        cache[self] = x[:, :, -1:].clone()
        if previous is None:  # first chunk of the video: its single frame passes alone
            return x
        return self.time_conv(torch.cat([previous, x], dim=2))


STREAMING_BLOCKS = (CausalConv3d, ResidualBlock, Resample)


def run_streaming(layers: nn.Module, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    """Apply `layers` in order, handing the cache to the layers that keep state across chunks."""
    for layer in layers:
        x = layer(x, cache) if isinstance(layer, STREAMING_BLOCKS) else layer(x)
    return x


def _middle(dim: int) -> nn.ModuleList:
    return nn.ModuleList([ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim)])


def _head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(RMSNorm(in_dim), nn.SiLU(inplace=True), CausalConv3d(in_dim, out_dim, 3, padding=1))


class Encoder3d(nn.Module):
    """Video [B,3,F,H,W] → [B, out_dim, 1+(F-1)/s_t, H/s, W/s] (official `Encoder3d`)."""

    def __init__(self, dim: int, out_dim: int, dim_mult, num_res_blocks: int, temporal_downsample):
        super().__init__()
        dims = [dim * m for m in (1, *dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks = []
        for i, (in_dim, stage_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(in_dim, stage_dim))
                in_dim = stage_dim
            if i < len(dim_mult) - 1:
                blocks.append(Resample(stage_dim, "downsample3d" if temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*blocks)
        self.middle = _middle(dims[-1])
        self.head = _head(dims[-1], out_dim)

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        for stage in (self.downsamples, self.middle, self.head):
            x = run_streaming(stage, x, cache)
        return x


class Decoder3d(nn.Module):
    """Latent [B,z,T,h,w] → video [B,3,1+s_t(T-1),h·s,w·s] (official `Decoder3d`)."""

    def __init__(self, dim: int, z_dim: int, dim_mult, num_res_blocks: int, temporal_upsample):
        super().__init__()
        dims = [dim * m for m in (dim_mult[-1], *reversed(dim_mult))]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = _middle(dims[0])
        blocks = []
        for i, (in_dim, stage_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2  # the previous stage's upsample halved the channels
            for _ in range(num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, stage_dim))
                in_dim = stage_dim
            if i < len(dim_mult) - 1:
                blocks.append(Resample(stage_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*blocks)
        self.head = _head(dims[-1], 3)

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        for stage in (self.middle, self.upsamples, self.head):
            x = run_streaming(stage, x, cache)
        return x

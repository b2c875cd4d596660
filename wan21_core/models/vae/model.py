"""Wan2.1 3D causal VAE with chunked, cached encode/decode and optional spatial tiling (official
`wan/modules/vae.py`, `WanVAE_`).

    vae = wan21_core.load_vae("Wan2.1_VAE.pth")
    z = vae.encode(video)          # [B,3,F,H,W] in [-1,1], F = 1+4k → raw latent (mu) [B,16,1+k,H/8,W/8]
    video = vae.decode(z)          # raw latent → [B,3,1+4(T-1),8h,8w], clamped to [-1,1]

ComfyUI's LATENT carries the *raw* latent; the DiT sees it normalised per channel
(`wan21_core.sampling.normalize_latent`).

Streaming: encode runs frame chunks of 1, 4, 4, ...; decode runs one latent frame at a time;
both keep a per-layer `FeatureCache` (CACHE_T = 2 frames) and write each chunk into a
preallocated output, so decode working memory does not grow with the number of frames.

Tiling: `tile` and `overlap` are in **pixels** (int or (height, width)), multiples of the
spatial stride (8). Each tile is processed over all frames with its own cache and tiles are
blended with linear ramps across the overlap (see `tiling`).

Dtypes: computation runs in the weights' dtype (fp32, bf16 or fp16) on the weights' device;
nearest upsampling and the RMS norm's channel norm run in fp32. Outputs have the dtype and device
of the input tensor.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Union

import torch
import torch.nn as nn

from ..configs import VAEConfig
from .blocks import CausalConv3d, Decoder3d, Encoder3d, FeatureCache
from .tiling import Tile, plan_tiles

PixelSize = Union[int, tuple[int, int]]
ProgressCallback = Callable[[int, int], None]


class _Canvas:
    """Preallocated output that chunks are pasted into; reports progress once per chunk."""

    def __init__(self, out: torch.Tensor, scale: int, total: int, callback: Optional[ProgressCallback]):
        self.out, self.scale, self.total, self.callback = out, scale, total, callback
        self.done = 0

    def paste(self, tile: Tile, start: int, values: torch.Tensor) -> None:
        """Write (or blend) `values` [B,C,n,h,w] at frame `start` in `tile`'s region."""
        rows, cols = tile.region(self.scale)
        target = self.out[:, :, start:start + values.shape[2], rows, cols]
        values = values.to(self.out.device, self.out.dtype)
        if tile.weight is None:
            target.copy_(values)
        else:
            target.add_(values * tile.weight.to(self.out.device, self.out.dtype))
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


class WanVAE(nn.Module):
    """The Wan2.1 VAE (official `WanVAE_`); `state_dict()` keys are those of `Wan2.1_VAE.pth`.

    Encode returns mu only (`log_var` is dropped); decode clamps to [-1, 1] like the official
    `WanVAE` wrapper and diffusers. Both run under `torch.inference_mode` and return ordinary
    tensors (not inference tensors) with the input's dtype and device.
    """

    def __init__(self, config: Optional[VAEConfig] = None):
        super().__init__()
        config = config if config is not None else VAEConfig()
        _check_config(config)
        self.config = config
        z_dim = config.z_dim
        self.encoder = Encoder3d(config.base_dim, 2 * z_dim, config.dim_mult, config.num_res_blocks,
                                 config.temporal_downsample)
        self.conv1 = CausalConv3d(2 * z_dim, 2 * z_dim, 1)  # → mu | log_var
        self.conv2 = CausalConv3d(z_dim, z_dim, 1)
        self.decoder = Decoder3d(config.base_dim, z_dim, config.dim_mult, config.num_res_blocks,
                                 tuple(reversed(config.temporal_downsample)))

    # ---------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def time_stride(self) -> int:
        """Frames per latent frame after the first (4 for Wan2.1)."""
        return 2 ** sum(bool(t) for t in self.config.temporal_downsample)

    @property
    def spatial_stride(self) -> int:
        """Pixels per latent cell along height and width (8 for Wan2.1)."""
        return 2 ** (len(self.config.dim_mult) - 1)

    def latent_frames(self, frames: int) -> int:
        return 1 + (frames - 1) // self.time_stride

    def video_frames(self, latent_frames: int) -> int:
        return 1 + self.time_stride * (latent_frames - 1)

    # ---------------------------------------------------------------- public API
    def encode(self, video: torch.Tensor, tile: Optional[PixelSize] = None,
               overlap: Optional[PixelSize] = None,
               callback: Optional[ProgressCallback] = None) -> torch.Tensor:
        """Video [B,3,F,H,W] in [-1,1] (F = 1+4k, H and W multiples of 8) → raw latent mu
        [B,16,1+k,H/8,W/8].

        `tile`/`overlap`: pixel sizes (int or (height, width), multiples of 8) for spatial tiling;
        `overlap` defaults to a quarter of the tile. `callback(done, total)` runs after every
        chunk of every tile; an exception raised in it stops encoding and propagates.
        """
        self._check_video(video)
        b, _, frames, height, width = video.shape
        s = self.spatial_stride
        tiles = self._plan(height // s, width // s, tile, overlap, scale=1, caller="encode")
        out = torch.zeros(b, self.config.z_dim, self.latent_frames(frames), height // s, width // s,
                          dtype=video.dtype, device=video.device)
        canvas = _Canvas(out, 1, len(tiles) * out.shape[2], callback)
        with torch.inference_mode():
            for piece in tiles:
                rows, cols = piece.region(s)
                self._encode_stream(video[:, :, :, rows, cols], partial(canvas.paste, piece))
        return out

    def decode(self, z: torch.Tensor, tile: Optional[PixelSize] = None,
               overlap: Optional[PixelSize] = None,
               callback: Optional[ProgressCallback] = None) -> torch.Tensor:
        """Raw latent [B,16,T,h,w] → video [B,3,1+4(T-1),8h,8w] clamped to [-1,1].

        `tile`/`overlap` as in `encode` (pixels of the decoded video). `callback(done, total)`
        runs after every latent frame of every tile; an exception raised in it stops decoding
        and propagates (the feature caches are released first).
        """
        self._check_latent(z, "decode")
        b, _, latent_frames, height, width = z.shape
        s = self.spatial_stride
        tiles = self._plan(height, width, tile, overlap, scale=s, caller="decode")
        out = torch.zeros(b, 3, self.video_frames(latent_frames), height * s, width * s,
                          dtype=z.dtype, device=z.device)
        canvas = _Canvas(out, s, len(tiles) * latent_frames, callback)
        with torch.inference_mode():
            for piece in tiles:
                rows, cols = piece.region(1)
                self._decode_stream(z[:, :, :, rows, cols], partial(canvas.paste, piece))
        return out

    def reconstruct(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward: (decode(mu) before its clamp to [-1, 1], mu) with gradients, on the same
        streaming path as `encode` / `decode` (no tiling, no progress). Video [B,3,F,H,W] in [-1,1]
        as in `encode`."""
        self._check_video(video)
        latents: list[torch.Tensor] = []
        self._encode_stream(video, lambda index, mu: latents.append(mu))
        mu = torch.cat(latents, dim=2)                                  # [B, z, 1+k, h, w]
        return self.decode_for_training(mu), mu

    def decode_for_training(self, z: torch.Tensor) -> torch.Tensor:
        """Training forward of the decoder alone: raw latent [B,16,T,h,w] → video [B,3,1+4(T-1),8h,8w]
        before its clamp to [-1, 1], with gradients, on the streaming path of `decode`."""
        self._check_latent(z, "decode_for_training")
        frames: list[torch.Tensor] = []
        self._decode_stream(z, lambda start, chunk: frames.append(chunk), clamp=False)
        return torch.cat(frames, dim=2)

    # ---------------------------------------------------------------- streaming
    def _encode_stream(self, video: torch.Tensor, emit: Callable[[int, torch.Tensor], None]) -> None:
        """Encode chunks of 1, 4, 4, ... frames with one cache; emit(latent index, mu [B,z,1,h,w])."""
        cache: FeatureCache = {}
        try:
            for index in range(self.latent_frames(video.shape[2])):
                first = 0 if index == 0 else 1 + self.time_stride * (index - 1)
                last = 1 + self.time_stride * index
                x = video[:, :, first:last].to(self.device, self.dtype)
                moments = self.conv1(self.encoder(x, cache))  # [B, 2z, 1, h, w]
                emit(index, moments[:, :self.config.z_dim])
        finally:
            cache.clear()

    def _decode_stream(self, z: torch.Tensor, emit: Callable[[int, torch.Tensor], None], clamp: bool = True) -> None:
        """Decode one latent frame at a time with one cache; emit(first frame index, frames), clamped
        to [-1, 1] unless `clamp` is False (training: a clamp passes no gradient outside the range)."""
        cache: FeatureCache = {}
        try:
            start = 0
            for index in range(z.shape[2]):
                x = self.conv2(z[:, :, index:index + 1].to(self.device, self.dtype))
                frames = self.decoder(x, cache)                    # 1 frame, then time_stride each
                frames = frames.clamp_(-1.0, 1.0) if clamp else frames
                emit(start, frames)
                start += frames.shape[2]
        finally:
            cache.clear()

    # ---------------------------------------------------------------- checks
    def _plan(self, height: int, width: int, tile: Optional[PixelSize], overlap: Optional[PixelSize],
              scale: int, caller: str) -> list[Tile]:
        """Tiles over the latent grid; `tile`/`overlap` are pixel sizes, checked and converted."""
        s = self.spatial_stride
        if tile is None:
            if overlap is not None:
                raise ValueError(f"WanVAE.{caller}: `overlap` needs `tile`; found overlap={overlap!r}, tile=None")
            return plan_tiles(height, width, (height, width), (0, 0), scale)
        tile_px = _pixel_pair(tile, "tile", caller, s, minimum=s)
        if overlap is None:  # default: a quarter of the tile, on the 8-pixel grid
            overlap_px = tuple(t // 4 // s * s for t in tile_px)
        else:
            overlap_px = _pixel_pair(overlap, "overlap", caller, s, minimum=0)
        for axis, t, o in zip(("height", "width"), tile_px, overlap_px):
            if o >= t:
                raise ValueError(f"WanVAE.{caller}: `overlap` must be smaller than `tile` along {axis}; "
                                 f"found overlap {o} px >= tile {t} px")
        return plan_tiles(height, width, (tile_px[0] // s, tile_px[1] // s),
                          (overlap_px[0] // s, overlap_px[1] // s), scale)

    def _check_video(self, video) -> None:
        where = "WanVAE.encode: `video`"
        _check_tensor(video, where, "[B, 3, F, H, W]")
        b, c, frames, height, width = video.shape
        if c != 3:
            raise ValueError(f"{where} must have 3 channels at dim 1 ([B, 3, F, H, W]), "
                             f"found {c} in shape {tuple(video.shape)}")
        ts, s = self.time_stride, self.spatial_stride
        if frames < 1 or (frames - 1) % ts:
            raise ValueError(f"{where} must have 1 + {ts}·k frames (1, {1 + ts}, {1 + 2 * ts}, ...), "
                             f"found {frames} in shape {tuple(video.shape)}")
        if height < s or width < s or height % s or width % s:
            raise ValueError(f"{where} height and width must be positive multiples of {s}, "
                             f"found {height}×{width} in shape {tuple(video.shape)}")

    def _check_latent(self, z, caller: str) -> None:
        where = f"WanVAE.{caller}: `z`"
        _check_tensor(z, where, f"[B, {self.config.z_dim}, T, h, w]")
        if z.shape[1] != self.config.z_dim:
            raise ValueError(f"{where} must have {self.config.z_dim} latent channels at dim 1, "
                             f"found {z.shape[1]} in shape {tuple(z.shape)}")
        if min(z.shape) < 1:
            raise ValueError(f"{where} must not have empty dimensions, found shape {tuple(z.shape)}")


def _check_tensor(x, where: str, layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where} must be a torch.Tensor {layout}, found {type(x).__name__}")
    if x.ndim != 5:
        raise ValueError(f"{where} must be 5-D {layout}, found {x.ndim}-D with shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{where} must be a floating-point tensor, found {x.dtype}")


def _pixel_pair(value, name: str, caller: str, stride: int, minimum: int) -> tuple[int, int]:
    """An int or (height, width) pair of pixel sizes, each a multiple of `stride` and >= minimum."""
    pair = (value, value) if isinstance(value, int) else value
    valid = (isinstance(pair, (tuple, list)) and len(pair) == 2
             and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum and v % stride == 0
                     for v in pair))
    if not valid:
        raise ValueError(f"WanVAE.{caller}: `{name}` must be an int or (height, width) of multiples of "
                         f"{stride} pixels, each >= {minimum}; found {value!r}")
    return tuple(pair)


def _check_config(config: VAEConfig) -> None:
    if len(config.temporal_downsample) != len(config.dim_mult) - 1:
        raise ValueError(f"VAEConfig.temporal_downsample: expected {len(config.dim_mult) - 1} entries "
                         f"(one per dim_mult stage but the last), found {config.temporal_downsample}")
    for name in ("latent_mean", "latent_std"):
        if len(getattr(config, name)) != config.z_dim:
            raise ValueError(f"VAEConfig.{name}: expected z_dim={config.z_dim} entries, "
                             f"found {len(getattr(config, name))}")

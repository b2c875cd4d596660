"""Fusion conditioning of Wan2.1 image-to-video (official `wan/image2video.py`, `WanI2V.generate`;
`wan/first_last_frame2video.py`, `WanFLF2V.generate`).

From start (and optional end) frames, prompts and the encoders this builds one `I2VConditioning`:
text contexts (cond / uncond), CLIP image features, the 4-channel frame mask, the raw VAE latent
of `[start frames, grey frames..., (end frame)]`, the latent shape and the sequence length.
"""
from __future__ import annotations

import math
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from ..models.configs import LATENT_MEAN, LATENT_STD, PATCH_SIZE, TEXT_LEN, VAE_STRIDE
from ..media.images import resize_bicubic, to_image_batch, to_signed
from ..profiling import stage
from .defaults import AREA_480P

CELL = VAE_STRIDE[1] * PATCH_SIZE[1]   # 16 px: one DiT token in each spatial direction


# ----------------------------------------------------------------------------------------------
# Sizes and frame counts
# ----------------------------------------------------------------------------------------------

def official_size(image_height: int, image_width: int, max_area: int) -> tuple[int, int]:
    """Output (height, width) by the official rule: the input's aspect ratio at `max_area`.

    Reproduces the float64 arithmetic of `WanI2V.generate`, including its rounding quirks
    (a 480x832 landscape image at 832*480 gives 464x832).
    """
    if image_height < 1 or image_width < 1:
        raise ValueError(f"image: expected a non-empty image, found {image_height}x{image_width}")
    aspect = image_height / image_width
    lat_h = round(math.sqrt(max_area * aspect) // VAE_STRIDE[1] // PATCH_SIZE[1] * PATCH_SIZE[1])
    lat_w = round(math.sqrt(max_area / aspect) // VAE_STRIDE[2] // PATCH_SIZE[2] * PATCH_SIZE[2])
    if lat_h < PATCH_SIZE[1] or lat_w < PATCH_SIZE[2]:
        raise ValueError(f"max_area={max_area} with a {image_height}x{image_width} image gives an output of "
                         f"{lat_h * 8}x{lat_w * 8} px, smaller than one {CELL}x{CELL} latent cell; "
                         f"raise max_area or use a less extreme aspect ratio")
    return lat_h * VAE_STRIDE[1], lat_w * VAE_STRIDE[2]


def check_size(height: int, width: int, snap: bool = False) -> tuple[int, int]:
    """Validate an exact output size (multiples of 16 px); with `snap`, round down instead."""
    if snap:
        height, width = height // CELL * CELL, width // CELL * CELL
    if height < CELL or width < CELL:
        raise ValueError(f"height/width: expected at least {CELL} px, found {height}x{width}")
    if height % CELL or width % CELL:
        raise ValueError(f"height/width: expected multiples of {CELL} px (VAE stride 8 x patch 2), "
                         f"found {height}x{width}")
    return height, width


def check_frames(frames: int, snap: bool = False, name: str = "frames") -> int:
    """Validate a frame count of the form 4n+1; with `snap`, move to the nearest such count."""
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"{name}: expected a positive integer of the form 4n+1, found {frames!r}")
    if (frames - 1) % VAE_STRIDE[0] == 0:
        return frames
    if not snap:
        lo = (frames - 1) // 4 * 4 + 1
        raise ValueError(f"{name}: expected 4n+1 (e.g. {lo} or {lo + 4}), found {frames}")
    snapped = frames // 4 * 4 + 1  # nearest 4n+1; a tie (4n+3) rounds down
    warnings.warn(f"{name}={frames} is not 4n+1; using {snapped}")
    return snapped


def latent_frames(frames: int) -> int:
    return (frames - 1) // VAE_STRIDE[0] + 1


def seq_len(frames: int, height: int, width: int) -> int:
    """Number of DiT tokens: T * (h/16) * (w/16)."""
    return latent_frames(frames) * (height // CELL) * (width // CELL)


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------

def frame_mask(keep: torch.Tensor, lat_h: int, lat_w: int) -> torch.Tensor:
    """Official 4-channel latent mask from a per-pixel-frame keep flag (1 = given frame).

    keep: [F] (F = 4n+1). Frame 0 is repeated 4 times, so mask channel c of latent frame t is
    the flag of pixel frame 4t+c-3 (t >= 1) and the flag of frame 0 for t = 0.
    Returns [4, T, lat_h, lat_w] float32.
    """
    keep = keep.float()
    padded = torch.cat([keep[:1].repeat(4), keep[1:]])            # [F + 3]
    mask = padded.view(-1, 4).t()                                   # [4, T]
    return mask[:, :, None, None].expand(-1, -1, lat_h, lat_w).contiguous()


def keep_flags(frames: int, start_frames: int = 1, end_frame: bool = False) -> torch.Tensor:
    """[F] flags: 1 for the first `start_frames` frames (and the last frame if `end_frame`)."""
    keep = torch.zeros(frames)
    keep[:start_frames] = 1
    if end_frame:
        keep[-1] = 1
    return keep


# ----------------------------------------------------------------------------------------------
# Latent normalisation (the DiT works on normalised latents; ComfyUI's LATENT carries raw ones)
# ----------------------------------------------------------------------------------------------

def _stats(like: torch.Tensor, caller: str) -> tuple[torch.Tensor, torch.Tensor]:
    if like.ndim < 2 or like.shape[1] != len(LATENT_MEAN):
        raise ValueError(f"{caller}: `z` must be a Wan2.1 latent [B, {len(LATENT_MEAN)}, T, h, w] with "
                         f"{len(LATENT_MEAN)} latent channels, found shape {tuple(like.shape)}")
    shape = (1, -1) + (1,) * (like.ndim - 2)
    mean = torch.tensor(LATENT_MEAN, dtype=torch.float32, device=like.device).view(shape)
    std = torch.tensor(LATENT_STD, dtype=torch.float32, device=like.device).view(shape)
    return mean, std


def normalize_latent(z: torch.Tensor) -> torch.Tensor:
    """Raw VAE latent [B, 16, T, h, w] -> the DiT's space: (z - mean) / std."""
    mean, std = _stats(z, "normalize_latent")
    return (z.float() - mean) / std


def denormalize_latent(z: torch.Tensor) -> torch.Tensor:
    """DiT latent -> raw VAE latent: z * std + mean."""
    mean, std = _stats(z, "denormalize_latent")
    return z.float() * std + mean


# ----------------------------------------------------------------------------------------------
# The conditioning object
# ----------------------------------------------------------------------------------------------

@dataclass
class I2VConditioning:
    """Everything the denoiser needs besides the noisy latent.

    context / context_null: text features [L, 4096] (L <= 512; the DiT zero-pads to 512).
    clip_fea: [1, 257, 1280] image features ([1, 514, 1280] for first+last frame), None for t2v.
    latent_image: RAW VAE latent [1, 16, T, h, w] of the conditioning clip, None for t2v.
    mask: [1, 4, T, h, w] in the official layout, 1 = frame given, None for t2v.
    latent_shape: (16, T, h, w) of the latent to generate.
    """

    context: torch.Tensor
    context_null: torch.Tensor
    clip_fea: torch.Tensor | None
    latent_image: torch.Tensor | None
    mask: torch.Tensor | None
    latent_shape: tuple

    @property
    def frames(self) -> int:
        return (self.latent_shape[1] - 1) * VAE_STRIDE[0] + 1

    @property
    def height(self) -> int:
        return self.latent_shape[2] * VAE_STRIDE[1]

    @property
    def width(self) -> int:
        return self.latent_shape[3] * VAE_STRIDE[2]

    @property
    def seq_len(self) -> int:
        return seq_len(self.frames, self.height, self.width)

    @property
    def has_image(self) -> bool:
        return self.latent_image is not None

    def y(self) -> torch.Tensor | None:
        """The DiT's 20 conditioning channels: [mask 4 | normalised latent 16], [1, 20, T, h, w]."""
        if self.latent_image is None:
            return None
        return torch.cat([self.mask.float(), normalize_latent(self.latent_image)], dim=1)

    def with_texts(self, context: torch.Tensor, context_null: torch.Tensor) -> "I2VConditioning":
        return replace(self, context=context, context_null=context_null)


def trim_context(context: torch.Tensor, name: str = "context") -> torch.Tensor:
    """[L, 4096] or [1, L, 4096] -> [L, 4096] with L <= 512.

    Trailing all-zero rows (ComfyUI pads T5 output to 512 with zeros) are harmless; rows past 512
    are dropped with a warning, as the DiT's image/text split relies on exactly 512 text rows.
    """
    if context.ndim == 3:
        if context.shape[0] != 1:
            raise ValueError(f"{name}: expected one prompt ([1, L, 4096]), found batch {context.shape[0]}")
        context = context[0]
    if context.ndim != 2:
        raise ValueError(f"{name}: expected text features [L, 4096], found shape {tuple(context.shape)}")
    if context.shape[0] > TEXT_LEN:
        warnings.warn(f"{name} has {context.shape[0]} tokens; Wan2.1 reads {TEXT_LEN}, the rest is dropped")
        context = context[:TEXT_LEN]
    return context


def conditioning_clip(images: torch.Tensor, frames: int, height: int, width: int,
                      end_image: torch.Tensor | None = None, crop: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel clip the VAE encodes and its keep flags.

    images: [N, H, W, 3] start frames in 0..1 (N <= frames); end_image: [1, H', W', 3] or None.
    Returns (video [1, 3, F, height, width] in [-1, 1], keep [F]). Frames that are not given are
    0 (mid grey), as in the official code.
    """
    starts = resize_frames(images, height, width, crop)[:frames]             # [N, 3, h, w]
    video = torch.zeros(3, frames, height, width)
    video[:, : starts.shape[0]] = starts.transpose(0, 1)
    if end_image is not None:
        video[:, -1] = resize_frames(end_image, height, width, crop)[0]
    keep = keep_flags(frames, starts.shape[0], end_frame=end_image is not None)
    return video[None], keep


def resize_frames(images: torch.Tensor, height: int, width: int, crop: str = "none") -> torch.Tensor:
    """[N, H, W, 3] in 0..1 -> [N, 3, height, width] in [-1, 1].

    crop="none" stretches like the official code; crop="center" first cuts the input to the target
    aspect ratio (ComfyUI's WanImageToVideo behaviour) and then resizes.
    """
    signed = to_signed(images)
    if crop == "center":
        signed = center_crop_to_aspect(signed, height / width)
    elif crop != "none":
        raise ValueError(f"crop: expected 'none' or 'center', found {crop!r}")
    return resize_bicubic(signed, height, width)


def center_crop_to_aspect(images: torch.Tensor, aspect: float) -> torch.Tensor:
    """Crop [N, C, H, W] around the centre to height/width == aspect."""
    h, w = images.shape[-2:]
    if h / w > aspect:
        new_h = max(1, round(w * aspect))
        top = (h - new_h) // 2
        return images[..., top: top + new_h, :]
    new_w = max(1, round(h / aspect))
    left = (w - new_w) // 2
    return images[..., :, left: left + new_w]


def output_size(images: torch.Tensor, max_area: int | None, width: int | None, height: int | None,
                snap: bool = False) -> tuple[int, int]:
    """(height, width): exact when both are given, otherwise the official area rule."""
    if width is not None and height is not None:
        return check_size(height, width, snap)
    if width is not None or height is not None:
        raise ValueError("width/height: give both for an exact size, or neither to use max_area")
    if max_area is None:
        raise ValueError("max_area: required when width and height are not given")
    return official_size(images.shape[1], images.shape[2], max_area)


def check_image_size(images: torch.Tensor, name: str = "image") -> None:
    if images.shape[1] < CELL or images.shape[2] < CELL:
        raise ValueError(f"{name}: expected at least {CELL}x{CELL} px (one latent cell), "
                         f"found {images.shape[1]}x{images.shape[2]}")


@dataclass
class FusionPlan:
    """The validated inputs of the fusion stage: frames to condition on and the output geometry."""

    images: torch.Tensor             # [N, H, W, 3] start frames in 0..1
    end_image: torch.Tensor | None   # [1, H', W', 3] or None
    frames: int
    height: int
    width: int
    crop: str = "none"

    @property
    def latent_shape(self) -> tuple:
        return (16, latent_frames(self.frames), self.height // VAE_STRIDE[1], self.width // VAE_STRIDE[2])


def plan_fusion(image, *, frames: int = 81, max_area: int | None = AREA_480P, width: int | None = None,
                height: int | None = None, end_image=None, crop: str = "none", snap: bool = False) -> FusionPlan:
    """Check the inputs and fix the output size (exact width x height, or the official area rule).

    image: anything `images.to_image_batch` accepts; all its frames become start frames.
    """
    images = to_image_batch(image, "image")
    check_image_size(images)
    frames = check_frames(frames, snap)
    height, width = output_size(images, max_area, width, height, snap)
    if images.shape[0] > frames:
        raise ValueError(f"image: {images.shape[0]} start frames do not fit in frames={frames}")
    ends = None
    if end_image is not None:
        ends = to_image_batch(end_image, "end_image")[-1:]
        check_image_size(ends, "end_image")
    return FusionPlan(images, ends, frames, height, width, crop)


def fuse_frames(plan: FusionPlan, encode_video: Callable[[torch.Tensor], torch.Tensor],
                clip_features: Callable[[], Any] | None = None, *,
                timer: Callable[[str], Any] | None = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The image side of the fusion stage, shared by `build_conditioning` (so `I2VPipeline` and the
    command line) and the ComfyUI fusion node: image features, the VAE latent of the conditioning clip
    `[start frames, grey frames..., (end frame)]` and its frame mask.

    encode_video: pixel clip [1, 3, F, H, W] in [-1, 1] -> raw VAE latent [1, 16, T, h, w].
    clip_features: () -> the image features to carry (e.g. `encode_clip_features` of an image encoder,
    or features computed elsewhere), or None for none.
    timer: stage name ("image encoder", "vae encode") -> a context manager timing that stage.
    Returns (raw latent, official mask [1, 4, T, h, w], image features).
    """
    timer = timer or (lambda name: nullcontext())
    with timer("image encoder"):
        features = clip_features() if clip_features is not None else None
    with timer("vae encode"):
        video, keep = conditioning_clip(plan.images, plan.frames, plan.height, plan.width, plan.end_image,
                                        plan.crop)
        latent = encode_video(video)
        _, _, lat_h, lat_w = plan.latent_shape
        mask = frame_mask(keep, lat_h, lat_w)[None]
    return latent, mask, features


def encode_conditioning_clip(vae, plan: FusionPlan, **vae_options) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE-encode [start frames, grey..., (end frame)]: (raw latent [1, 16, T, h, w], mask [1, 4, T, h, w])."""
    latent, mask, _ = fuse_frames(plan, _vae_encoder(vae, vae_options))
    return latent, mask


def _vae_encoder(vae, vae_options: dict | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """`encode_video` of `fuse_frames` for a WanVAE: on its device and dtype, back as float32 on the CPU."""
    return lambda video: vae.encode(video.to(vae.device, vae.dtype), **(vae_options or {})).float().cpu()


def check_end_image(plan: FusionPlan, model_type: str | None) -> None:
    """First+last-frame conditioning needs an flf2v DiT (`model_type` None: not checked)."""
    if plan.end_image is not None and model_type is not None and model_type != "flf2v":
        raise ValueError("end_image: first+last-frame conditioning needs an flf2v checkpoint "
                         f"(wan2.1_flf2v_720p_14B_*); this DiT is {model_type}")


def build_conditioning(text_encoder, image_encoder, vae, image, prompt: str, negative_prompt: str, *,
                       vae_options: dict | None = None, model_type: str | None = None, stats: list | None = None,
                       **plan_options) -> I2VConditioning:
    """The whole fusion stage: encode the texts, the image features and the conditioning clip.

    negative_prompt: already resolved (the pipeline substitutes the official default for None).
    plan_options: frames, max_area, width, height, end_image, crop, snap (see `plan_fusion`).
    vae_options: extra keyword arguments of `vae.encode` (spatial tiling).
    model_type: the DiT's ("i2v", "flf2v"), to refuse an end image an i2v DiT cannot use; None: unchecked.
    stats: when given, each model's stage ("text encoder", "image encoder", "vae encode") is timed
    into it (`profiling.StageStats`).
    """
    plan = plan_fusion(image, **plan_options)
    check_end_image(plan, model_type)
    devices = {"text encoder": text_encoder, "image encoder": image_encoder, "vae encode": vae}

    def timer(name: str):
        return nullcontext() if stats is None else stage(name, stats, devices[name].device)

    with timer("text encoder"):     # one prompt at a time, as the official code and the T5 node encode
        (context,), (context_null,) = text_encoder.encode([prompt]), text_encoder.encode([negative_prompt])
    latent, mask, clip_fea = fuse_frames(
        plan, _vae_encoder(vae, vae_options),
        lambda: encode_clip_features(image_encoder, plan.images[:1], plan.end_image), timer=timer)
    return I2VConditioning(context.float().cpu(), context_null.float().cpu(), clip_fea.float().cpu(),
                           latent, mask, plan.latent_shape)


def join_clip_features(first: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
    """First-frame features [B, 257, 1280], or first+last concatenated along the tokens [B, 514, 1280] (flf2v)."""
    return first if last is None else torch.cat([first, last], dim=-2)


def encode_clip_features(image_encoder, first: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP features of the first frame [1, 257, 1280], or first+last frames [1, 514, 1280].

    The official code encodes the full-resolution image; first and last may differ in size.
    """
    features = image_encoder.encode(first).penultimate_hidden_states
    if last is None:
        return features
    return join_clip_features(features, image_encoder.encode(last).penultimate_hidden_states)

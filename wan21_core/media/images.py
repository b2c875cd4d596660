"""Image input handling: accept PIL images, file paths, numpy arrays and ComfyUI IMAGE tensors.

Everything is converted to a float32 RGB tensor `[N, 3, H, W]` in [-1, 1], the official
`TF.to_tensor(img).sub_(0.5).div_(0.5)` convention (official `wan/image2video.py`, `WanI2V.generate`).
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Modes PIL opens 16-bit grayscale PNG/TIFF files in ("I" holds them as 32-bit integers).
SIXTEEN_BIT_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I")


def _pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image of any mode -> [1, H, W, 3] float in 0..1."""
    if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
        warnings.warn("image has an alpha channel; it is dropped (the RGB values are used as they are)")
    if img.mode in SIXTEEN_BIT_GRAY_MODES:     # PIL's convert("RGB") would clip these at 255, not scale
        gray = torch.from_numpy(np.asarray(img).astype(np.float32) / 65535.0)
        return gray[None, :, :, None].expand(-1, -1, -1, 3).contiguous()
    if img.mode != "RGB":
        img = img.convert("RGB")
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).float().div_(255.0)[None]


def _array_to_tensor(arr: "np.ndarray | torch.Tensor", name: str) -> torch.Tensor:
    """[H,W], [H,W,C] or [N,H,W,C] with C in {1,3,4} -> [N, H, W, 3] float."""
    t = torch.as_tensor(arr)
    if not t.is_floating_point():
        t = t.float().div_(255.0)
    t = t.float()
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an image shaped [H,W,3] or [N,H,W,3] (channels last, values 0..1), "
                         f"found shape {tuple(torch.as_tensor(arr).shape)}")
    if t.shape[-1] == 4:
        warnings.warn(f"{name} has an alpha channel; it is dropped")
        t = t[..., :3]
    if t.shape[-1] == 1:
        t = t.expand(*t.shape[:-1], 3)
    return t


def to_image_batch(image, name: str = "image") -> torch.Tensor:
    """Any supported image input -> ComfyUI layout `[N, H, W, 3]` float32 in 0..1 (on CPU)."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: file not found: {path}")
        with Image.open(path) as img:
            return _pil_to_tensor(img)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return _array_to_tensor(image.detach().cpu() if isinstance(image, torch.Tensor) else image, name)
    raise TypeError(f"{name}: expected a PIL image, a file path, a numpy array or a tensor, found {type(image).__name__}")


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """[N, H, W, 3] in 0..1 -> [N, 3, H, W] in [-1, 1] (float32)."""
    return images.float().permute(0, 3, 1, 2).sub(0.5).div(0.5)


def to_unit(video: torch.Tensor) -> torch.Tensor:
    """[3, F, H, W] in [-1, 1] -> [F, H, W, 3] in 0..1 (the ComfyUI IMAGE layout of a clip)."""
    return video.float().add(1).div(2).clamp_(0, 1).permute(1, 2, 3, 0).contiguous()


def resize_bicubic(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Official conditioning resize: bicubic, align_corners=False, no antialias, no clamp.

    images: [N, 3, H, W] in [-1, 1] -> [N, 3, height, width]. A no-op at the same size.
    """
    if images.shape[-2:] == (height, width):
        return images
    return F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False)

"""Writing generated clips: mp4 (PyAV, H.264), a PNG frame folder, or an animated WebP."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[F, H, W, 3] float in 0..1 -> uint8 array of the same shape."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected [F, H, W, 3] in 0..1, found shape {tuple(frames.shape)}")
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_mp4(frames: torch.Tensor, path: str | os.PathLike, fps: float = 16, crf: int = 18) -> str:
    """H.264 mp4 (yuv420p). Odd sizes are padded by one pixel, as the codec needs even sizes."""
    import av

    data = _to_uint8(frames)
    pad_h, pad_w = data.shape[1] % 2, data.shape[2] % 2
    if pad_h or pad_w:
        data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height = data.shape[2], data.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_png_frames(frames: torch.Tensor, directory: str | os.PathLike) -> list[str]:
    """One PNG per frame: frame_00000.png, ..."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, frame in enumerate(_to_uint8(frames)):
        path = os.path.join(directory, f"frame_{i:05d}.png")
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


def write_webp(frames: torch.Tensor, path: str | os.PathLike, fps: float = 16, quality: int = 90) -> str:
    """Animated WebP that loops forever."""
    images = [Image.fromarray(frame) for frame in _to_uint8(frames)]
    path = os.fspath(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   quality=quality)
    return path

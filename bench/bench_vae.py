"""VAE decode and encode: this code vs diffusers `AutoencoderKLWan` on the same random weights.

Timing: both implementations alternate in one process (warm-up first: first calls pay one-off kernel
set-up and weight page-in; see docs/benchmarks.md, "VAE decode") and the
table gives medians over quiet repetitions and the ratio diffusers / ours (> 1: ours is faster).
Memory: every (implementation, frame count) decode runs in a fresh subprocess, so peaks do not
mix; the table gives RSS after loading, peak RSS and their difference (decode working memory).

    .venv/bin/python bench/bench_vae.py                      # base_dim 32, 33 frames, 256×256
    .venv/bin/python bench/bench_vae.py --base-dim 96 --reps 1   # the real Wan2.1 VAE size (slow)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import current_rss_mb, interleaved, machine_line, set_threads  # noqa: E402
from wan21_core import tiny  # noqa: E402
from wan21_core.models import VAEConfig, WanVAE  # noqa: E402


def random_vae(base_dim: int, seed: int = 0) -> WanVAE:
    """A WanVAE in which every weight is random (`wan21_core.tiny.randomize`: fan-in scaled kernels,
    gains near 1, small biases)."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in WanVAE(VAEConfig(base_dim=base_dim)).state_dict().items()}
    return WanVAE.from_state_dict(tiny.randomize(shapes, seed)).eval().requires_grad_(False)


def diffusers_peer(vae: WanVAE):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    peer = AutoencoderKLWan(base_dim=vae.config.base_dim).eval().requires_grad_(False)
    peer.load_state_dict(convert_wan_vae_to_diffusers(dict(vae.state_dict())), strict=True)
    return peer


def inputs(frames: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8, generator=g)
    video = torch.randn(1, 3, frames, size, size, generator=g).clamp_(-1, 1)
    return latent, video


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def timing_rows(args) -> list[str]:
    ours = random_vae(args.base_dim)
    peer = diffusers_peer(ours)
    latent, video = inputs(args.frames, args.size)
    with torch.inference_mode():
        agree_dec = rel_l2(ours.decode(latent), peer.decode(latent).sample)
        ops = {"decode": ({"ours": lambda: ours.decode(latent),
                           "diffusers": lambda: peer.decode(latent).sample}, agree_dec)}
        if not args.skip_encode:
            agree_enc = rel_l2(ours.encode(video), peer.encode(video).latent_dist.mode())
            ops["encode"] = ({"ours": lambda: ours.encode(video),
                              "diffusers": lambda: peer.encode(video).latent_dist.mode()}, agree_enc)
        rows = []
        for op, (fns, agreement) in ops.items():
            result = interleaved(fns, reps=args.reps, warmup=0)  # the agreement run above warmed up
            ratio = result["diffusers"].median / result["ours"].median
            for name, t in result.items():
                rows.append(f"| {op} | {name} | {t.median:.2f} | {min(t.seconds):.2f} | {max(t.seconds):.2f} "
                            f"| {t.n_quiet}/{len(t.seconds)} | {ratio:.2f} | {agreement:.1e} |")
    return rows


def peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM). Unlike getrusage's ru_maxrss, it is not inherited
    from a parent across fork + exec, so a child started by a big parent measures only itself."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def memory_child(args) -> None:
    """Runs in a fresh process: load one implementation, decode once, print RSS numbers as JSON."""
    latent, _ = inputs(args.frames, args.size)
    if args.memory_child == "ours":
        model = random_vae(args.base_dim)
        decode = model.decode
    else:
        model = diffusers_peer(random_vae(args.base_dim))
        decode = lambda z: model.decode(z).sample  # noqa: E731
    loaded = current_rss_mb()
    peak_before = peak_rss_mb()
    with torch.inference_mode():
        decode(latent)
    print(json.dumps({"loaded": loaded, "peak": peak_rss_mb(), "peak_before": peak_before}))


def memory_rows(args) -> list[str]:
    rows, growth = [], {}
    for impl in ("ours", "diffusers"):
        for frames in (9, args.frames):
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", impl, "--frames", str(frames),
                   "--size", str(args.size), "--base-dim", str(args.base_dim), "--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            m = json.loads(out.strip().splitlines()[-1])
            growth[impl, frames] = m["peak"] - m["loaded"]
            note = "" if m["peak"] > m["peak_before"] else " (peak set before decode)"
            rows.append(f"| {impl} | {frames} | {m['loaded']:.0f} | {m['peak']:.0f} | "
                        f"{growth[impl, frames]:.0f}{note} |")
    for impl in ("ours", "diffusers"):
        rows.append(f"| {impl} | {args.frames} / 9 | | | **{growth[impl, args.frames] / growth[impl, 9]:.2f}×** |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dim", type=int, default=32, help="96 is the real Wan2.1 VAE")
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--memory-child", choices=("ours", "diffusers"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return
    lat = f"[1,16,{(args.frames - 1) // 4 + 1},{args.size // 8},{args.size // 8}]"
    print(f"{machine_line()}; VAE base_dim {args.base_dim}; {args.frames} frames {args.size}×{args.size} "
          f"(latent {lat}); fp32\n")
    if not args.skip_timing:
        print("| op | impl | median s | min s | max s | quiet/reps | diffusers / ours | rel L2 vs diffusers |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(timing_rows(args)) + "\n")
    if not args.skip_memory:
        print("| impl | frames | RSS loaded MiB | peak RSS MiB | decode peak − loaded MiB |")
        print("|---|---|---|---|---|")
        print("\n".join(memory_rows(args)))


if __name__ == "__main__":
    main()

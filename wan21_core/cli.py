"""Command line: `python -m wan21_core i2v ...` generates a clip with Wan2.1 checkpoints;
`python -m wan21_core demo` generates one with the built-in Wan2.1-tiny models (a bundled start image
and prompt by default, at the size and length they were trained for)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from .sampling.defaults import AREA_480P, AREA_720P, I2V_FRAMES, I2V_GUIDANCE, I2V_STEPS, FPS, default_shift
from .profiling import StageStats, stage
from .sampling.sigmas import SCHEDULE_KINDS
from .sampling.solvers import SOLVERS

DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
          "fp8": torch.float8_e4m3fn}
AREAS = {"480p": AREA_480P, "720p": AREA_720P}


def _add_generation_args(p: argparse.ArgumentParser, frames: int, steps: int, area: str) -> None:
    p.add_argument("--prompt", default="", help="what should happen in the clip")
    p.add_argument("--negative-prompt", default=None, help="default: the official Wan2.1 negative prompt")
    p.add_argument("--frames", type=int, default=frames, help="number of frames, 4n+1 (16 fps)")
    p.add_argument("--steps", type=int, default=steps, help="sampling steps")
    p.add_argument("--guidance", type=float, default=I2V_GUIDANCE, help="classifier-free guidance scale")
    p.add_argument("--shift", type=float, default=None, help="sigma shift (default: 3 at 480p, 5 at 720p)")
    p.add_argument("--solver", choices=SOLVERS, default="unipc")
    p.add_argument("--schedule", choices=SCHEDULE_KINDS, default="official")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=sorted(AREAS), default=area,
                   help="target area; the aspect ratio follows the image (official rule)")
    p.add_argument("--max-area", type=int, default=None, help="target area in pixels (overrides --size)")
    p.add_argument("--width", type=int, default=None, help="exact width (with --height), multiple of 16")
    p.add_argument("--height", type=int, default=None, help="exact height (with --width), multiple of 16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="auto",
                   help="DiT weight dtype (auto: fp8 files stay fp8, fp16 on a CPU computes in fp32, else as stored)")
    p.add_argument("--vae-tile", type=int, default=None, help="spatial VAE tile size in pixels (saves memory)")
    p.add_argument("--out", default="video.mp4", help="output mp4 path")
    p.add_argument("--frames-dir", default=None, help="also write PNG frames into this folder")
    p.add_argument("--webp", default=None, help="also write an animated WebP")
    p.add_argument("--fps", type=float, default=FPS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wan21_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    i2v = sub.add_parser("i2v", help="image-to-video with real Wan2.1 checkpoints")
    i2v.add_argument("--image", required=True, help="start frame (any image file)")
    i2v.add_argument("--end-image", default=None, help="last frame (needs an flf2v checkpoint)")
    for name, what in (("dit", "diffusion model"), ("vae", "VAE"), ("t5", "umT5 text encoder"),
                       ("clip", "CLIP vision encoder")):
        i2v.add_argument(f"--{name}", required=True, help=f"{what}: a file, shard index or diffusers folder")
    i2v.add_argument("--t5-device", default="cpu", help="where the text encoder runs (default cpu)")
    _add_generation_args(i2v, I2V_FRAMES, I2V_STEPS, "480p")
    demo = sub.add_parser("demo", help="image-to-video with the built-in Wan2.1-tiny models (CPU, seconds)")
    _add_demo_args(demo)
    return parser


def _add_demo_args(demo: argparse.ArgumentParser) -> None:
    from .embedded.builtin import DEMO, DEMO_IMAGE

    demo.add_argument("--image", default=DEMO_IMAGE, help="start frame (default: the bundled scene)")
    _add_generation_args(demo, DEMO.frames, DEMO.steps, "480p")
    demo.set_defaults(prompt=DEMO.prompt, guidance=DEMO.guidance, shift=DEMO.shift, solver=DEMO.solver,
                      max_area=DEMO.size * DEMO.size, device="cpu", out="demo.mp4")


def main(argv: list[str] | None = None) -> int:
    """Run the command; bad input (ValueError, CheckpointError, a missing file) prints one
    `error: ...` line on stderr and returns 2 instead of a traceback."""
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    try:
        if args.command == "demo":
            _set_up_demo(args)
        frames = generate(args)
        _write_outputs(frames, args)
    except (ValueError, FileNotFoundError) as err:      # CheckpointError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - began:.1f} s")
    return 0


def _set_up_demo(args) -> None:
    from .embedded.builtin import builtin_available, builtin_paths

    args.end_image = None
    check_inputs(args)
    args.t5_device = args.device
    if builtin_available():
        paths, label = builtin_paths(), "Wan2.1-tiny (built-in)"
    else:
        paths, label = _random_models(), "random-weight tiny models"
    args.dit, args.vae, args.t5, args.clip = paths["dit"], paths["vae"], paths["t5"], paths["clip_vision"]
    print(f"{label}: {args.prompt!r}, {args.frames} frames, {args.steps} steps, seed {args.seed}")


def _random_models() -> dict:
    """Until Wan2.1-tiny's trained files are committed, the demo runs the same chain on seeded random
    weights (the video is noise; it shows that every stage runs)."""
    from .tiny import write_tiny_model_set

    print("NOTE: this checkout has no trained Wan2.1-tiny weights yet; the demo runs on RANDOM weights "
          "and the video is noise (train them with `python -m wan21_core.embedded train DIR`).")
    return write_tiny_model_set(os.path.join(tempfile.gettempdir(), "wan21_core_random_tiny_models"))


def check_inputs(args) -> None:
    """Validate the frame count, the size and the images before any model is loaded."""
    from .sampling.conditioning import plan_fusion

    plan_fusion(args.image, frames=args.frames, max_area=_max_area(args), width=args.width, height=args.height,
                end_image=args.end_image)


def _max_area(args) -> int:
    return args.max_area or AREAS[args.size]


def generate(args) -> torch.Tensor:
    from .pipeline import load_pipeline

    check_inputs(args)
    stats: list[StageStats] = []
    with stage("load models", stats, args.device):
        pipe = load_pipeline(args.dit, args.vae, args.t5, args.clip, args.device, dit_dtype=DTYPES[args.dtype],
                             t5_device=args.t5_device)
    max_area = _max_area(args)
    shift = args.shift if args.shift is not None else default_shift(max_area)
    vae_options = {"tile": args.vae_tile} if args.vae_tile else None
    with _progress(args.steps) as on_step:
        frames = pipe(args.image, args.prompt, args.negative_prompt, frames=args.frames, steps=args.steps,
                      guidance=args.guidance, shift=shift, solver=args.solver, seed=args.seed, max_area=max_area,
                      width=args.width, height=args.height, end_image=args.end_image, schedule=args.schedule,
                      callback=on_step, vae_options=vae_options)
    for s in stats + pipe.stats:
        print(s.describe())
    print(f"{frames.shape[0]} frames at {frames.shape[2]}x{frames.shape[1]}")
    return frames


class _progress:
    """A tqdm progress bar (with ETA) driven by the sampler's step callback.

    The bar starts at the first finished step, so the ETA measures sampling steps only.
    """

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def __enter__(self):
        return self.update

    def update(self, info) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=info.total, initial=info.step, desc="sampling", unit="step", file=sys.stdout)
        else:
            self.bar.update(info.step - self.bar.n)
        if info.step == info.total:
            self.bar.close()

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def _write_outputs(frames: torch.Tensor, args) -> None:
    from .media.video import write_mp4, write_png_frames, write_webp

    print("wrote", write_mp4(frames, args.out, args.fps))
    if args.frames_dir:
        print("wrote", len(write_png_frames(frames, args.frames_dir)), "PNG frames to", args.frames_dir)
    if args.webp:
        print("wrote", write_webp(frames, args.webp, args.fps))

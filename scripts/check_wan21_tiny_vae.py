#!/usr/bin/env python
"""How well a Wan2.1-tiny VAE state reconstructs (docs/wan21_tiny.md, the VAE stage).

    python scripts/check_wan21_tiny_vae.py DIR [--clips 8] [--threads 2]

Reads DIR/vae_training.pt (written by `python -m wan21_core.embedded train-vae DIR` or `train DIR`), and
the decoder refinement's DIR/decoder_refinement.pt when `train` has written one, and prints markdown
tables: the PSNR of full held-out world clips (96 px, 25 frames, seeds the training never draws) for
the first frame and for all frames; the first-frame PSNR of the start images of the evaluation's
held-out cases (the images the whole-model test starts from: its 25 dB bar is the decoder's to
clear); and for every world colour a 16-px square on a dark background: the reconstructed centre
pixel next to the true sRGB value (a colour-blind VAE gives grey there).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench._common import machine_line  # noqa: E402

from wan21_core.embedded.calibration import fold_latent_statistics, latent_statistics  # noqa: E402
from wan21_core.embedded.decoder_refinement import STATE_FILE as DECODER_STATE  # noqa: E402
from wan21_core.embedded.evaluation import held_out_cases, psnr  # noqa: E402
from wan21_core.embedded.vae_training import STATE_FILE  # noqa: E402
from wan21_core.embedded.world import COLOURS, render_clip, sample_scene  # noqa: E402
from wan21_core.models import VAEConfig, WanVAE  # noqa: E402

BACKGROUND = (40, 45, 40)


def load_state(directory: str) -> tuple[WanVAE, str]:
    """The VAE as `train` leaves it (calibrated, decoder refined if that stage has run) and what it went through."""
    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    vae = WanVAE(VAEConfig(base_dim=state["config"]["base_dim"]))
    vae.load_state_dict(state["model"])
    vae.eval().requires_grad_(False)
    stages = f"{state['step']} VAE steps"
    refined = os.path.join(directory, DECODER_STATE)
    if os.path.exists(refined):
        decoder = torch.load(refined, map_location="cpu", weights_only=True)
        fold_latent_statistics(vae, *latent_statistics(vae, seed=state["config"]["seed"]))
        vae.load_state_dict(decoder["decoder"], strict=False)     # conv2.* and decoder.*: the VAE's own keys
        stages += f" and {decoder['step']} decoder refinement steps"
    return vae, stages


def round_trip(vae: WanVAE, frames: torch.Tensor) -> torch.Tensor:
    """frames [F, H, W, 3] in 0..1 -> the VAE's reconstruction, same layout."""
    video = frames.permute(3, 0, 1, 2)[None].mul(2).sub(1)                   # [F,H,W,3] -> [1,3,F,H,W]
    return vae.decode(vae.encode(video))[0].permute(1, 2, 3, 0).add(1).div(2)


def colour_square(rgb: tuple[int, int, int], size: int = 64, side: int = 16) -> torch.Tensor:
    frame = torch.tensor(BACKGROUND, dtype=torch.float32).div(255).expand(1, size, size, 3).clone()
    lo = (size - side) // 2
    frame[:, lo:lo + side, lo:lo + side] = torch.tensor(rgb, dtype=torch.float32).div(255)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vae, stages = load_state(args.directory)
    first, whole = [], []
    for index in range(args.clips):
        clip = render_clip(sample_scene(2**31 + index), frames=25, size=96)
        recon = round_trip(vae, clip)
        first.append(psnr(recon[:1], clip[:1]))
        whole.append(psnr(recon, clip))
    starts = [psnr(round_trip(vae, image), image) for image in _start_images()]
    print(f"VAE after {stages}, {args.clips} held-out clips (96 px, 25 frames); {machine_line()}\n")
    print("| PSNR | first frame | all frames |\n|---|---|---|")
    print(f"| mean | {sum(first) / len(first):.1f} dB | {sum(whole) / len(whole):.1f} dB |")
    print(f"| worst | {min(first):.1f} dB | {min(whole):.1f} dB |\n")
    print(f"| first frame, start images of the {len(starts)} held-out cases | mean | worst |\n|---|---|---|")
    print(f"| PSNR | {sum(starts) / len(starts):.1f} dB | {min(starts):.1f} dB |\n")
    print(f"| colour (16-px square on {BACKGROUND}) | true sRGB | reconstructed centre |\n|---|---|---|")
    for name, rgb in COLOURS.items():
        centre = round_trip(vae, colour_square(rgb))[0, 32, 32].mul(255).round().int().tolist()
        print(f"| {name} | {rgb} | {tuple(centre)} |")


def _start_images() -> list[torch.Tensor]:
    """The start image [1, 96, 96, 3] of each held-out case of the evaluation (10 per verb; opposite
    verbs share theirs), as the whole-model test meets them."""
    return [case.start_image() for case in held_out_cases(per_verb=10)]


if __name__ == "__main__":
    main()

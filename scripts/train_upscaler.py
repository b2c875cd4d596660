#!/usr/bin/env python
"""Train the cascaded upscaler shipped in wan21_core/weights (see docs/upscaler_training.md).

Data (real photographs from packages; nothing is downloaded while this runs):

    apt-get install -y mate-backgrounds opencv-doc   # Debian: 12 + 20 training photos
    pip install scikit-image                          # held-out photos (+ 1 training photo)

Examples:

    # the shipped weights (GPU, time budgets per phase; the step counts used are logged)
    python scripts/train_upscaler.py --device cuda --batch 32 --lr-patch 64 \
        --seconds 150,75,40,90 --out wan21_core/weights --log train_log.jsonl
    # CPU, fixed step counts (reproducible step for step)
    nice -n 10 python scripts/train_upscaler.py --threads 1 --steps 6000,3000,1500,2000 \
        --out /tmp/cascade --log /tmp/cascade/log.jsonl

Phases: stage_a (×2), stage_b (second ×2 of ×4), enhancer (×1), adversarial.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from wan21_core.upscale.training.train import PHASES, STAGE_INITS, TrainConfig, train_cascade  # noqa: E402


def _per_phase(text: str | None, cast) -> dict | None:
    if text is None:
        return None
    values = [cast(v) for v in text.split(",")]
    if len(values) != len(PHASES):
        raise SystemExit(f"expected {len(PHASES)} comma-separated values ({', '.join(PHASES)}), "
                         f"found {text!r}")
    return dict(zip(PHASES, values))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the cascade files")
    ap.add_argument("--log", required=True, help="JSON-lines training log")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr-patch", type=int, default=48, help="LR patch edge of ×2 samples")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--steps", default="6000,3000,1500,2000", help="steps per phase")
    ap.add_argument("--seconds", default=None, help="time budget per phase (caps --steps)")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--gan-weight", type=float, default=5e-3, help="λ of L_GAN")
    ap.add_argument("--feature-weight", type=float, default=0.1,
                    help="weight of the feature term inside L_content")
    ap.add_argument("--vgg-weights", default=None,
                    help="torchvision vgg19 .pth for a VGG conv5_4 feature term; without it the "
                         "discriminator feature-matching substitute is used")
    ap.add_argument("--init", default=None,
                    help="cascade file to start from (e.g. with --phases adversarial)")
    ap.add_argument("--mate-dir", default=None)
    ap.add_argument("--opencv-dir", default=None)
    ap.add_argument("--plasma-dir", default=None,
                    help="extra training photos: plasma-workspace-wallpapers' folder "
                         "(/usr/share/wallpapers); the shipped cascade's fine-tune run uses them")
    ap.add_argument("--lomiri-dir", default=None,
                    help="extra training photos: lomiri-wallpapers-16.04/-20.04's folder "
                         "(/usr/share/backgrounds); the shipped cascade's fine-tune run uses them")
    ap.add_argument("--stage-features", type=int, default=TrainConfig.stage_features,
                    help="channels of each ×2 stage's body (the shipped stages: 48)")
    ap.add_argument("--stage-convs", type=int, default=TrainConfig.stage_convs,
                    help="3×3 convolutions in each ×2 stage's body (the shipped stages: 16)")
    ap.add_argument("--stage-init", choices=STAGE_INITS, default=TrainConfig.stage_init,
                    help="init of the ×2 stages: 'torch' (PyTorch's default, the shipped run) or "
                         "'kaiming' (variance-preserving; deeper stages need it)")
    ap.add_argument("--grow-from", default=None,
                    help="cascade file whose stages start the run, grown (same function) to "
                         "--stage-features × --stage-convs; its enhancer is kept")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = TrainConfig(out_dir=args.out, log_path=args.log, device=args.device, seed=args.seed,
                      batch=args.batch, lr_patch=args.lr_patch, lr=args.lr,
                      steps=_per_phase(args.steps, int), seconds=_per_phase(args.seconds, float),
                      gan_weight=args.gan_weight, feature_weight=args.feature_weight,
                      vgg_weights=args.vgg_weights, mate_dir=args.mate_dir,
                      opencv_dir=args.opencv_dir, plasma_dir=args.plasma_dir,
                      lomiri_dir=args.lomiri_dir, init=args.init,
                      stage_features=args.stage_features, stage_convs=args.stage_convs,
                      stage_init=args.stage_init, grow_from=args.grow_from)
    summary = train_cascade(cfg, tuple(args.phases.split(",")))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

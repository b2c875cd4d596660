"""Whole image-to-video pipeline, stage by stage (issue 3): a 17-frame 256x256 clip, 40 UniPC steps.

Models (random weights, `wan21_core.tiny.randomize`): the real-size VAE (base_dim 96) and ViT-H/14
image encoder, the medium DiT of bench_dit.py (dim 512, 8 layers; the 14B model does not fit a
benchmark on this machine), and a umT5 of the real width (4096, 64 heads, FFN 10240) with 2 of its
24 layers and the tiny tokenizer. Prints each stage's time and peak RSS as a markdown table.

    .venv/bin/python bench/bench_pipeline.py [--threads 2] [--dit-dtype bf16] [--steps 40]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import machine_line, set_threads  # noqa: E402
from bench.bench_dit import MEDIUM  # noqa: E402
from wan21_core import tiny  # noqa: E402
from wan21_core.models.configs import VAEConfig  # noqa: E402
from wan21_core.models.dit.model import WanModel  # noqa: E402
from wan21_core.checkpoints import image_encoder_from_state_dict, text_encoder_from_state_dict  # noqa: E402
from wan21_core.models.image_encoder import clip_vit_h14_config  # noqa: E402
from wan21_core.models.text_encoder import umt5_xxl_config  # noqa: E402
from wan21_core.pipeline import I2VPipeline  # noqa: E402
from wan21_core.models.vae.model import WanVAE  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def shapes_of(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def build_models(dit_dtype: torch.dtype) -> I2VPipeline:
    with torch.device("meta"):
        dit = WanModel(MEDIUM)
        vae = WanVAE(VAEConfig())
    dit.load_state_dict(tiny.randomize(shapes_of(dit)), assign=True)
    vae.load_state_dict(tiny.randomize(shapes_of(vae)), assign=True)
    from transformers import CLIPVisionModel, UMT5EncoderModel

    t5_config = umt5_xxl_config()
    t5_config.num_layers, t5_config.vocab_size = 2, tiny.TINY_VOCAB
    with torch.device("meta"):
        t5_shapes = shapes_of(UMT5EncoderModel(t5_config))
        clip_shapes = shapes_of(CLIPVisionModel(clip_vit_h14_config()))
    t5_state = tiny.randomize({k: v for k, v in t5_shapes.items() if k != "encoder.embed_tokens.weight"})
    clip_state = tiny.randomize({k.removeprefix("vision_model."): v for k, v in clip_shapes.items()})
    text_encoder = text_encoder_from_state_dict(t5_state, tiny.tiny_spiece_model(), dtype=torch.float32)
    image_encoder = image_encoder_from_state_dict(clip_state)
    return I2VPipeline(dit.eval().cast_weights(dit_dtype), vae.eval(), text_encoder, image_encoder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dit-dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    set_threads(args.threads)
    start = time.perf_counter()
    pipe = build_models(DTYPES[args.dit_dtype])
    build = time.perf_counter() - start
    image = torch.rand(1, 256, 256, 3, generator=torch.Generator().manual_seed(0))
    frames = pipe(image, "a red kite over green hills, slow camera pan", frames=17, steps=args.steps,
                  guidance=5.0, shift=3.0, max_area=256 * 256, seed=0)
    total = sum(s.seconds for s in pipe.stats)
    print(f"{machine_line()}\n\n17 frames 256x256 -> {tuple(frames.shape)}, {args.steps} UniPC steps with CFG, "
          f"DiT {args.dit_dtype}; models built in {build:.1f} s\n")
    print("| stage | seconds | share | peak RSS MiB |\n|---|---|---|---|")
    for s in pipe.stats:
        print(f"| {s.name} | {s.seconds:.2f} | {100 * s.seconds / total:.0f} % | {s.peak_ram_mb:.0f} |")
    print(f"| total | {total:.2f} | 100 % | |")


if __name__ == "__main__":
    main()

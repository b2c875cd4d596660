"""`python -m wan21_core.embedded train-vae DIR [--steps N ...]`: train Wan2.1-tiny's stages (resumable)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .vae_training import VAETraining, train_vae


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wan21_core.embedded", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    vae = commands.add_parser("train-vae", help="stage 1: the VAE on world clips")
    vae.add_argument("directory", help="where the training state is kept (re-run to resume)")
    vae.add_argument("--device", default="cpu")
    for option in fields(VAETraining):
        if option.name != "losses":
            vae.add_argument("--" + option.name.replace("_", "-"), type=type(option.default), default=option.default,
                             help="(default: %(default)s)")
    args = parser.parse_args(argv)
    settings = {f.name: getattr(args, f.name) for f in fields(VAETraining) if f.name != "losses"}
    train_vae(args.directory, VAETraining(**settings), device=args.device)


if __name__ == "__main__":
    main()

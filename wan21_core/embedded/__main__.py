"""Train Wan2.1-tiny (resumable: run the same command again to continue).

    python -m wan21_core.embedded train DIR [--vae-steps N] [--decoder-steps N] [--dit-steps N] [--device cuda] [--out FOLDER]
    python -m wan21_core.embedded train-vae DIR [--steps N ...]      # the VAE stage alone
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from .decoder_refinement import DecoderRefinement
from .dit_training import DiTTraining
from .training_state import RESUMABLE
from .vae_training import VAETraining, train_vae

RECORDS = tuple(name for name in RESUMABLE if name != "steps")   # filled by training, not settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wan21_core.embedded", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    everything = commands.add_parser("train", help="every stage, then the built-in files")
    _add_common(everything)
    everything.add_argument("--out", default=None, help="where the files go (default: the package's weights/)")
    _add_settings(everything, VAETraining, "vae-")
    _add_settings(everything, DecoderRefinement, "decoder-")
    _add_settings(everything, DiTTraining, "dit-")
    vae = commands.add_parser("train-vae", help="stage 1 alone: the VAE on world clips")
    _add_common(vae)
    _add_settings(vae, VAETraining, "")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    if args.command == "train-vae":
        train_vae(args.directory, _settings(args, VAETraining, ""), device=args.device, log=log)
        return
    from .builtin import WEIGHTS_DIR
    from .train import train_wan21_tiny

    command = shlex.join(["python", "-m", "wan21_core.embedded"] + list(sys.argv[1:] if argv is None else argv))
    train_wan21_tiny(args.directory, _settings(args, VAETraining, "vae-"), _settings(args, DiTTraining, "dit-"),
                     _settings(args, DecoderRefinement, "decoder-"), out=args.out or WEIGHTS_DIR,
                     device=args.device, command=command, log=log)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="where the training state is kept (run again to resume)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: %(default)s)")


def _add_settings(parser: argparse.ArgumentParser, settings: type, prefix: str) -> None:
    for option in fields(settings):
        if option.name in RECORDS:
            continue
        flag = "--" + prefix + option.name.replace("_", "-")
        if isinstance(option.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=option.default,
                                help="(default: %(default)s)")
        else:
            parser.add_argument(flag, type=type(option.default), default=option.default, help="(default: %(default)s)")


def _settings(args: argparse.Namespace, settings: type, prefix: str):
    dest = prefix.replace("-", "_")
    return settings(**{f.name: getattr(args, dest + f.name) for f in fields(settings) if f.name not in RECORDS})


if __name__ == "__main__":
    main()

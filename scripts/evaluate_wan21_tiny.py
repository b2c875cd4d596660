#!/usr/bin/env python
"""The success table of Wan2.1-tiny (docs/wan21_tiny.md): every verb over held-out start images.

    python scripts/evaluate_wan21_tiny.py [--per-verb 10] [--steps N] [--guidance G] [--models DIR]

Generates each case through the real pipeline from the built-in files (or the four files in --models,
named as in wan21_core/embedded/builtin.py), judges the frames as tests/embedded/test_wan21_tiny.py
does and prints a markdown table: successes per verb, the opposite-motion rate of each verb pair, the
worst first-frame PSNR, and the time per clip.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench._common import machine_line  # noqa: E402

from wan21_core import load_pipeline  # noqa: E402
from wan21_core.embedded import DEMO, builtin_paths  # noqa: E402
from wan21_core.embedded.builtin import FILES  # noqa: E402
from wan21_core.embedded.evaluation import (OPPOSITE, OTHER_SHIFT, VERBS, evaluate, held_out_cases,  # noqa: E402
                                            signed_motion)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-verb", type=int, default=10)
    parser.add_argument("--steps", type=int, default=DEMO.steps)
    parser.add_argument("--guidance", type=float, default=DEMO.guidance)
    parser.add_argument("--shift", type=float, default=DEMO.shift)
    parser.add_argument("--models", default=None, help="folder with the four files (default: the built-in ones)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = {k: os.path.join(args.models, name) for k, name in FILES.items()} if args.models else builtin_paths()
    pipe = load_pipeline(paths["dit"], paths["vae"], paths["t5"], paths["clip_vision"], "cpu")
    settings = replace(DEMO, steps=args.steps, guidance=args.guidance, shift=args.shift)
    began = time.perf_counter()
    outcomes = evaluate(pipe, held_out_cases(args.per_verb), settings)
    seconds = time.perf_counter() - began
    print(f"{machine_line()}; {settings}")
    print(table(outcomes))
    print(f"\n{len(outcomes)} clips in {seconds:.0f} s ({seconds / len(outcomes):.2f} s per clip)")


def table(outcomes) -> str:
    by_verb = defaultdict(list)
    for outcome in outcomes:
        by_verb[outcome.case.verb].append(outcome)
    lines = ["| verb | named object does it | other object stays (two-object cases) | opposite motion | "
             "worst first-frame PSNR |", "|---|---|---|---|---|"]
    for verb in VERBS:
        runs = by_verb[verb]
        two = [o for o in runs if len(o.case.scene.things) == 2]
        pair = OPPOSITE.get(verb) or next((a for a, b in OPPOSITE.items() if b == verb), None)
        opposite = "" if pair is None else f"{_opposite_rate(runs, by_verb[pair]):.0%}"
        stays = sum(o.measured.get("other_shift", 0.0) < OTHER_SHIFT for o in two)
        lines.append(f"| {verb} | {sum(o.success for o in runs)}/{len(runs)} | "
                     f"{stays}/{len(two)} | {opposite} | {min(o.first_frame_psnr for o in runs):.1f} dB |")
    return "\n".join(lines)


def _opposite_rate(runs, others) -> float:
    """Share of shared start images where this verb and its opposite moved opposite ways."""
    pairs = list(zip(runs, others))
    return sum(signed_motion(a) * signed_motion(b) < 0 for a, b in pairs) / max(1, len(pairs))


if __name__ == "__main__":
    main()

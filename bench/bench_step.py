"""One sampling step with classifier-free guidance: this WanModel against diffusers (issue 3).

diffusers: two WanTransformer3DModel forwards per step (cond, then uncond), as its pipeline does.
ours: one batched forward with the context cache prepared once before sampling: x, t, y with batch 1
and a cache of 2 text contexts (cond, uncond) with 1 image; the output has batch 2.
The CFG combination v_u + g·(v_c − v_u) is included on both sides.

    .venv/bin/python bench/bench_step.py [--dtype fp32 bf16] [--reps 5] [--threads 2]

Floor = counted step FLOPs / the measured matmul rate in that dtype at the same thread count. Step
FLOPs = 2 × `step_flops` (both CFG passes in full: every projection, QK^T and PV of every block,
patch embedding, head); the step-invariant context work (`context_flops`) is not counted because the
cache does it once per sampling run. Our batched path shares the block-0 self-attention and image
attention of the two passes, so it does slightly less work than it is credited for.
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import machine_line, peak_rss_mb  # noqa: E402
from bench.bench_dit import (DTYPES, IMAGE_TOKENS, LATENT, MEDIUM, TEXT_TOKENS, build_diffusers,  # noqa: E402
                             build_ours, context_flops, interleaved_with_rate, make_inputs, parse_args,
                             random_official_state, rel_l2, step_flops)

GUIDE = 5.0


def cfg(v_cond: torch.Tensor, v_uncond: torch.Tensor) -> torch.Tensor:
    return v_uncond + GUIDE * (v_cond - v_uncond)


def main() -> None:
    args = parse_args(__doc__)
    state, inputs = random_official_state(MEDIUM), make_inputs(MEDIUM)
    uncond = torch.randn(1, 96, MEDIUM.text_dim, generator=torch.Generator().manual_seed(7))
    contexts = torch.cat([inputs["context"], torch.nn.functional.pad(uncond, (0, 0, 0, TEXT_TOKENS - 96))])
    flops = 2 * step_flops(MEDIUM)
    flops_two_forwards = flops + 2 * context_flops(MEDIUM)
    print(f"{machine_line()}\n\nCFG step, medium I2V DiT, latent {LATENT}, {TEXT_TOKENS}+{IMAGE_TOKENS} context "
          f"tokens; {flops / 1e9:.1f} GFLOP of per-step work ({flops_two_forwards / 1e9:.1f} in two full forwards); "
          f"{args.reps} interleaved reps\n")
    print("| dtype | diffusers 2 forwards s | ours batched + cache s | ours / diffusers | floor s | ours / floor | "
          "diffusers / floor | ours / two-forward floor | rel L2 vs diffusers fp32 | quiet reps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        reference = None
        for name in ["fp32"] + [d for d in args.dtype if d != "fp32"]:
            dtype = DTYPES[name]
            ours, peer = build_ours(state, MEDIUM, dtype), build_diffusers(state, MEDIUM, dtype)
            cache = ours.prepare_context(contexts, inputs["clip_fea"])     # once per sampling run
            x, t, y = inputs["x"], inputs["t"], inputs["y"]
            hidden = torch.cat([x, y], dim=1).to(dtype)
            image, peer_ctx = inputs["clip_fea"].to(dtype), contexts.to(dtype)

            def step_ours():
                v = ours(x, t, y=y, cache=cache)                            # [2, 16, T, H, W]
                return cfg(v[0:1], v[1:2])

            def step_peer():
                v_c = peer(hidden, t, peer_ctx[0:1], image, return_dict=False)[0].float()
                v_u = peer(hidden, t, peer_ctx[1:2], image, return_dict=False)[0].float()
                return cfg(v_c, v_u)

            if reference is None:
                reference = step_peer()
            if name not in args.dtype:
                continue
            out_ours = step_ours()
            times, rate = interleaved_with_rate({"diffusers": step_peer, "ours": step_ours}, dtype, args.reps)
            floor, floor_two = flops / rate, flops_two_forwards / rate
            t_peer, t_ours = times["diffusers"].median, times["ours"].median
            print(f"| {name} | {t_peer:.3f} | {t_ours:.3f} | **{t_ours / t_peer:.3f}** | {floor:.3f} | "
                  f"**{t_ours / floor:.2f}** | {t_peer / floor:.2f} | {t_ours / floor_two:.2f} | "
                  f"{rel_l2(out_ours, reference):.2e} | {times['ours'].n_quiet}/{args.reps} |")
            del ours, peer, cache
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB; floor = per-step matmul FLOPs / {args.threads}-thread matmul rate "
          f"in that dtype, measured between the timed rounds (median)")


if __name__ == "__main__":
    main()

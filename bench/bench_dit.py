"""DiT forward: this WanModel against diffusers' WanTransformer3DModel on the same weights (issue 2).

Medium I2V config (dim 512 = 4 heads of 128, 8 layers, ffn 2048), latent 21×20×20 (2100 tokens),
512 text + 257 image tokens. Random weights are built once (every tensor re-randomised), loaded into
this model and, through diffusers' own converter, into WanTransformer3DModel. Both run the plain
single forward (context embedding included) alternately in one process; medians are quiet-gated.

    .venv/bin/python bench/bench_dit.py [--dtype fp32 bf16] [--reps 5] [--threads 2]

bf16 means: ours = `cast_weights(bf16)` (fp32 time/modulation/norm/head parameters); diffusers =
`from_pretrained(torch_dtype=bfloat16)`, which keeps its `_keep_in_fp32_modules`, with bf16 inputs.
"""
from __future__ import annotations

import argparse
import math
import statistics
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import interleaved, machine_line, matmul_rate, peak_rss_mb, set_threads  # noqa: E402
from wan21_core.models import DiTConfig, WanModel  # noqa: E402

MEDIUM = DiTConfig(model_type="i2v", in_dim=36, dim=512, ffn_dim=2048, num_heads=4, num_layers=8)
LATENT = (21, 20, 20)          # latent frames, rows, columns (81 frames at 160×160): 2100 tokens
TEXT_TOKENS, IMAGE_TOKENS = 512, 257
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def random_official_state(config: DiTConfig, seed: int = 0) -> dict:
    """A state dict with official keys in which every tensor is random (no zero or unit inits)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, p in WanModel(config).state_dict().items():
        scale = 0.3 if p.dim() == 1 else p.shape[-1] ** -0.5
        offset = 1.0 if "norm" in name and name.endswith("weight") else 0.0     # norm gains around 1
        state[name] = torch.randn(p.shape, generator=g) * scale + offset
    return state


def build_ours(state: dict, config: DiTConfig, dtype: torch.dtype) -> WanModel:
    model = WanModel(config).eval()
    model.load_state_dict(state, strict=True)
    return model.cast_weights(dtype)


def build_diffusers(state: dict, config: DiTConfig, dtype: torch.dtype):
    """WanTransformer3DModel with the same weights; bf16 goes through from_pretrained(torch_dtype=...)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    c = config
    image = {"image_dim": c.img_dim, "added_kv_proj_dim": c.dim} if c.has_image_input else {}
    model = WanTransformer3DModel(
        patch_size=c.patch_size, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
        in_channels=c.in_dim, out_channels=c.out_dim, text_dim=c.text_dim, freq_dim=c.freq_dim,
        ffn_dim=c.ffn_dim, num_layers=c.num_layers, eps=c.eps, **image)
    model.load_state_dict(convert_wan_transformer_to_diffusers({k: v.clone() for k, v in state.items()}),
                          strict=True)
    if dtype == torch.float32:
        return model.eval()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        loaded = WanTransformer3DModel.from_pretrained(folder, torch_dtype=dtype)
        for p in loaded.parameters():     # read everything while the files exist (no lazy mmap)
            p.data = p.data.clone()
    return loaded.eval()


def token_grid(config: DiTConfig, latent=LATENT) -> tuple[int, int, int]:
    return tuple(n // p for n, p in zip(latent, config.patch_size))


def make_inputs(config: DiTConfig, latent=LATENT, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(1, config.out_dim, *latent, generator=g),
            "y": torch.randn(1, config.in_dim - config.out_dim, *latent, generator=g),
            "context": torch.randn(1, TEXT_TOKENS, config.text_dim, generator=g),
            "clip_fea": torch.randn(1, IMAGE_TOKENS, config.img_dim, generator=g),
            "t": torch.tensor([637])}


def step_flops(config: DiTConfig, latent=LATENT, text=TEXT_TOKENS, image=IMAGE_TOKENS) -> float:
    """Matmul FLOPs of one forward that repeat every sampling step (batch 1).

    Per block: q/k/v/o of self-attention, q/o of cross-attention, the FFN, and the attention
    products QK^T and PV over L video tokens (self) and over text + image tokens (cross). Plus the
    patch embedding and the head. Not counted: the context work a cache makes once (see context_flops),
    norms, activations and the time embedding.
    """
    c, tokens = config, math.prod(token_grid(config, latent))
    block = (6 * 2 * tokens * c.dim**2                       # self q,k,v,o and cross q,o
             + 2 * 2 * tokens * c.dim * c.ffn_dim            # FFN
             + 2 * 2 * tokens * tokens * c.dim               # self QK^T and PV
             + 2 * 2 * tokens * (text + image) * c.dim)      # cross QK^T and PV
    embed = 2 * tokens * c.in_dim * math.prod(c.patch_size) * c.dim
    head = 2 * tokens * c.dim * c.out_dim * math.prod(c.patch_size)
    return c.num_layers * block + embed + head


def context_flops(config: DiTConfig, text=TEXT_TOKENS, image=IMAGE_TOKENS) -> float:
    """Matmul FLOPs of the step-invariant context work: text/image embeddings and every block's K/V."""
    c = config
    embed = 2 * text * (c.text_dim * c.dim + c.dim**2) + 2 * image * (c.img_dim**2 + c.img_dim * c.dim)
    return embed + c.num_layers * 2 * 2 * (text + image) * c.dim**2


def forward_peer(peer, inputs: dict, dtype: torch.dtype) -> torch.Tensor:
    """diffusers forward on inputs cast to `dtype` (channels of x and y concatenated); float32 output."""
    hidden = torch.cat([inputs["x"], inputs["y"]], dim=1).to(dtype)
    return peer(hidden, inputs["t"], inputs["context"].to(dtype), inputs["clip_fea"].to(dtype),
                return_dict=False)[0].float()


def interleaved_with_rate(fns: dict, dtype: torch.dtype, reps: int) -> tuple[dict, float]:
    """`interleaved` timings of fns plus the matmul rate (bench._common.matmul_rate) measured in every
    round between them, so that the floor is taken under the same machine conditions (median)."""
    rates = []
    times = interleaved({**fns, "matmul": lambda: rates.append(matmul_rate(dtype))}, reps=reps, warmup=1)
    return times, statistics.median(rates[1:])             # rates[0] is the warm-up round


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def parse_args(doc: str) -> argparse.Namespace:
    """--dtype, --reps, --threads of the DiT benchmarks; sets the thread count."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    return args


def main() -> None:
    args = parse_args(__doc__)
    state, inputs = random_official_state(MEDIUM), make_inputs(MEDIUM)
    flops = step_flops(MEDIUM) + context_flops(MEDIUM)
    print(f"{machine_line()}\n\nMedium I2V DiT, latent {LATENT}, {TEXT_TOKENS}+{IMAGE_TOKENS} context tokens; "
          f"{flops / 1e9:.1f} GFLOP per forward; {args.reps} interleaved reps\n")
    print("| dtype | diffusers s | ours s | ours / diffusers | floor s | floor fraction | "
          "ours rel L2 vs diffusers fp32 | rel L2 vs own fp32 | quiet reps |")
    print("|---|---|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        fp32_ours = build_ours(state, MEDIUM, torch.float32)(
            inputs["x"], inputs["t"], inputs["context"], inputs["clip_fea"], inputs["y"])
        fp32_peer = forward_peer(build_diffusers(state, MEDIUM, torch.float32), inputs, torch.float32)
        for name in args.dtype:
            dtype = DTYPES[name]
            ours, peer = build_ours(state, MEDIUM, dtype), build_diffusers(state, MEDIUM, dtype)

            def run_ours():
                return ours(inputs["x"], inputs["t"], inputs["context"], inputs["clip_fea"], inputs["y"])

            def run_peer():
                return forward_peer(peer, inputs, dtype)

            out_ours = run_ours()
            times, rate = interleaved_with_rate({"diffusers": run_peer, "ours": run_ours}, dtype, args.reps)
            floor = flops / rate
            t_peer, t_ours = times["diffusers"].median, times["ours"].median
            print(f"| {name} | {t_peer:.3f} | {t_ours:.3f} | **{t_ours / t_peer:.3f}** | {floor:.3f} | "
                  f"{floor / t_ours:.2f} (diffusers {floor / t_peer:.2f}) | {rel_l2(out_ours, fp32_peer):.2e} | "
                  f"{rel_l2(out_ours, fp32_ours):.2e} (diffusers {rel_l2(run_peer(), fp32_peer):.2e}) | "
                  f"{times['ours'].n_quiet}/{args.reps} |")
            del ours, peer
    print(f"\npeak RSS {peak_rss_mb():.0f} MiB; floor = counted matmul FLOPs / {args.threads}-thread matmul rate "
          f"in that dtype, measured between the timed rounds (median)")


if __name__ == "__main__":
    main()

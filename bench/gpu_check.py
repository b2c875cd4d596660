"""GPU checks in one short run (issues 2 and 3): DiT parity on CUDA, and bf16 timings against diffusers.

1. Parity, medium I2V config (2100 tokens): this WanModel vs diffusers' WanTransformer3DModel on the same
   random weights in fp32 (TF32 off) -> relative L2; bf16 vs fp32 for both implementations.
2. The medium-config bf16 forward, ours vs diffusers, timed with CUDA events (interleaved).
3. One CFG sampling step at a realistic shape: the 1.3B config (dim 1536, 12 heads, 30 layers, ffn 8960)
   as an i2v model, 480P and 81 frames (latent 21x60x104 -> 32,760 tokens), bf16: diffusers' two forwards
   vs our batched forward with the context cache; seconds per step, peak memory, fraction of the floor
   (counted FLOPs / measured bf16 matmul rate).

    python bench/gpu_check.py --out results.json      (needs CUDA and diffusers)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_dit import (MEDIUM, build_ours, make_inputs, random_official_state, rel_l2,  # noqa: E402
                             step_flops)
from wan21_core.models import DiTConfig  # noqa: E402

LARGE = DiTConfig(model_type="i2v", in_dim=36, dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)
LARGE_LATENT = (21, 60, 104)
DRY_RUN = os.environ.get("WAN21_GPU_CHECK_DRY_RUN") == "1"   # CPU rehearsal with small shapes
CUDA = torch.device("cpu" if DRY_RUN else "cuda")
if DRY_RUN:
    LARGE = DiTConfig(model_type="i2v", in_dim=36, dim=256, ffn_dim=512, num_heads=2, num_layers=2)
    LARGE_LATENT = (3, 8, 8)


def diffusers_model(state: dict, config: DiTConfig, dtype: torch.dtype):
    """WanTransformer3DModel with the same weights; bf16 keeps diffusers' fp32 modules like from_pretrained."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    c = config
    with torch.device(CUDA):                                # real buffers (RoPE); weights replaced below
        model = WanTransformer3DModel(
            patch_size=c.patch_size, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
            in_channels=c.in_dim, out_channels=c.out_dim, text_dim=c.text_dim, freq_dim=c.freq_dim,
            ffn_dim=c.ffn_dim, num_layers=c.num_layers, eps=c.eps, image_dim=c.img_dim, added_kv_proj_dim=c.dim)
    converted = convert_wan_transformer_to_diffusers(dict(state))
    keep = model._keep_in_fp32_modules or []
    for name, tensor in converted.items():
        fp32 = dtype == torch.float32 or any(k in name.split(".") for k in keep)
        converted[name] = tensor.to(CUDA, torch.float32 if fp32 else dtype)
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval()


def cuda_random_state(config: DiTConfig, seed: int) -> dict:
    """Random official-key weights drawn on the GPU (fast for 1.4 B parameters)."""
    from wan21_core.models import WanModel

    g = torch.Generator(CUDA).manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in WanModel(config).state_dict().items()}
    return {k: torch.randn(s, generator=g, device=CUDA) * (0.3 if len(s) == 1 else s[-1] ** -0.5)
            + (1.0 if "norm" in k and k.endswith("weight") else 0.0) for k, s in shapes.items()}


def ours_model(state: dict, config: DiTConfig, dtype: torch.dtype):
    from wan21_core.models import WanModel

    with torch.device("meta"):
        model = WanModel(config)
    model.load_state_dict({k: v.to(CUDA) for k, v in state.items()}, strict=True, assign=True)
    return model.cast_weights(dtype).eval()


def cuda_times(fns: dict, reps: int) -> dict:
    """Median milliseconds per call, interleaved, CUDA-event timed, after one warm-up each."""
    for fn in fns.values():
        fn()
    samples = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            if DRY_RUN:
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1e3)
                continue
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples[name].append(start.elapsed_time(end))
    return {k: statistics.median(v) for k, v in samples.items()}


def _reset_peak() -> float:
    """Start a peak-memory window; returns the GiB allocated now (weights and anything else held)."""
    if DRY_RUN:
        return 0.0
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated() / 2**30


def _peak_gib() -> float:
    return 0.0 if DRY_RUN else torch.cuda.max_memory_allocated() / 2**30


def _weights_gib(model: torch.nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())) / 2**30


def matmul_tflops(dtype: torch.dtype, n: int = 256 if DRY_RUN else 8192) -> float:
    a, b = torch.randn(n, n, device=CUDA, dtype=dtype), torch.randn(n, n, device=CUDA, dtype=dtype)
    ms = cuda_times({"mm": lambda: a @ b}, 10)["mm"]
    return 2 * n**3 / (ms / 1e3) / 1e12


def peer_forward(peer, inp, dtype):
    hidden = torch.cat([inp["x"], inp["y"]], dim=1).to(dtype)
    return peer(hidden, inp["t"], inp["context"].to(dtype), inp["clip_fea"].to(dtype), return_dict=False)[0].float()


def on_cuda(inputs: dict) -> dict:
    return {k: v.to(CUDA) for k, v in inputs.items()}


def parity_and_medium(results: dict, reps: int) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    state, inp = random_official_state(MEDIUM), on_cuda(make_inputs(MEDIUM))
    outs = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ours = build_ours(state, MEDIUM, dtype).to(CUDA)
        peer = diffusers_model(state, MEDIUM, dtype)
        run_ours = lambda: ours(inp["x"], inp["t"], inp["context"], inp["clip_fea"], inp["y"])  # noqa: E731
        run_peer = lambda: peer_forward(peer, inp, dtype)  # noqa: E731
        with torch.inference_mode():
            outs[name] = (run_ours(), run_peer())
            if name == "bf16":
                ms = cuda_times({"ours": run_ours, "diffusers": run_peer}, reps)
                results["medium_bf16_forward_ms"] = ms
                results["medium_bf16_ratio"] = ms["ours"] / ms["diffusers"]
        del ours, peer
    results["parity_fp32_rel_l2"] = rel_l2(outs["fp32"][0], outs["fp32"][1])
    results["ours_bf16_vs_fp32_rel_l2"] = rel_l2(outs["bf16"][0], outs["fp32"][0])
    results["diffusers_bf16_vs_fp32_rel_l2"] = rel_l2(outs["bf16"][1], outs["fp32"][1])
    torch.backends.cuda.matmul.allow_tf32 = True


def large_step(results: dict, reps: int) -> None:
    dtype, guide = torch.bfloat16, 5.0
    state = cuda_random_state(LARGE, 0)
    g = torch.Generator(CUDA).manual_seed(1)
    x = torch.randn(1, 16, *LARGE_LATENT, generator=g, device=CUDA)
    y = torch.randn(1, 20, *LARGE_LATENT, generator=g, device=CUDA)
    texts = torch.randn(2, 512, 4096, generator=g, device=CUDA)
    clip = torch.randn(1, 257, 1280, generator=g, device=CUDA)
    t = torch.tensor([637], device=CUDA)
    tokens = LARGE_LATENT[0] * LARGE_LATENT[1] * LARGE_LATENT[2] // 4
    flops = 2 * step_flops(LARGE, LARGE_LATENT)
    results["large"] = {"tokens": tokens, "step_tflop": flops / 1e12}
    with torch.inference_mode():
        ours = ours_model(state, LARGE, dtype)
        cache = ours.prepare_context(texts.to(dtype), clip.to(dtype))
        hidden = torch.cat([x, y], dim=1).to(dtype)

        def step_ours():
            v = ours(x, t, y=y, cache=cache)
            return v[1:2] + guide * (v[0:1] - v[1:2])

        held = _reset_peak()       # includes the fp32 source state, still needed for the peer
        ms_ours = cuda_times({"ours": step_ours}, reps)["ours"]
        peak = _peak_gib()
        results["large"].update(ours_peak_gib=peak, ours_weights_gib=_weights_gib(ours),
                                ours_step_working_gib=peak - held)     # working: activations and scratch
        del ours, cache
        peer = diffusers_model(state, LARGE, dtype)
        del state
        image, ctx = clip.to(dtype), texts.to(dtype)

        def step_peer():
            v_c = peer(hidden, t, ctx[0:1], image, return_dict=False)[0].float()
            v_u = peer(hidden, t, ctx[1:2], image, return_dict=False)[0].float()
            return v_u + guide * (v_c - v_u)

        held = _reset_peak()
        ms_peer = cuda_times({"diffusers": step_peer}, reps)["diffusers"]
        peak = _peak_gib()
        results["large"].update(diffusers_peak_gib=peak, diffusers_weights_gib=_weights_gib(peer),
                                diffusers_step_working_gib=peak - held)
    rate = matmul_tflops(dtype)
    floor_ms = flops / (rate * 1e12) * 1e3
    results["large"].update(ours_step_s=ms_ours / 1e3, diffusers_step_s=ms_peer / 1e3, ratio=ms_ours / ms_peer,
                            bf16_matmul_tflops=rate, floor_s=floor_ms / 1e3, ours_floor_fraction=floor_ms / ms_ours,
                            diffusers_floor_fraction=floor_ms / ms_peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    results = {"device": "cpu (dry run)" if DRY_RUN else torch.cuda.get_device_name(), "torch": torch.__version__}
    parity_and_medium(results, 20)
    print(json.dumps(results, indent=1), flush=True)
    if not args.skip_large:
        large_step(results, args.reps)
    print(json.dumps(results, indent=1), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

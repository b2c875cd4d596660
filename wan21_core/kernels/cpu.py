"""Compiled row kernels for the bf16 DiT on CPU (`kernels/cpu_kernels.c`), with torch as the fallback.

- `softmax_(scores, bias)`: the in-place softmax of the blocked attention's bf16 score blocks.
  torch's bf16 softmax on CPU is bound by its exponential (about 3 G elements/s on 2 threads, a
  tenth of a bf16 CFG step of the medium DiT); the kernel's polynomial exp2 in fp32 with one bf16
  rounding per output runs 1.8× faster (0.76 ms against 1.40 ms for a 2000 × 2100 block on 2
  threads), within one bf16 rounding of torch's result.
- `layer_norm_bf16(x, eps, weight, bias)`: LayerNorm of fp32 rows (fp32 statistics, optional fp32
  affine: the modulation or norm3's parameters) written straight as bf16, in one pass where torch
  takes the norm and then a conversion (0.21 ms against 0.38 ms for 2100 × 512 on 2 threads).
- `try_rms_rope_(out, y, weight, eps, rotations)`: the attention's q/k epilogue, RMSNorm over the
  full projection width, the norm weight and RoPE, from the bf16 projection straight into the
  head-major bf16 q/k buffer, where torch needs a conversion to fp32, the norm, a complex multiply
  and a strided conversion back.
Together they take a bf16 CFG step of the medium DiT on 2 threads from 1.26–1.30× to 1.11–1.21×
its matmul floor (docs/benchmarks.md).

The library is compiled once per machine and source with the system C compiler (`$CC`, else `cc`,
`gcc` or `clang`; `-O3 -march=native -fopenmp`, under a second) into `$WAN21_KERNEL_CACHE`, else
`~/.cache/wan21_core/kernels`, and loaded with ctypes. Its rows run in torch's own OpenMP thread
pool: the library asks for `libgomp.so.1`, which the dynamic loader resolves to the copy torch
already loaded (a second pool would fight torch's spinning workers for the cores). It is used only
where all of this holds: Linux, torch's parallel backend is OpenMP, the build succeeds, one OpenMP
runtime is mapped afterwards, and a self-test against torch passes. Otherwise, or with
`WAN21_CPU_KERNELS=0`, the same work runs on plain torch ops, and the reason is logged once.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "cpu_kernels.c"
CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
          "-fno-signed-zeros", "-ffinite-math-only", "-fopenmp", "-shared", "-fPIC")
BUILD_TIMEOUT_S = 120


class CpuKernels:
    """The loaded C library: `softmax_`, `layer_norm` and `rms_rope_` on tensors that the matching
    `*_accepts` takes."""

    def __init__(self, library: ctypes.CDLL):
        self._softmax = library.wan21_softmax_bf16
        self._softmax.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_int]
        self._softmax.restype = ctypes.c_int
        self._layer_norm = library.wan21_layer_norm_bf16
        self._layer_norm.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                     ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
        self._layer_norm.restype = None
        self._rms_rope = library.wan21_rms_rope_bf16
        self._rms_rope.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                   ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p, ctypes.c_long, ctypes.c_long,
                                   ctypes.c_int]
        self._rms_rope.restype = None

    def softmax_accepts(self, scores: torch.Tensor) -> bool:
        return (scores.dtype == torch.bfloat16 and scores.device.type == "cpu" and scores.is_contiguous()
                and scores.numel() > 0)

    def softmax_(self, scores: torch.Tensor, bias: torch.Tensor | None) -> bool:
        """softmax(scores + bias) in place over the last dimension; bias [L] (any float dtype) or None.
        False (nothing written) when the kernel could not allocate its fp32 scratch rows."""
        cols = scores.shape[-1]
        bias = None if bias is None else bias.to(torch.float32).contiguous()
        return self._softmax(scores.data_ptr(), None if bias is None else bias.data_ptr(), scores.numel() // cols,
                             cols, torch.get_num_threads()) == 0

    @staticmethod
    def layer_norm_accepts(x: torch.Tensor) -> bool:
        return x.dtype == torch.float32 and x.device.type == "cpu" and x.is_contiguous() and x.numel() > 0

    def layer_norm(self, x: torch.Tensor, eps: float, weight: torch.Tensor | None,
                   bias: torch.Tensor | None) -> torch.Tensor:
        """LayerNorm over the last dimension of fp32 x, times weight plus bias when given, as bf16."""
        cols = x.shape[-1]
        out = torch.empty(x.shape, dtype=torch.bfloat16)
        if weight is not None:
            weight, bias = (t.to(torch.float32).reshape(cols).contiguous() for t in (weight, bias))
        self._layer_norm(x.data_ptr(), x.numel() // cols, cols, None if weight is None else weight.data_ptr(),
                         None if bias is None else bias.data_ptr(), eps, out.data_ptr(), torch.get_num_threads())
        return out

    @staticmethod
    def rms_rope_accepts(out: torch.Tensor, y: torch.Tensor, rotations: torch.Tensor | None) -> bool:
        rows, heads, head_dim = out.shape
        return (y.dtype == out.dtype == torch.bfloat16 and y.device.type == out.device.type == "cpu"
                and y.is_contiguous() and y.shape == (rows, heads * head_dim) and out.stride(-1) == 1
                and head_dim % 2 == 0 and (rotations is None or (rotations.dtype == torch.complex64
                                                                 and rotations.is_contiguous()
                                                                 and rotations.shape == (rows, 1, head_dim // 2))))

    def rms_rope_(self, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, eps: float,
                  rotations: torch.Tensor | None) -> None:
        """out [n, N, d] bf16 = RoPE(y · rsqrt(mean(y²) + eps) · weight) for y [n, N·d] bf16; rotations
        [n, 1, d/2] complex64 or None (no rotation)."""
        rows, heads, head_dim = out.shape
        weight = weight.to(torch.float32).contiguous()
        turns = None if rotations is None else torch.view_as_real(rotations)       # [n, 1, d/2, 2] fp32
        self._rms_rope(y.data_ptr(), rows, heads, head_dim, weight.data_ptr(),
                       None if turns is None else turns.data_ptr(), eps, out.data_ptr(), out.stride(0),
                       out.stride(1), torch.get_num_threads())


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
    if os.environ.get("WAN21_KERNEL_CACHE"):
        return Path(os.environ["WAN21_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wan21_core" / "kernels"


def _cpu_identity() -> str:
    """The CPU's model and feature lines: -march=native code is valid only where they match."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(sorted({line for line in lines if line.startswith(wanted)}))


def library_path(compiler: str, cache_dir: Path) -> Path:
    key = "\n".join([SOURCE.read_text(), " ".join(CFLAGS), compiler, _cpu_identity()])
    return cache_dir / f"cpu_kernels-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def build(compiler: str, cache_dir: Path) -> Path:
    """Compile the library into cache_dir (once: an existing build is reused); raises RuntimeError on failure."""
    target = library_path(compiler, cache_dir)
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        partial = Path(tmp) / target.name
        try:
            done = subprocess.run([compiler, *CFLAGS, str(SOURCE), "-o", str(partial), "-lm"], capture_output=True,
                                  text=True, timeout=BUILD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"{compiler} could not run: {error}") from error
        if done.returncode != 0 or not partial.exists():
            raise RuntimeError(f"{compiler} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        os.replace(partial, target)                 # atomic: concurrent builders never see half a file
    return target


def _openmp_runtimes() -> set[str]:
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return set()
    names = ("libgomp", "libiomp", "libomp")
    return {line.split()[-1] for line in maps if any(name in line.rsplit("/", 1)[-1] for name in names)}


def _self_test(kernels: CpuKernels) -> None:
    """Each kernel against torch in fp32 on random rows: every output within one bf16 rounding."""
    g = torch.Generator().manual_seed(0)
    scores = (torch.randn(37, 301, generator=g) * 6).to(torch.bfloat16)
    bias = torch.randn(301, generator=g)
    expected_softmax = torch.softmax(scores.float() + bias, dim=-1)
    if not kernels.softmax_(scores, bias):
        raise RuntimeError("self-test: the softmax kernel could not allocate its scratch rows")
    x = torch.randn(29, 96, generator=g) * 3 + 1
    weight, shift = torch.randn(96, generator=g), torch.randn(96, generator=g)
    y = torch.randn(5, 2, 8, generator=g).to(torch.bfloat16).float()
    turns = torch.polar(torch.ones(5, 1, 4), torch.randn(5, 1, 4, generator=g))
    rotated = torch.view_as_real(torch.view_as_complex(y.unflatten(-1, (4, 2))) * turns).flatten(-2)
    expected_rope = rotated * torch.rsqrt(y.square().mean((1, 2), keepdim=True) + 1e-6)
    got_rope = torch.empty(5, 2, 8, dtype=torch.bfloat16)
    kernels.rms_rope_(got_rope, y.flatten(1).to(torch.bfloat16), torch.ones(16), 1e-6, turns)
    checks = {"softmax": (expected_softmax, scores),
              "layer_norm": (F.layer_norm(x, (96,), weight, shift, 1e-6), kernels.layer_norm(x, 1e-6, weight, shift)),
              "rms_rope": (expected_rope, got_rope)}
    for name, (expected, got) in checks.items():
        excess = (got.float() - expected).abs() - expected.abs() * 2**-7
        if not bool((excess <= 1e-5).all()):
            raise RuntimeError(f"self-test: the {name} kernel differs from torch by up to "
                               f"{float(excess.max()):.3g} beyond one bf16 rounding")


def load_kernels(compiler: str | None = None, cache_dir: Path | None = None) -> tuple[CpuKernels | None, str]:
    """Build (if needed), load and self-test the library: (kernels, "") or (None, why it is not used)."""
    if os.environ.get("WAN21_CPU_KERNELS", "1") == "0":
        return None, "WAN21_CPU_KERNELS=0"
    if platform.system() != "Linux":
        return None, f"the compiled kernel is built on Linux only, this is {platform.system()}"
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None, "torch's parallel backend is not OpenMP"
    compiler = compiler or _compiler()
    if compiler is None:
        return None, "no C compiler found (set CC, or install gcc or clang)"
    runtimes_before = _openmp_runtimes()
    try:
        kernels = CpuKernels(ctypes.CDLL(str(build(compiler, cache_dir or _cache_dir()))))
    except (OSError, RuntimeError, AttributeError) as error:
        return None, f"build or load failed: {error}"
    runtimes = _openmp_runtimes()
    if len(runtimes) > max(1, len(runtimes_before)):
        return None, f"the kernel brought a second OpenMP runtime ({sorted(runtimes)}), which would contend with torch's"
    try:
        _self_test(kernels)
    except RuntimeError as error:
        return None, str(error)
    return kernels, ""


_lock = threading.Lock()
_state: dict = {}


def default_kernels() -> CpuKernels | None:
    """The process-wide library, loaded on first use; None (logged once) where it cannot be used."""
    if "kernels" not in _state:
        with _lock:
            if "kernels" not in _state:
                kernels, reason = load_kernels()
                if kernels is None:
                    log.info("wan21_core: the bf16 CPU path runs on plain torch ops (%s)", reason)
                _state["kernels"], _state["reason"] = kernels, reason
    return _state["kernels"]


def _kernels_for(x: torch.Tensor) -> CpuKernels | None:
    """The library for a CPU tensor (None on other devices or where it is unavailable)."""
    return default_kernels() if x.device.type == "cpu" else None


def softmax_(scores: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scores + bias) over the last dimension, written into scores; bias [L] or None. Returns scores.

    Contiguous bf16 CPU scores go through the kernel (bias added in fp32), anything else through
    torch.softmax (bias added in the scores' dtype first).
    """
    kernels = _kernels_for(scores) if scores.dtype == torch.bfloat16 else None
    if kernels is not None and kernels.softmax_accepts(scores) and kernels.softmax_(scores, bias):
        return scores
    if bias is not None:
        scores.add_(bias.to(scores.dtype))
    return torch.softmax(scores, dim=-1, out=scores)


def try_rms_rope_(out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, eps: float,
                  rotations: torch.Tensor | None = None) -> bool:
    """The attention's q/k epilogue by the kernel: out [n, N, d] = RoPE(RMSNorm(y) · weight) for the bf16
    projection y [n, N·d], written through out's strides (e.g. into a head-major buffer); rotations
    [n, 1, d/2] complex64 or None. Returns False, writing nothing, where the kernel does not apply."""
    kernels = _kernels_for(y) if y.dtype == torch.bfloat16 else None
    if kernels is None or not kernels.rms_rope_accepts(out, y, rotations):
        return False
    kernels.rms_rope_(out, y, weight, eps, rotations)
    return True


def layer_norm_bf16(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """LayerNorm over the last dimension of x in fp32, times weight plus bias (both or neither, [C] or
    broadcastable to it), returned as bf16. Contiguous fp32 CPU x goes through the kernel in one pass,
    anything else through F.layer_norm and a conversion."""
    kernels = _kernels_for(x) if x.dtype == torch.float32 else None
    if kernels is not None and kernels.layer_norm_accepts(x):
        return kernels.layer_norm(x, eps, weight, bias)
    if weight is not None:
        weight, bias = weight.float().flatten(), bias.float().flatten()
    return F.layer_norm(x.float(), x.shape[-1:], weight, bias, eps).to(torch.bfloat16)

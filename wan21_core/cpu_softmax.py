"""In-place row softmax for the bf16 score blocks of the CPU attention: a small C kernel, torch.softmax otherwise.

torch's bf16 softmax on CPU is bound by its exponential (about 3 G elements/s on 2 threads), and in a
bf16 CFG step of the medium DiT it costs about a tenth of the step. `kernels/softmax_bf16.c` does the
same row softmax with a polynomial exp2 in fp32 and one bf16 rounding per output, 1.8× faster
(measured: 0.76 ms against 1.40 ms for a 2000 × 2100 block on 2 threads); its outputs are within
one bf16 rounding of torch's.

The kernel is compiled once per machine and source with the system C compiler (`$CC`, else `cc`,
`gcc` or `clang`; `-O3 -march=native -fopenmp`, under a second) into `$WAN21_KERNEL_CACHE`, else
`~/.cache/wan21_core/kernels`, and loaded with ctypes. Its rows run in torch's own OpenMP thread
pool: the library asks for `libgomp.so.1`, which the dynamic loader resolves to the copy torch
already loaded (a second pool would fight torch's spinning workers for the cores). It is used only
where all of this holds: Linux, torch's parallel backend is OpenMP, the build succeeds, one OpenMP
runtime is mapped afterwards, and a self-test against torch.softmax passes. Otherwise, or with
`WAN21_CPU_KERNELS=0`, `softmax_` is torch.softmax, and the reason is logged once.
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

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "kernels" / "softmax_bf16.c"
CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
          "-fno-signed-zeros", "-ffinite-math-only", "-fopenmp", "-shared", "-fPIC")
BUILD_TIMEOUT_S = 120


class SoftmaxKernel:
    """The loaded C kernel: `run(scores, bias)` for contiguous bf16 CPU scores [..., L], bias [L] fp32 or None."""

    def __init__(self, library: ctypes.CDLL):
        self._run = library.wan21_softmax_bf16
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_int]
        self._run.restype = None
        self.max_cols = int(library.wan21_softmax_max_cols())

    def accepts(self, scores: torch.Tensor) -> bool:
        return (scores.dtype == torch.bfloat16 and scores.device.type == "cpu" and scores.is_contiguous()
                and 0 < scores.shape[-1] <= self.max_cols)

    def run(self, scores: torch.Tensor, bias: torch.Tensor | None) -> None:
        cols = scores.shape[-1]
        bias_ptr = None
        if bias is not None:
            bias = bias.to(torch.float32).contiguous()
            bias_ptr = bias.data_ptr()
        self._run(scores.data_ptr(), bias_ptr, scores.numel() // cols, cols, torch.get_num_threads())


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
    return cache_dir / f"softmax_bf16-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def build(compiler: str, cache_dir: Path) -> Path:
    """Compile the kernel into cache_dir (once: an existing build is reused); raises RuntimeError on failure."""
    target = library_path(compiler, cache_dir)
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        partial = Path(tmp) / target.name
        try:
            done = subprocess.run([compiler, *CFLAGS, str(SOURCE), "-o", str(partial)], capture_output=True,
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


def _self_test(kernel: SoftmaxKernel) -> None:
    g = torch.Generator().manual_seed(0)
    scores = (torch.randn(37, 301, generator=g) * 6).to(torch.bfloat16)
    bias = torch.randn(301, generator=g)
    expected = torch.softmax(scores.float() + bias, dim=-1)
    kernel.run(scores, bias)
    error = (scores.float() - expected).abs() - expected * 2**-7
    if not bool((error <= 1e-7).all()):
        raise RuntimeError(f"self-test: the kernel's softmax differs from torch.softmax by up to "
                           f"{float(error.max()):.3g} beyond one bf16 rounding")


def load_kernel(compiler: str | None = None, cache_dir: Path | None = None) -> tuple[SoftmaxKernel | None, str]:
    """Build (if needed), load and self-test the kernel: (kernel, "") or (None, why it is not used)."""
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
        kernel = SoftmaxKernel(ctypes.CDLL(str(build(compiler, cache_dir or _cache_dir()))))
    except (OSError, RuntimeError, AttributeError) as error:
        return None, f"build or load failed: {error}"
    runtimes = _openmp_runtimes()
    if len(runtimes) > max(1, len(runtimes_before)):
        return None, f"the kernel brought a second OpenMP runtime ({sorted(runtimes)}), which would contend with torch's"
    try:
        _self_test(kernel)
    except RuntimeError as error:
        return None, str(error)
    return kernel, ""


_lock = threading.Lock()
_state: dict = {}


def default_kernel() -> SoftmaxKernel | None:
    """The process-wide kernel, loaded on first use; None (logged once) where it cannot be used."""
    if "kernel" not in _state:
        with _lock:
            if "kernel" not in _state:
                kernel, reason = load_kernel()
                if kernel is None:
                    log.info("wan21_core: bf16 CPU attention uses torch.softmax (%s)", reason)
                _state["kernel"], _state["reason"] = kernel, reason
    return _state["kernel"]


def softmax_(scores: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scores + bias) over the last dimension, written into scores; bias [L] or None. Returns scores.

    bf16 CPU blocks go through the compiled kernel (bias added in fp32), anything else through
    torch.softmax (bias added in the scores' dtype first).
    """
    kernel = default_kernel() if scores.dtype == torch.bfloat16 and scores.device.type == "cpu" else None
    if kernel is not None and kernel.accepts(scores):
        kernel.run(scores, bias)
        return scores
    if bias is not None:
        scores.add_(bias.to(scores.dtype))
    return torch.softmax(scores, dim=-1, out=scores)

"""Shared helpers of the benchmark scripts: thread setup, quiet-gated interleaved timing, memory.

Timings on a shared 2-core machine are noisy (docs/benchmarks.md, "VAE decode": runs under heavy
foreign load were 5–10× slower): a busy foreign process slows a
2-thread run several times. Each repetition therefore records the CPU time other processes used
while it ran; only quiet repetitions (foreign load < 10 %) enter the medians when enough exist.
"""
from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass, field

import torch

from wan21_core.profiling import cpu_model


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)


def _busy_jiffies() -> tuple[int, int]:
    """(all busy jiffies of the machine, jiffies of this process)."""
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    busy = sum(cpu) - cpu[3] - cpu[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])  # utime + stime
    return busy, own


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB), from VmHWM.

    Not `ru_maxrss`: a child process inherits that from a large parent across fork and exec.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Timing:
    seconds: list = field(default_factory=list)
    foreign: list = field(default_factory=list)

    def quiet(self, limit: float = 0.10) -> list:
        q = [s for s, f in zip(self.seconds, self.foreign) if f < limit]
        return q if len(q) >= max(2, len(self.seconds) // 2) else self.seconds

    @property
    def median(self) -> float:
        return statistics.median(self.quiet())

    @property
    def n_quiet(self) -> int:
        return sum(f < 0.10 for f in self.foreign)


def timed(fn) -> tuple[float, float]:
    """Run fn once; return (seconds, foreign CPU load as a fraction of one core)."""
    tick = os.sysconf("SC_CLK_TCK")
    b0, o0 = _busy_jiffies()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    b1, o1 = _busy_jiffies()
    foreign = max(0, (b1 - b0) - (o1 - o0)) / tick / max(dt, 1e-9)
    return dt, foreign


def interleaved(fns: dict, reps: int, warmup: int = 1) -> dict:
    """Time several callables alternately (A, B, A, B, ...) so slow phases hit all of them."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out = {name: Timing() for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            s, f = timed(fn)
            out[name].seconds.append(s)
            out[name].foreign.append(f)
    return out


def matmul_rate(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Measured FLOP/s of a large square matmul in `dtype` with the current thread count."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        a @ b
        best = min(timed(lambda: a @ b)[0] for _ in range(reps))
    return 2 * n**3 / best


def machine_line() -> str:
    return f"{cpu_model()}; torch {torch.__version__}; {torch.get_num_threads()} threads"

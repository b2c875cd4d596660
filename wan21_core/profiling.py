"""Per-stage wall time and peak memory, for the command line, the nodes and the benchmarks.

Peak memory is the peak resident set size of the process during the stage on CPU (Linux resets
it through /proc/self/clear_refs), and the peak CUDA allocation when the stage ran on a GPU.
"""
from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class StageStats:
    name: str
    seconds: float
    peak_ram_mb: float | None
    peak_vram_mb: float | None

    def describe(self) -> str:
        parts = [f"{self.name}: {self.seconds:.2f} s"]
        if self.peak_ram_mb is not None:
            parts.append(f"peak RAM {self.peak_ram_mb:.0f} MiB")
        if self.peak_vram_mb is not None:
            parts.append(f"peak VRAM {self.peak_vram_mb:.0f} MiB")
        return ", ".join(parts)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine kind where that is not readable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def stage(name: str, log: list | None = None, device: torch.device | str | None = None):
    """Time a block; append its `StageStats` to `log` (when given) on exit, even on error."""
    cuda = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_reset = _reset_peak_rss()
    start = time.perf_counter()
    try:
        yield
    finally:
        if cuda:
            torch.cuda.synchronize(device)
        stats = StageStats(name, time.perf_counter() - start, _peak_rss_mb() if rss_reset else None,
                           torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None)
        if log is not None:
            log.append(stats)

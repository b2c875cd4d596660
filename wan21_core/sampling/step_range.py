"""Which steps of a sampling run an x0 hook acts on, as fractions of the run."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepRange:
    """Steps whose start lies in [start, end) of the run: step i (1-based) of n is in the range when
    start <= (i − 1) / n < end. (0, 1) is every step; (0.5, 1) the second half of the steps.

    Fractions, not step numbers, so a range keeps its meaning when the step count changes. In a
    split run (start_step / end_step) they are fractions of the steps this call runs.
    """

    start: float = 0.0
    end: float = 1.0

    def contains(self, step: int, total: int) -> bool:
        progress = (step - 1) / total
        return self.start <= progress < self.end

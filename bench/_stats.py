"""Small helpers for the benchmark scripts: percentiles and PASS/FAIL lines."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "verdict"]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    """``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"

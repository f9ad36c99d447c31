"""The one percentile definition every benchmark uses.

Linear interpolation between the closest ranks: ``statistics.quantiles(method="inclusive")``,
numpy's default. For sorted values ``x[0..n-1]`` the q-th percentile is at position
``(n - 1) * q / 100``, between the two values around it; the 50th is the median.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: int) -> float | None:
    """The ``q``-th percentile (1 to 99) of ``values``, None when there are none."""
    if not 1 <= q <= 99:
        raise ValueError(f"a percentile from 1 to 99, not {q}")
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def percentile_or_zero(values: Sequence[float], q: int) -> float:
    """The same, 0.0 when there are no values (for records whose fields are all numbers)."""
    return percentile(values, q) or 0.0

"""Summary statistics for per-clip metrics: mean with a Student-t confidence interval."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Summary", "summarize"]


@dataclass(frozen=True)
class Summary:
    """Mean of the finite values, the half-width of its ``level`` t-interval, and counts.

    ``ci95`` is ``t_{0.975, n-1} * s / sqrt(n)`` (sample standard deviation ``s``, ``ddof=1``); NaN when
    fewer than two finite values. ``n`` counts finite values, ``n_missing`` the NaNs left out.
    """

    mean: float
    ci95: float
    std: float
    n: int
    n_missing: int
    minimum: float
    maximum: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


def summarize(values: Iterable[float], level: float = 0.95) -> Summary:
    """:class:`Summary` of ``values`` (NaNs are counted as missing, not averaged)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a probability in (0, 1), got {level}")
    arr = np.asarray(list(values), dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    n = int(finite.size)
    missing = int(arr.size - n)
    nan = float("nan")
    if n == 0:
        return Summary(nan, nan, nan, 0, missing, nan, nan)
    mean = float(finite.mean())
    if n < 2:
        return Summary(mean, nan, nan, 1, missing, mean, mean)
    from scipy import stats

    std = float(finite.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1) * std / math.sqrt(n))
    return Summary(mean, half, std, n, missing, float(finite.min()), float(finite.max()))

"""Input checks shared by every metric: 1-D finite float arrays, lengths trimmed to the shorter.

Vocoded audio is time-aligned with its reference (same mel frames, same hop) but its length is
``frames * hop`` rather than the reference's exact length, so every metric compares the first
``min(len(reference), len(degraded))`` samples of both signals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_signal", "align_pair", "check_sample_rate", "resample"]


def as_signal(x: Any, name: str = "signal") -> np.ndarray:
    """``x`` (numpy array, list or CPU/GPU tensor) as a 1-D float64 numpy array; ValueError otherwise."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D mono signal (T,), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: expected a float array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name}: empty signal")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite samples")
    return arr.astype(np.float64, copy=False)


def check_sample_rate(sample_rate: Any) -> int:
    """A positive integer sample rate or ValueError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def align_pair(reference: Any, degraded: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both signals checked and trimmed to the shorter length (no resampling, no time shift)."""
    ref = as_signal(reference, "reference")
    deg = as_signal(degraded, "degraded")
    n = min(ref.size, deg.size)
    return ref[:n], deg[:n]


def resample(signal: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """``signal`` (1-D) from ``sample_rate`` to ``target_rate`` with soxr (HQ); unchanged if equal."""
    if sample_rate == target_rate:
        return signal
    import soxr

    return np.asarray(soxr.resample(signal, sample_rate, target_rate, quality="HQ"), dtype=np.float64)

"""Per-bin mean/std statistics files for standardised log-mels (ESPnet, ParallelWaveGAN).

Only plain arrays are read (``np.load(allow_pickle=False)``): pickled stats (Coqui's dict ``.npy``)
are refused with a message, since unpickling runs arbitrary code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_stats"]


def load_stats(source: str | os.PathLike[str] | Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin ``(mean, std)`` from a stats file or array (never unpickles).

    Accepts ``.npy`` holding ``(2, n_mels)`` rows mean and scale (ParallelWaveGAN ``stats.npy``),
    ``.npz`` with ``mean``/``std`` (or ``scale``) arrays, or ESPnet's ``feats_stats.npz``
    (``count``, ``sum``, ``sum_square``), or an array-like of shape ``(2, n_mels)``.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"stats file not found: {path}")
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ValueError(
                f"{path}: cannot read stats without unpickling (use .npy/.npz arrays): {e}"
            ) from e
        if isinstance(data, np.lib.npyio.NpzFile):
            keys = set(data.files)
            if {"count", "sum", "sum_square"} <= keys:
                count = float(np.asarray(data["count"]).sum())
                mean = np.asarray(data["sum"], dtype=np.float64) / count
                var = np.asarray(data["sum_square"], dtype=np.float64) / count - mean**2
                return mean, np.sqrt(np.maximum(var, 1e-20))
            scale_key = "std" if "std" in keys else "scale" if "scale" in keys else None
            if "mean" not in keys or scale_key is None:
                raise ValueError(
                    f"{path}: expected arrays 'mean' and 'std' (or 'scale'), found {sorted(keys)}"
                )
            return np.asarray(data["mean"], np.float64).ravel(), np.asarray(
                data[scale_key], np.float64
            ).ravel()
        source = data
    arr = np.asarray(source, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != 2:
        raise ValueError(f"stats: expected shape (2, n_mels) (mean row, std row), got {arr.shape}")
    return arr[0].copy(), arr[1].copy()

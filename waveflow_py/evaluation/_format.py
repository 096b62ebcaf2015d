"""How report tables write numbers and name systems (shared by :mod:`.report` and :mod:`.speakers`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from waveflow_py.evaluation.metrics import METRICS
from waveflow_py.evaluation.results import EvalResult
from waveflow_py.evaluation.stats import Summary

__all__ = ["DECIMALS", "PER_CLIP", "cell", "clean", "column", "fmt", "system_labels", "temperature"]

DECIMALS = {
    "pesq_wb": 2,
    "stoi": 3,
    "mrstft": 3,
    "mrstft_sc": 3,
    "mrstft_logmag": 3,
    "mrstft_unseen": 3,
    "log_mel_l1": 3,
    "mcd": 2,
    "f0_rmse_cents": 1,
    "gpe": 3,
    "periodicity_rmse": 3,
    "vuv_f1": 3,
    "nll_nats": 3,
    "nll_bits": 3,
}
# the metrics of the per-clip and per-speaker tables (the MR-STFT components are in metrics.json)
PER_CLIP = (
    "pesq_wb",
    "stoi",
    "mrstft",
    "mrstft_unseen",
    "log_mel_l1",
    "mcd",
    "f0_rmse_cents",
    "gpe",
    "periodicity_rmse",
    "vuv_f1",
)
_SPECS = {m.key: m for m in METRICS}


def fmt(value: float, key: str) -> str:
    """``value`` with the metric's decimals; an en dash where it is NaN."""
    return "–" if not math.isfinite(value) else f"{value:.{DECIMALS.get(key, 3)}f}"


def cell(s: Summary, key: str) -> str:
    """A summary cell: mean ± 95 % half-width, and n when some clips had no value."""
    if s.n == 0:
        return "–"
    text = fmt(s.mean, key) + (f" ± {fmt(s.ci95, key)}" if math.isfinite(s.ci95) else "")
    return text + (f" (n={s.n})" if s.n_missing else "")


def column(key: str) -> str:
    """A table heading for a metric key: its label, with the unit where it is dB or cents."""
    if key == "nll_nats":
        return "NLL nats"
    spec = _SPECS[key]
    return spec.label + (f" ({spec.unit})" if spec.unit in ("dB", "cents") else "")


def clean(x: Any) -> Any:
    """``x`` as plain JSON data: NaN and infinities as ``None``, numpy scalars as Python numbers."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (np.floating, np.integer)):
        return clean(x.item())
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def temperature(settings: dict[str, Any]) -> Any:
    """The sampling temperature of a result's settings (``sigma`` in results written before the rename)."""
    return settings.get("temperature", settings.get("sigma"))


def system_labels(result: EvalResult) -> dict[str, str]:
    """How reports and figures name each system of :data:`~waveflow_py.evaluation.results.SYSTEMS`."""
    return {
        "reference": "reference (ceiling)",
        "vocoder": f"{result.model.get('name', 'vocoder')} (temperature {temperature(result.settings)})",
        "griffin_lim": f"Griffin-Lim ({result.settings.get('griffin_lim_iters')} it.)",
        "envelope": f"envelope baseline (LPC-{result.settings.get('envelope_order', 16)} noise)",
    }

"""What an evaluation run produces: per-clip scores (:class:`ClipResult`) and the run (:class:`EvalResult`).

Plain data, shared by :mod:`.runner` (which fills them) and :mod:`.report` (which writes them), so the
two import this module and the runner imports the report, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SYSTEMS", "ClipResult", "EvalResult"]

SYSTEMS: tuple[str, ...] = ("reference", "vocoder", "griffin_lim", "envelope")


@dataclass
class ClipResult:
    """Scores of one clip: ``values[system][metric]`` (NaN where a metric failed, reason in ``errors``)."""

    clip_id: str
    path: str
    seconds: float
    values: dict[str, dict[str, float]]
    errors: dict[str, dict[str, str]]
    nll_nats: float = float("nan")
    nll_bits: float = float("nan")
    envelope_nll_nats: float = float("nan")
    envelope_nll_bits: float = float("nan")
    vocode_seconds: float = float("nan")
    # kept in memory for figures/audio of the first few clips only (not serialised)
    audio: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    mels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class EvalResult:
    """Everything a report needs: settings, per-clip results, failed clips and timing."""

    model: dict[str, Any]
    settings: dict[str, Any]
    clips: list[ClipResult]
    failed: list[dict[str, str]]
    wall_seconds: float = 0.0

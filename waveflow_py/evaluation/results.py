"""What an evaluation run produces: per-clip scores (:class:`ClipResult`) and the run (:class:`EvalResult`).

Plain data, shared by :mod:`.runner` (which fills them) and :mod:`.report` (which writes them), so the
two import this module and the runner imports the report, never the other way round;
:func:`summarize_clips` gives the per-system summaries of any group of clips (all, or one speaker's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from waveflow_py.evaluation.metrics import METRICS
from waveflow_py.evaluation.stats import Summary, summarize

__all__ = ["SYSTEMS", "ClipResult", "EvalResult", "summarize_clips"]

SYSTEMS: tuple[str, ...] = ("reference", "vocoder", "griffin_lim", "envelope")


@dataclass
class ClipResult:
    """Scores of one clip: ``values[system][metric]`` (NaN where a metric failed, reason in ``errors``).

    ``speaker``: the clip's speaker (:attr:`waveflow_py.evaluation.clips.EvalClip.speaker`);
    ``warnings``: what looked wrong on this clip without failing it (an exploding NLL), one line each.
    """

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
    speaker: str = ""
    warnings: list[str] = field(default_factory=list)
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


def summarize_clips(clips: Sequence[ClipResult]) -> dict[str, dict[str, Summary]]:
    """``{system: {metric: Summary}}`` over ``clips`` for every system and metric, plus the NLL
    (``nll_nats``, ``nll_bits``) of the ``vocoder`` and of the ``envelope`` baseline."""
    out: dict[str, dict[str, Summary]] = {}
    for system in SYSTEMS:
        out[system] = {
            m.key: summarize(c.values[system].get(m.key, math.nan) for c in clips) for m in METRICS
        }
    out["vocoder"]["nll_nats"] = summarize(c.nll_nats for c in clips)
    out["vocoder"]["nll_bits"] = summarize(c.nll_bits for c in clips)
    out["envelope"]["nll_nats"] = summarize(c.envelope_nll_nats for c in clips)
    out["envelope"]["nll_bits"] = summarize(c.envelope_nll_bits for c in clips)
    return out

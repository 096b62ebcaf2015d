"""Per-speaker view of an evaluation: clip count and mean of every metric, per speaker and system.

Low and high voices fail differently (a vocoder can get one speaker's pitch right and another's an
octave off), so a mean over all clips can hide a broken voice. The speaker of a clip is
:attr:`~waveflow_py.evaluation.results.ClipResult.speaker` (the corpus's speaker id, else the file-name
prefix: :mod:`.clips`). Means are over the speaker's clips that have a value (NaN left out, as in the
summary; the count of those is shown where it is smaller than the speaker's clip count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from waveflow_py.evaluation._format import PER_CLIP, column, fmt
from waveflow_py.evaluation.results import EvalResult, summarize_clips
from waveflow_py.evaluation.stats import Summary

__all__ = [
    "SPEAKER_SYSTEMS",
    "SpeakerSummary",
    "per_speaker",
    "speaker_means",
    "speaker_order",
    "speaker_text",
    "speaker_table",
]

# the systems of the per-speaker tables and figure (the reference ceiling is in metrics.json)
SPEAKER_SYSTEMS: tuple[str, ...] = ("vocoder", "griffin_lim", "envelope")
_TABLE_KEYS: tuple[str, ...] = (*PER_CLIP, "nll_nats")


@dataclass(frozen=True)
class SpeakerSummary:
    """One speaker's ``clips`` (count) and ``summary[system][metric]`` over them."""

    speaker: str
    clips: int
    summary: dict[str, dict[str, Summary]]

    def mean(self, system: str, key: str) -> float:
        """The mean of ``key`` for ``system`` over this speaker's clips (NaN where none has a value)."""
        s = self.summary[system].get(key)
        return s.mean if s is not None and s.n else math.nan

    def to_dict(self) -> dict[str, object]:
        return {
            "clips": self.clips,
            "summary": {sys: {k: v.to_dict() for k, v in d.items()} for sys, d in self.summary.items()},
        }


def speaker_order(speakers: Sequence[str]) -> list[str]:
    """Distinct speakers, numeric ids in numeric order (LibriSpeech's 367 before 1998), then the others."""
    return sorted(set(speakers), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def per_speaker(result: EvalResult) -> list[SpeakerSummary]:
    """Every speaker's clip count and summaries (every system and metric of
    :func:`~waveflow_py.evaluation.results.summarize_clips`), in :func:`speaker_order`."""
    out = []
    for speaker in speaker_order([c.speaker for c in result.clips]):
        clips = [c for c in result.clips if c.speaker == speaker]
        out.append(SpeakerSummary(speaker, len(clips), summarize_clips(clips)))
    return out


def _mean_cell(group: SpeakerSummary, system: str, key: str) -> str:
    s = group.summary[system].get(key)
    if s is None or s.n == 0:
        return "–"
    return fmt(s.mean, key) + (f" (n={s.n})" if s.n < group.clips else "")


def speaker_table(
    result: EvalResult,
    labels: dict[str, str],
    systems: Sequence[str] = SPEAKER_SYSTEMS,
    keys: Sequence[str] = _TABLE_KEYS,
) -> list[str]:
    """Markdown: one row per speaker and system, the clip count and the mean of each metric of ``keys``."""
    head = ["speaker", "system", "clips", *(column(k) for k in keys)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in per_speaker(result):
        for system in systems:
            cells = [_mean_cell(group, system, k) for k in keys]
            row = [group.speaker, labels.get(system, system), str(group.clips), *cells]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def speaker_text(
    result: EvalResult,
    labels: dict[str, str],
    keys: Sequence[str] = ("gpe", "vuv_f1"),
    systems: Sequence[str] = ("vocoder", "griffin_lim"),
) -> list[str]:
    """Plain-text table for a terminal: per speaker, the mean of each of ``keys`` for each of ``systems``."""
    names = {s: labels.get(s, s).split(" (")[0] for s in systems}
    head = ["speaker", "clips", *(f"{column(k)} {names[s]}" for k in keys for s in systems)]
    rows = [
        [g.speaker, str(g.clips), *(fmt(g.mean(s, k), k) for k in keys for s in systems)]
        for g in per_speaker(result)
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]


def speaker_means(
    result: EvalResult, key: str, systems: Sequence[str] = SPEAKER_SYSTEMS
) -> dict[str, list[float]]:
    """``{system: [mean of key per speaker]}`` in :func:`speaker_order` (NaN where no clip has a value)."""
    groups = per_speaker(result)
    return {system: [g.mean(system, key) for g in groups] for system in systems}

"""Write an evaluation's results: ``report.md``, ``metrics.json``, figures and a few audio examples.

Layout of the report directory::

    report.md                     settings, model provenance, summary (mean ± 95% t-interval), per-speaker
                                  and per-clip tables, warnings, failed clips, metric errors, figures
                                  (:mod:`.markdown`)
    metrics.json                  the same numbers as plain data (NaN written as null)
    figures/distributions.png     per-clip metric distributions, one box per system
    figures/speakers.png          per-speaker GPE and V/UV F1, a bar per system
    figures/spectrogram_N.png     reference / vocoder / Griffin-Lim log-mels of the first clips
    audio/N_<system>.wav          the audio behind those figures (16-bit PCM)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from waveflow_py.evaluation._format import clean, system_labels
from waveflow_py.evaluation.markdown import write_markdown
from waveflow_py.evaluation.metrics import METRICS
from waveflow_py.evaluation.results import SYSTEMS, ClipResult, EvalResult, summarize_clips
from waveflow_py.evaluation.speakers import per_speaker, speaker_means, speaker_text
from waveflow_py.evaluation.stats import Summary

__all__ = ["speaker_overview", "summaries", "write_report", "write_json", "write_markdown"]

# the metrics of the per-speaker figure: (key, axis label)
SPEAKER_FIGURE_METRICS: tuple[tuple[str, str], ...] = (("gpe", "GPE ↓"), ("vuv_f1", "V/UV F1 ↑"))


def summaries(result: EvalResult) -> dict[str, dict[str, Summary]]:
    """``{system: {metric: Summary}}`` over the evaluated clips, plus ``{"vocoder": {"nll_*": ...}}``."""
    return summarize_clips(result.clips)


def speaker_overview(result: EvalResult) -> list[str]:
    """Plain-text lines for a terminal: per speaker, the clip count and the mean GPE and V/UV F1 of the
    vocoder and Griffin-Lim (:func:`~waveflow_py.evaluation.speakers.speaker_text`)."""
    return speaker_text(result, system_labels(result))


def write_json(result: EvalResult, path: Path) -> None:
    """metrics.json: model, settings, per-system and per-speaker summaries, per-clip values, errors and
    warnings, failed clips."""
    data = {
        "model": result.model,
        "settings": result.settings,
        "metrics": {
            m.key: {
                "label": m.label,
                "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "description": m.description,
            }
            for m in METRICS
        },
        "summary": {s: {k: v.to_dict() for k, v in d.items()} for s, d in summaries(result).items()},
        "per_speaker": {g.speaker: g.to_dict() for g in per_speaker(result)},
        "clips": [
            {
                "clip": c.clip_id,
                "speaker": c.speaker,
                "path": c.path,
                "seconds": c.seconds,
                "nll_nats": c.nll_nats,
                "nll_bits": c.nll_bits,
                "envelope_nll_nats": c.envelope_nll_nats,
                "envelope_nll_bits": c.envelope_nll_bits,
                "vocode_seconds": c.vocode_seconds,
                "values": c.values,
                "errors": {s: e for s, e in c.errors.items() if e},
                "warnings": c.warnings,
            }
            for c in result.clips
        ],
        "warnings": [
            {"clip": c.clip_id, "speaker": c.speaker, "warning": w} for c in result.clips for w in c.warnings
        ],
        "failed": result.failed,
        "wall_seconds": result.wall_seconds,
    }
    path.write_text(json.dumps(clean(data), indent=2, default=str) + "\n", encoding="utf-8")


def _write_examples(
    result: EvalResult, kept: list[ClipResult], out: Path, labels: dict[str, str]
) -> list[Path]:
    """Spectrogram figures and audio of the clips whose audio was kept."""
    import soundfile as sf

    from waveflow_py.evaluation.plots import plot_spectrograms

    hop_s = result.settings["mel"]["hop_length"] / result.settings["sample_rate"]
    figures = []
    for i, c in enumerate(kept):
        figures.append(
            plot_spectrograms(
                out / "figures" / f"spectrogram_{i}.png",
                c.mels,
                {**labels, "reference": "reference"},
                f"{c.clip_id}: log-mel (model settings) of the reference and of each system's audio",
                hop_s,
            )
        )
        (out / "audio").mkdir(exist_ok=True)
        for system, audio in c.audio.items():
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            data = audio / peak * 0.99 if peak > 1.0 else audio  # avoid clipping a diverging vocoder
            sf.write(
                out / "audio" / f"{i}_{system}.wav", data, result.settings["sample_rate"], subtype="PCM_16"
            )
    return figures


def _write_summary_figures(result: EvalResult, out: Path, labels: dict[str, str]) -> list[Path]:
    """The per-clip distributions and the per-speaker GPE / V/UV F1 bars."""
    from waveflow_py.evaluation.plots import plot_distributions, plot_speakers

    per_system = {
        s: {mm.key: [c.values[s].get(mm.key, math.nan) for c in result.clips] for mm in METRICS}
        for s in SYSTEMS
    }
    metric_axes = [
        (mm.key, mm.label + (f" ({mm.unit})" if mm.unit else "") + (" ↑" if mm.higher_is_better else " ↓"))
        for mm in METRICS
        if mm.key not in ("mrstft_sc", "mrstft_logmag")
    ]
    groups = per_speaker(result)
    return [
        plot_distributions(out / "figures" / "distributions.png", per_system, metric_axes, labels),
        plot_speakers(
            out / "figures" / "speakers.png",
            [f"{g.speaker} ({g.clips})" for g in groups],
            [(label, speaker_means(result, key)) for key, label in SPEAKER_FIGURE_METRICS],
            labels,
            "GPE and V/UV F1 per speaker (clips), pYIN against the reference",
        ),
    ]


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write every file of the report directory; returns ``{name: path}``."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    labels = system_labels(result)
    figures = _write_examples(result, [c for c in result.clips if c.mels], out, labels)
    if result.clips:
        figures = _write_summary_figures(result, out, labels) + figures
    write_json(result, out / "metrics.json")
    write_markdown(result, out / "report.md", figures)
    written = {"report.md": out / "report.md", "metrics.json": out / "metrics.json"}
    written.update({f.name: f for f in figures})
    return written

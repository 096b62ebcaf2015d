"""Figures for evaluation reports (matplotlib, no pyplot global state: ``Figure`` + Agg canvas).

* :func:`plot_spectrograms`: log-mel of the reference, the vocoder's output and Griffin-Lim, one
  panel each on the reference's colour scale (the model's mel settings).
* :func:`plot_distributions`: per-clip values of every metric, one panel per metric, a box per system
  with the individual clips overlaid as points.
* :func:`plot_speakers`: per-speaker means of a few metrics (e.g. GPE and V/UV F1), one panel per
  metric, a group of bars (one per system) for each speaker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_spectrograms", "plot_distributions", "plot_speakers"]


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_spectrograms(
    path: str | Path,
    mels: Mapping[str, np.ndarray],
    labels: Mapping[str, str],
    title: str,
    hop_seconds: float,
) -> Path:
    """Stacked log-mel panels ``(n_mels, frames)``, one per system, on the first panel's colour scale.

    Returns the PNG path. Values outside the first panel's range (1st percentile .. max) saturate.
    """
    names = list(mels)
    fig = _figure(10.0, 2.3 * len(names) + 0.6)
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    first = np.asarray(mels[names[0]])  # every panel on the first's (the reference's) colour scale
    vmin, vmax = float(np.percentile(first, 1)), float(first.max())
    image = None
    for ax, name in zip(axes, names, strict=False):
        m = np.asarray(mels[name])
        extent = (0.0, m.shape[1] * hop_seconds, 0, m.shape[0])
        image = ax.imshow(
            m,
            origin="lower",
            aspect="auto",
            extent=extent,
            vmin=vmin,
            vmax=vmax,
            cmap="magma",
            interpolation="nearest",
        )
        ax.set_ylabel("mel bin")
        ax.set_title(labels.get(name, name), fontsize=10, loc="left")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=11)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="log-mel", shrink=0.8)
    out = Path(path)
    fig.savefig(out)
    return out


def plot_distributions(
    path: str | Path,
    per_system: Mapping[str, Mapping[str, Sequence[float]]],
    metrics: Sequence[tuple[str, str]],
    labels: Mapping[str, str],
) -> Path:
    """Box plots: ``per_system[system][metric]`` -> per-clip values; ``metrics`` = [(key, axis label)]."""
    cols = 4
    rows = int(np.ceil(len(metrics) / cols))
    fig = _figure(3.2 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    systems = list(per_system)
    rng = np.random.default_rng(0)
    for ax, (key, label) in zip(axes, metrics, strict=False):
        data = [np.asarray(per_system[s].get(key, []), dtype=float) for s in systems]
        data = [d[np.isfinite(d)] for d in data]
        positions = np.arange(1, len(systems) + 1)
        shown = [(p, d) for p, d in zip(positions, data, strict=False) if d.size]
        if shown:
            ax.boxplot(
                [d for _, d in shown],
                positions=[p for p, _ in shown],
                widths=0.5,
                showfliers=False,
                medianprops={"color": "black"},
            )
            for p, d in shown:
                ax.scatter(p + rng.uniform(-0.12, 0.12, d.size), d, s=12, alpha=0.7, zorder=3)
        ax.set_xticks(positions, [labels.get(s, s) for s in systems], rotation=20, fontsize=8)
        ax.set_xlim(0.4, len(systems) + 0.6)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    out = Path(path)
    fig.savefig(out)
    return out


def plot_speakers(
    path: str | Path,
    speakers: Sequence[str],
    panels: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
    labels: Mapping[str, str],
    title: str,
) -> Path:
    """Grouped bars: ``panels`` = [(axis label, {system: [value per speaker]})], one panel each, a bar per
    system for each of ``speakers`` (tick labels), its value written on top (so a 0 is seen; NaN is
    written "n/a" without a bar). Returns the PNG path."""
    fig = _figure(max(7.0, 1.2 * len(speakers) + 2.5), 2.8 * len(panels) + 0.6)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(speakers))
    for ax, (label, values) in zip(axes, panels, strict=True):
        systems = list(values)
        width = 0.8 / max(len(systems), 1)
        for i, system in enumerate(systems):
            v = np.asarray(values[system], dtype=float)
            shown = np.isfinite(v)
            offset = (i - (len(systems) - 1) / 2) * width
            bars = ax.bar(x[shown] + offset, v[shown], width=width, label=labels.get(system, system))
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
            for xi in x[~shown]:
                ax.text(xi + offset, 0, "n/a", ha="center", va="bottom", fontsize=6)
        ax.set_ylabel(label)
        ax.set_ylim(0, max(1.0, float(np.nanmax([np.nanmax(np.r_[v, 0.0]) for v in values.values()]))) * 1.15)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1].set_xticks(x, list(speakers), rotation=30 if len(speakers) > 8 else 0, fontsize=8)
    axes[-1].set_xlabel("speaker")
    fig.suptitle(title, fontsize=11)
    out = Path(path)
    fig.savefig(out)
    return out

"""Write an evaluation's results: ``report.md``, ``metrics.json``, figures and a few audio examples.

Layout of the report directory::

    report.md                     settings, model provenance, summary (mean ± 95% t-interval),
                                  per-clip tables, failed clips, metric errors, figures
    metrics.json                  the same numbers as plain data (NaN written as null)
    figures/distributions.png     per-clip metric distributions, one box per system
    figures/spectrogram_N.png     reference / vocoder / Griffin-Lim log-mels of the first clips
    audio/N_<system>.wav          the audio behind those figures (16-bit PCM)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from waveflow_py.evaluation.metrics import METRICS
from waveflow_py.evaluation.pitch import GPE_THRESHOLD
from waveflow_py.evaluation.results import SYSTEMS, EvalResult
from waveflow_py.evaluation.spectral import MCD_COEFFICIENTS, MRSTFT_RESOLUTIONS, MRSTFT_UNSEEN_RESOLUTIONS
from waveflow_py.evaluation.stats import Summary, summarize

__all__ = ["summaries", "write_report", "write_json", "write_markdown"]

_DECIMALS = {
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
_PER_CLIP = (
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


def _labels(result: EvalResult) -> dict[str, str]:
    return {
        "reference": "reference (ceiling)",
        "vocoder": f"{result.model.get('name', 'vocoder')} (temperature {_temperature(result.settings)})",
        "griffin_lim": f"Griffin-Lim ({result.settings.get('griffin_lim_iters')} it.)",
        "envelope": f"envelope baseline (LPC-{result.settings.get('envelope_order', 16)} noise)",
    }


def summaries(result: EvalResult) -> dict[str, dict[str, Summary]]:
    """``{system: {metric: Summary}}`` over the evaluated clips, plus ``{"vocoder": {"nll_*": ...}}``."""
    out: dict[str, dict[str, Summary]] = {}
    for system in SYSTEMS:
        out[system] = {
            m.key: summarize(c.values[system].get(m.key, math.nan) for c in result.clips) for m in METRICS
        }
    out["vocoder"]["nll_nats"] = summarize(c.nll_nats for c in result.clips)
    out["vocoder"]["nll_bits"] = summarize(c.nll_bits for c in result.clips)
    out["envelope"]["nll_nats"] = summarize(c.envelope_nll_nats for c in result.clips)
    out["envelope"]["nll_bits"] = summarize(c.envelope_nll_bits for c in result.clips)
    return out


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (np.floating, np.integer)):
        return _clean(x.item())
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(result: EvalResult, path: Path) -> None:
    """metrics.json: model, settings, per-system summaries, per-clip values and errors, failed clips."""
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
        "clips": [
            {
                "clip": c.clip_id,
                "path": c.path,
                "seconds": c.seconds,
                "nll_nats": c.nll_nats,
                "nll_bits": c.nll_bits,
                "envelope_nll_nats": c.envelope_nll_nats,
                "envelope_nll_bits": c.envelope_nll_bits,
                "vocode_seconds": c.vocode_seconds,
                "values": c.values,
                "errors": {s: e for s, e in c.errors.items() if e},
            }
            for c in result.clips
        ],
        "failed": result.failed,
        "wall_seconds": result.wall_seconds,
    }
    path.write_text(json.dumps(_clean(data), indent=2, default=str) + "\n", encoding="utf-8")


def _fmt(value: float, key: str) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{_DECIMALS.get(key, 3)}f}"


def _cell(s: Summary, key: str) -> str:
    if s.n == 0:
        return "–"
    text = _fmt(s.mean, key) + (f" ± {_fmt(s.ci95, key)}" if math.isfinite(s.ci95) else "")
    return text + (f" (n={s.n})" if s.n_missing else "")


def _mcd_range(n_mels: int) -> str:
    """The cepstral coefficients MCD used for an ``n_mels``-bin mel, as the report states them."""
    k = min(MCD_COEFFICIENTS, n_mels - 1)
    if k < MCD_COEFFICIENTS:
        return f"c1..c{k} (all that a {n_mels}-bin mel has, not the usual c1..c{MCD_COEFFICIENTS})"
    return f"c1..c{k}"


def _settings_lines(result: EvalResult) -> list[str]:
    st = result.settings
    mel = st["mel"]
    res = ", ".join(f"{n}/{h}" for n, h in MRSTFT_RESOLUTIONS)
    unseen = ", ".join(f"{n}/{h}" for n, h in MRSTFT_UNSEEN_RESOLUTIONS)
    return [
        f"- **Data**: {st['data']} — {len(result.clips)} clips evaluated, {len(result.failed)} failed, "
        f"{sum(c.seconds for c in result.clips):.1f} s of audio at {st['sample_rate']} Hz "
        "(files at other rates are resampled with soxr).",
        f"- **Vocoder sampling**: temperature {_temperature(st)} (x the prior's training sigma), "
        f"{_sampling(result.model)}, noise seed = {st['seed']} + clip index.",
        f"- **Griffin-Lim**: {st['griffin_lim_iters']} iterations of fast Griffin-Lim (momentum 0.99, random "
        "initial phase, same seed) on the NNLS inverse of the same log-mel (exp / 10** of the log, then the "
        "mel filter bank inverted).",
        f"- **Envelope baseline**: no parameters: unit Gaussian noise (same seed) through the time-varying "
        f"LPC-{st.get('envelope_order', 16)} synthesis filter and gain computed from the same log-mel "
        "(what an `lpc` prior gives before training); its NLL is the exact likelihood of the reference "
        "under that model.",
        f"- **Mel** (the model's): preset {mel['preset']}, n_fft {mel['n_fft']}, hop {mel['hop_length']}, "
        f"win {mel['win_length']}, {mel['n_mels']} mels {mel['fmin']:g}–{mel['fmax']} Hz, "
        f"log {mel['log']}, clamp {mel['clamp']:g}, padding {mel['padding']}.",
        f"- **Pitch tracker**: {st['pitch']['description']}. F0 RMSE over frames voiced in both; "
        "GPE (gross pitch error) = share of the frames voiced in both whose F0 is off by more than "
        f"{GPE_THRESHOLD:.0%} (|F0_out / F0_ref - 1| > {GPE_THRESHOLD:g}); both are left out, with the "
        "reason, where no frame is voiced in both; periodicity = RMSE of pYIN voiced probability "
        "(CARGAN's periodicity error with pYIN in place of CREPE); V/UV F1 against the reference's voicing.",
        f"- **MR-STFT**: spectral convergence + log-magnitude L1, averaged over FFT/hop {res} (Hann); "
        f"**MR-STFT unseen**: the same over FFT/hop {unseen}, resolutions a spectral training loss on the "
        "usual ones does not see.",
        "- **MCD**: orthonormal DCT-II of the natural-log mel magnitude (model mel), "
        f"{_mcd_range(int(mel['n_mels']))}, "
        "10/ln10·sqrt(2·Σ Δc²) per frame, frames 1:1, mean over all frames.",
        "- **PESQ**: wide-band (P.862.2) at 16 kHz via `pesq`; **STOI** via `pystoi`. "
        "Signals are trimmed to the shorter length before every metric.",
        "- **NLL**: −log p(reference | its mel) from `model.log_prob`, per sample, in nats and bits.",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in st.get("versions", {}).items()) + ".",
        "- Summary cells: mean ± half-width of the 95% Student-t confidence interval over clips "
        "(n shown when some clips had no value).",
    ]


def _per_clip_table(result: EvalResult, system: str, with_nll: bool) -> list[str]:
    spec = {m.key: m for m in METRICS}
    head = ["clip", "s"] + (["NLL nats", "NLL bits"] if with_nll else [])
    head += [
        f"{spec[k].label}" + (f" ({spec[k].unit})" if spec[k].unit in ("dB", "cents") else "")
        for k in _PER_CLIP
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in result.clips:
        row = [f"`{c.clip_id}`", f"{c.seconds:.1f}"]
        if with_nll:
            row += [_fmt(c.nll_nats, "nll_nats"), _fmt(c.nll_bits, "nll_bits")]
        row += [_fmt(c.values[system].get(k, math.nan), k) for k in _PER_CLIP]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def write_markdown(result: EvalResult, path: Path, figures: list[Path]) -> None:
    """report.md (see the module docstring)."""
    labels = _labels(result)
    summ = summaries(result)
    m = result.model
    lines = [f"# Evaluation of `{m.get('name')}`", ""]
    if m.get("untrained"):
        lines += [
            "> **Untrained (random) weights**: the vocoder's numbers below show that the pipeline runs, "
            "not the quality of a trained model.",
            "",
        ]
    lines += ["## Model", ""]
    for key in ("release", "model_type", "parameters", "weights_sha256", "device", "dtype"):
        if key in m:
            lines.append(f"- **{key}**: `{m[key]}`")
    lines += [
        f"- **provenance**: `{json.dumps(m.get('provenance', {}), default=str)}`",
        "",
        "## Settings",
        "",
    ]
    lines += _settings_lines(result)
    lines += [
        "",
        "## Summary",
        "",
        "| metric | better | " + " | ".join(labels[s] for s in SYSTEMS) + " |",
        "|---|---|" + "---|" * len(SYSTEMS),
    ]
    for spec in METRICS:
        unit = f" ({spec.unit})" if spec.unit else ""
        cells = [_cell(summ[s][spec.key], spec.key) for s in SYSTEMS]
        lines.append(
            f"| {spec.label}{unit} | {'↑' if spec.higher_is_better else '↓'} | " + " | ".join(cells) + " |"
        )
    for key, label in (("nll_nats", "NLL (nats/sample)"), ("nll_bits", "NLL (bits/sample)")):
        cells = [_cell(summ[s][key], key) if key in summ[s] else "–" for s in SYSTEMS]
        lines.append(f"| {label} | ↓ | " + " | ".join(cells) + " |")
    vt = [c.vocode_seconds for c in result.clips if math.isfinite(c.vocode_seconds)]
    audio_s = sum(c.seconds for c in result.clips)
    if vt and audio_s:
        lines += [
            "",
            f"Vocoding took {sum(vt):.2f} s for {audio_s:.1f} s of audio "
            f"({audio_s / max(sum(vt), 1e-9):.2f}× real time, {m.get('device', '?')}); "
            f"whole evaluation {result.wall_seconds:.1f} s wall time.",
        ]
    lines += ["", "## Per clip", "", f"### {labels['vocoder']}", ""] + _per_clip_table(
        result, "vocoder", True
    )
    lines += ["", f"### {labels['griffin_lim']}", ""] + _per_clip_table(result, "griffin_lim", False)
    lines += ["", f"### {labels['envelope']}", ""] + _per_clip_table(result, "envelope", False)
    lines += [
        "",
        "Per-clip values of the reference (ceiling) row and the MR-STFT components are in `metrics.json`.",
        "",
        "## Failed clips",
        "",
    ]
    if result.failed:
        lines += ["| clip | reason |", "|---|---|"]
        lines += [f"| `{f['clip']}` | {f['reason'].replace('|', '/')} |" for f in result.failed]
    else:
        lines.append("None: every requested clip was evaluated.")
    errs = [(c.clip_id, s, k, r) for c in result.clips for s, e in c.errors.items() for k, r in e.items()]
    if errs:
        lines += [
            "",
            "## Metric errors (left out of the means)",
            "",
            "| clip | system | metric | reason |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{c}` | {s} | {k} | {r.replace('|', '/')} |" for c, s, k, r in errs]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f.stem}]({f.relative_to(path.parent).as_posix()})" for f in figures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write every file of the report directory; returns ``{name: path}``."""
    import soundfile as sf

    from waveflow_py.evaluation.plots import plot_distributions, plot_spectrograms

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    labels = _labels(result)
    hop_s = result.settings["mel"]["hop_length"] / result.settings["sample_rate"]
    figures: list[Path] = []
    written: dict[str, Path] = {}
    kept = [c for c in result.clips if c.mels]
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
    if result.clips:
        per_system = {
            s: {mm.key: [c.values[s].get(mm.key, math.nan) for c in result.clips] for mm in METRICS}
            for s in SYSTEMS
        }
        metric_axes = [
            (
                mm.key,
                mm.label + (f" ({mm.unit})" if mm.unit else "") + (" ↑" if mm.higher_is_better else " ↓"),
            )
            for mm in METRICS
            if mm.key not in ("mrstft_sc", "mrstft_logmag")
        ]
        figures.insert(
            0, plot_distributions(out / "figures" / "distributions.png", per_system, metric_axes, labels)
        )
    write_json(result, out / "metrics.json")
    write_markdown(result, out / "report.md", figures)
    written.update({"report.md": out / "report.md", "metrics.json": out / "metrics.json"})
    written.update({f.name: f for f in figures})
    return written


def _sampling(model: dict[str, Any]) -> str:
    """How the vocoder's noise was drawn (untruncated, or truncated to +-C standard deviations) and its
    excitation levelled (when it was)."""
    c, rms = model.get("truncation"), model.get("excitation_rms")
    out = "untruncated noise" if c is None else f"noise truncated to +-{c:g} standard deviations"
    return out if rms is None else f"{out}, excitation frames set to RMS {rms:g}"


def _temperature(settings: dict[str, Any]) -> Any:
    """The sampling temperature of a result's settings (``sigma`` in results written before the rename)."""
    return settings.get("temperature", settings.get("sigma"))

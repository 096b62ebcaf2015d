"""``report.md``: settings, summary, per-speaker and per-clip tables, warnings, failed clips, figures.

Sections, in order: Model, Settings (every definition and parameter), Summary (mean ± 95 % t-interval
per system), Per speaker (clip count and means per speaker and system, :mod:`.speakers`), Per clip,
Warnings (clips whose NLL exploded: :func:`~waveflow_py.evaluation.system.nll_warning`), Failed clips,
Metric errors, Figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from waveflow_py.evaluation._format import PER_CLIP, cell, column, fmt, system_labels, temperature
from waveflow_py.evaluation.metrics import METRICS
from waveflow_py.evaluation.pitch import GPE_THRESHOLD
from waveflow_py.evaluation.results import SYSTEMS, EvalResult, summarize_clips
from waveflow_py.evaluation.speakers import speaker_table
from waveflow_py.evaluation.spectral import MCD_COEFFICIENTS, MRSTFT_RESOLUTIONS, MRSTFT_UNSEEN_RESOLUTIONS
from waveflow_py.evaluation.system import NLL_WARNING_NATS

__all__ = ["write_markdown"]


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
        f"- **Vocoder sampling**: temperature {temperature(st)} (x the prior's training sigma), "
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
        "- **NLL**: −log p(reference | its mel) from `model.log_prob`, per sample, in nats and bits: lower "
        "is better, and a model that has learnt speech scores below 0 (the log-likelihood is positive); a "
        f"clip whose NLL is above {NLL_WARNING_NATS:g} nats/sample (log-likelihood below 0: an exploding "
        "likelihood) is listed under Warnings.",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in st.get("versions", {}).items()) + ".",
        "- Summary cells: mean ± half-width of the 95% Student-t confidence interval over clips "
        "(n shown when some clips had no value).",
    ]


def _summary_lines(result: EvalResult, labels: dict[str, str]) -> list[str]:
    summ = summarize_clips(result.clips)
    lines = [
        "| metric | better | " + " | ".join(labels[s] for s in SYSTEMS) + " |",
        "|---|---|" + "---|" * len(SYSTEMS),
    ]
    for spec in METRICS:
        unit = f" ({spec.unit})" if spec.unit else ""
        cells = [cell(summ[s][spec.key], spec.key) for s in SYSTEMS]
        lines.append(
            f"| {spec.label}{unit} | {'↑' if spec.higher_is_better else '↓'} | " + " | ".join(cells) + " |"
        )
    for key, label in (("nll_nats", "NLL (nats/sample)"), ("nll_bits", "NLL (bits/sample)")):
        cells = [cell(summ[s][key], key) if key in summ[s] else "–" for s in SYSTEMS]
        lines.append(f"| {label} | ↓ | " + " | ".join(cells) + " |")
    vt = [c.vocode_seconds for c in result.clips if math.isfinite(c.vocode_seconds)]
    audio_s = sum(c.seconds for c in result.clips)
    if vt and audio_s:
        lines += [
            "",
            f"Vocoding took {sum(vt):.2f} s for {audio_s:.1f} s of audio "
            f"({audio_s / max(sum(vt), 1e-9):.2f}× real time, {result.model.get('device', '?')}); "
            f"whole evaluation {result.wall_seconds:.1f} s wall time.",
        ]
    return lines


def _per_speaker_lines(result: EvalResult, labels: dict[str, str]) -> list[str]:
    return [
        "Speaker = the corpus's speaker id (the `speaker` column of metadata.csv), else the file-name prefix "
        "before the first `-` or `_`. Cells: means over the speaker's clips (n where fewer had a value); the "
        "reference ceiling and 95% intervals are in `metrics.json` (`per_speaker`); `figures/speakers.png` "
        "shows GPE and V/UV F1.",
        "",
        *speaker_table(result, labels),
    ]


def _per_clip_table(result: EvalResult, system: str, with_nll: bool) -> list[str]:
    head = ["clip", "speaker", "s"] + (["NLL nats", "NLL bits"] if with_nll else [])
    head += [column(k) for k in PER_CLIP]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in result.clips:
        row = [f"`{c.clip_id}`", c.speaker, f"{c.seconds:.1f}"]
        if with_nll:
            row += [fmt(c.nll_nats, "nll_nats"), fmt(c.nll_bits, "nll_bits")]
        row += [fmt(c.values[system].get(k, math.nan), k) for k in PER_CLIP]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _warning_lines(result: EvalResult) -> list[str]:
    warned = [(c, w) for c in result.clips for w in c.warnings]
    if not warned:
        return [
            f"None: no clip's NLL is above {NLL_WARNING_NATS:g} nats/sample "
            "(NLL = −log-likelihood per sample; above 0 means the log-likelihood is below 0)."
        ]
    return [
        f"Clips whose NLL is above {NLL_WARNING_NATS:g} nats/sample (NLL = −log-likelihood per sample, so "
        "their log-likelihood is below 0, or not finite): an exploding likelihood (still in the NLL means "
        "above).",
        "",
        "| clip | speaker | NLL nats | warning |",
        "|---|---|---|---|",
        *(f"| `{c.clip_id}` | {c.speaker} | {fmt(c.nll_nats, 'nll_nats')} | {w} |" for c, w in warned),
    ]


def _problem_lines(result: EvalResult) -> list[str]:
    lines = ["## Warnings", "", *_warning_lines(result), "", "## Failed clips", ""]
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
    return lines


def write_markdown(result: EvalResult, path: Path, figures: list[Path]) -> None:
    """report.md (see the module docstring)."""
    labels = system_labels(result)
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
    lines += [f"- **provenance**: `{json.dumps(m.get('provenance', {}), default=str)}`", ""]
    lines += ["## Settings", "", *_settings_lines(result), ""]
    lines += ["## Summary", "", *_summary_lines(result, labels), ""]
    lines += ["## Per speaker", "", *_per_speaker_lines(result, labels), ""]
    lines += ["## Per clip", ""]
    for system, with_nll in (("vocoder", True), ("griffin_lim", False), ("envelope", False)):
        lines += [f"### {labels[system]}", "", *_per_clip_table(result, system, with_nll), ""]
    lines += [
        "Per-clip values of the reference (ceiling) row and the MR-STFT components are in `metrics.json`.",
        "",
        *_problem_lines(result),
    ]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f.stem}]({f.relative_to(path.parent).as_posix()})" for f in figures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sampling(model: dict[str, Any]) -> str:
    """How the vocoder's noise was drawn (untruncated, or truncated to +-C standard deviations), its
    excitation levelled (when it was) and its pitch predictor's strength (when it has one): the resolved
    sampling settings (``model["sampling"]``; results written before it hold the first two flat)."""
    settings = model.get("sampling", model)
    c, rms = settings.get("truncation"), settings.get("excitation_rms")
    strength, projection = settings.get("pitch_strength"), settings.get("mel_projection")
    out = "untruncated noise" if c is None else f"noise truncated to +-{c:g} standard deviations"
    out = out if rms is None else f"{out}, excitation frames set to RMS {rms:g}"
    out = out if strength is None else f"{out}, pitch strength {strength:g}"
    if projection is not None:
        out = f"{out}, mel projection {projection:g}"
        fit, iters = settings.get("projection_fit") or 0, settings.get("projection_iters") or 0
        out = f"{out} (fitted magnitude, {fit} updates per iteration)" if fit else out
        out = f"{out} and {iters} Griffin-Lim iterations" if iters else out
    return out

"""``evaluate``: vocode every reference clip from its own mel and score it against the reference.

For each clip (see :func:`~waveflow_py.evaluation.clips.find_clips`): load it at the model's sample
rate (resampled when the file's rate differs), compute the model's log-mel, then score four systems
with :func:`~waveflow_py.evaluation.metrics.compute_metrics`:

* ``reference``: the clip against itself, the ceiling of each metric (computed, not assumed);
* ``vocoder``: the model's audio from the mel at ``temperature`` (default: the model's, i.e. the
  release's or 0.6), noise seeded with
  ``seed + clip index`` (reproducible per clip whatever the clip order);
* ``griffin_lim``: :func:`~waveflow_py.evaluation.baselines.griffin_lim` from the same mel;
* ``envelope``: the zero-parameter envelope baseline
  (:func:`~waveflow_py.evaluation.baselines.envelope_noise`): unit noise through the mel's LPC-16 filter.

The model's negative log-likelihood of the reference given its mel is recorded in nats and bits per
sample, and so is the envelope baseline's (:func:`~waveflow_py.evaluation.baselines.envelope_log_prob`),
the floor a trained model has to beat. A clip whose model NLL is above 0 nats/sample (its log-likelihood
below 0; :func:`~waveflow_py.evaluation.system.nll_warning`) is logged once and kept in its
``warnings``. Each clip carries its speaker (:class:`~waveflow_py.evaluation.clips.EvalClip`).
A clip that cannot be loaded or processed is listed with its
reason in ``failed`` (and in the report), never silently dropped.
:func:`~waveflow_py.evaluation.report.write_report` writes the files (the runner imports the report, never
the reverse: both share the result types of :mod:`.results`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from waveflow_py.evaluation.baselines import (
    DEFAULT_GL_ITERS,
    ENVELOPE_ORDER,
    envelope_log_prob,
    envelope_noise,
    griffin_lim,
)
from waveflow_py.evaluation.clips import EvalClip, find_clips
from waveflow_py.evaluation.metrics import compute_metrics
from waveflow_py.evaluation.perceptual import require
from waveflow_py.evaluation.pitch import PitchConfig, PitchTrack
from waveflow_py.evaluation.report import write_report
from waveflow_py.evaluation.results import SYSTEMS, ClipResult, EvalResult
from waveflow_py.evaluation.system import EvalModel, nll_from_log_prob, nll_warning
from waveflow_py.sampling import KEEP, resolve_sampling

# SYSTEMS, ClipResult and EvalResult live in .results (shared with .report); still importable from here
__all__ = ["SYSTEMS", "ClipResult", "EvalResult", "evaluate_clips", "evaluate"]

logger = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    """Versions of the packages whose algorithms define the metrics (for reproducibility)."""
    from importlib import metadata

    out = {}
    for dist in ("waveflow-py", "librosa", "pesq", "pystoi", "soxr", "torch", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _load(clip: EvalClip, sample_rate: int) -> np.ndarray:
    from waveflow_py.audio import load_audio

    audio, _sr = load_audio(clip.path, sample_rate, resample=True)
    return audio.detach().cpu().numpy().astype(np.float32) if hasattr(audio, "detach") else np.asarray(audio)


def _evaluate_one(
    model: EvalModel,
    clip: EvalClip,
    index: int,
    *,
    temperature: float,
    seed: int,
    gl_iters: int,
    pitch_config: PitchConfig,
    keep: bool,
) -> ClipResult:
    audio = _load(clip, model.sample_rate)
    n = audio.size
    mel = np.asarray(model.mel(audio), dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] != model.mel_config.n_mels:
        raise ValueError(
            f"model.mel returned shape {mel.shape}; expected ({model.mel_config.n_mels}, frames)"
        )
    t0 = time.perf_counter()
    vocoded = np.asarray(model.vocode(mel, temperature, seed + index), dtype=np.float32).reshape(-1)[:n]
    vocode_seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(vocoded)):
        raise ValueError("the vocoder produced NaN/inf samples")
    gl = griffin_lim(mel, model.mel_config, n_iter=gl_iters, length=n, seed=seed + index)
    env = envelope_noise(mel, model.mel_config, ENVELOPE_ORDER, length=n, seed=seed + index)
    outputs = {"reference": audio, "vocoder": vocoded, "griffin_lim": gl, "envelope": env}
    cache: dict[int, PitchTrack] = {}
    values: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, str]] = {}
    for system, signal in outputs.items():
        res = compute_metrics(
            audio,
            signal,
            model.sample_rate,
            model.mel_config,
            pitch_config=pitch_config,
            reference_tracks=cache,
        )
        values[system], errors[system] = res.values, res.errors
    result = ClipResult(
        clip.clip_id,
        str(clip.path),
        n / model.sample_rate,
        values,
        errors,
        vocode_seconds=vocode_seconds,
        speaker=clip.speaker,
    )
    if model.log_prob is not None:
        result.nll_nats, result.nll_bits = nll_from_log_prob(float(model.log_prob(audio, mel)))
        warning = nll_warning(result.nll_nats)
        if warning is not None:
            logger.warning("clip %s (speaker %s): %s", clip.clip_id, clip.speaker, warning)
            result.warnings.append(warning)
    env_ll = envelope_log_prob(audio, mel, model.mel_config, ENVELOPE_ORDER)
    result.envelope_nll_nats, result.envelope_nll_bits = nll_from_log_prob(env_ll)
    if keep:
        result.audio = outputs
        result.mels = {
            "reference": mel,
            "vocoder": np.asarray(model.mel(vocoded)),
            "griffin_lim": np.asarray(model.mel(gl)),
            "envelope": np.asarray(model.mel(env)),
        }
    return result


def evaluate_clips(
    model: EvalModel,
    clips: Sequence[EvalClip],
    *,
    temperature: float | None = None,
    seed: int = 0,
    gl_iters: int = DEFAULT_GL_ITERS,
    pitch_config: PitchConfig | None = None,
    keep_clips: int = 3,
    progress: bool = False,
    data_description: str = "",
) -> EvalResult:
    """Score ``clips`` (module docstring); keeps audio and mels of the first ``keep_clips`` for figures."""
    temperature = resolve_sampling(model.sampling, temperature=temperature).temperature  # the one rule
    pitch_config = pitch_config or PitchConfig()
    require("pesq", "pesq")  # fail before any work when the eval extra is missing
    require("pystoi", "pystoi")
    start = time.perf_counter()
    results: list[ClipResult] = []
    failed: list[dict[str, str]] = []
    iterator: Any = clips
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(clips, desc="evaluating", unit="clip")
    for index, clip in enumerate(iterator):
        try:
            results.append(
                _evaluate_one(
                    model,
                    clip,
                    index,
                    temperature=temperature,
                    seed=seed,
                    gl_iters=gl_iters,
                    pitch_config=pitch_config,
                    keep=len(results) < keep_clips,
                )
            )
        except (ValueError, OSError, RuntimeError) as e:
            logger.warning("clip %s failed: %s", clip.clip_id, e)
            failed.append(
                {"clip": clip.clip_id, "path": str(clip.path), "reason": f"{type(e).__name__}: {e}"}
            )
    settings = {
        "data": data_description,
        "sample_rate": model.sample_rate,
        "temperature": temperature,
        "seed": seed,
        "griffin_lim_iters": gl_iters,
        "envelope_order": ENVELOPE_ORDER,
        "pitch": pitch_config.to_dict() | {"description": pitch_config.describe()},
        "mel": {k: v for k, v in vars(model.mel_config).items() if k not in ("mean", "std")},
        "clips_requested": len(clips),
        "versions": _versions(),
    }
    model_info = {
        "name": model.name,
        "provenance": model.provenance,
        "untrained": model.is_untrained,
        **model.description,
    }
    return EvalResult(model_info, settings, results, failed, time.perf_counter() - start)


def evaluate(
    model: EvalModel | str,
    data: str | Path,
    out_dir: str | Path | None = None,
    *,
    split: str | None = None,
    max_clips: int | None = None,
    temperature: float | None = None,
    seed: int = 0,
    gl_iters: int = DEFAULT_GL_ITERS,
    pitch_config: PitchConfig | None = None,
    n_figures: int = 3,
    progress: bool = False,
    device: str | None = None,
    truncation: float | str | None = KEEP,
    excitation_rms: float | str | None = KEEP,
    pitch_strength: float | str | None = KEEP,
    mel_projection: float | str | None = KEEP,
    projection_iters: int | str | None = KEEP,
    projection_fit: int | str | None = KEEP,
) -> EvalResult:
    """Evaluate ``model`` (an :class:`EvalModel`, or a release name/directory) on ``data``.

    ``temperature`` overrides the model's sampling temperature; ``truncation``, ``excitation_rms``,
    ``pitch_strength``, ``mel_projection``, ``projection_iters`` and ``projection_fit`` (a release
    name/directory only) its other sampling settings, as in :meth:`waveflow_py.Vocoder.from_pretrained`
    (``"release"``: the release's).

    ``data`` is a metadata.csv or a directory (:func:`find_clips`; ``split`` filters it, ``max_clips``
    keeps the first N). When ``out_dir`` is given, writes ``report.md``, ``metrics.json`` and the
    figures there (:func:`~waveflow_py.evaluation.report.write_report`). Returns the results.
    """
    if isinstance(model, str):
        model = EvalModel.from_pretrained(
            model,
            device=device,
            temperature=temperature,
            truncation=truncation,
            excitation_rms=excitation_rms,
            pitch_strength=pitch_strength,
            mel_projection=mel_projection,
            projection_iters=projection_iters,
            projection_fit=projection_fit,
        )
    elif not all(
        isinstance(v, str) and v == KEEP
        for v in (
            truncation,
            excitation_rms,
            pitch_strength,
            mel_projection,
            projection_iters,
            projection_fit,
        )
    ):
        raise ValueError(
            "truncation, excitation_rms, pitch_strength, mel_projection, projection_iters, projection_fit: "
            "apply to a release name/directory; give an EvalModel its settings with "
            "EvalModel.from_model(..., sampling=SamplingConfig(...))"
        )
    clips = find_clips(data, split=split, max_clips=max_clips)
    desc = f"{data}" + (f" (split {split})" if split else "")
    desc += f", {max_clips} spread over the list" if max_clips else ""
    logger.info("evaluating %s on %d clips of %s", model.name, len(clips), desc)
    result = evaluate_clips(
        model,
        clips,
        temperature=temperature,
        seed=seed,
        gl_iters=gl_iters,
        pitch_config=pitch_config,
        keep_clips=n_figures if out_dir else 0,
        progress=progress,
        data_description=desc,
    )
    if out_dir is not None:
        write_report(result, out_dir)
    return result

"""All evaluation metrics of one degraded/vocoded signal against its reference, in one call.

The individual metrics live by concept in :mod:`.perceptual` (PESQ-WB, STOI), :mod:`.spectral`
(multi-resolution STFT at the usual and at unseen resolutions, log-mel L1, MCD) and :mod:`.pitch`
(F0 RMSE, GPE, periodicity, V/UV F1); their docstrings state every parameter. :data:`METRICS`
describes each result key (unit, direction) for reports. A metric that cannot be computed for a pair
(e.g. PESQ finds no speech) gives NaN and its reason in :attr:`MetricResult.errors` instead of stopping
an evaluation run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from waveflow_py.config import MelConfig
from waveflow_py.evaluation._signal import align_pair, check_sample_rate
from waveflow_py.evaluation.perceptual import pesq_wb, stoi
from waveflow_py.evaluation.pitch import (
    NO_SHARED_VOICING,
    PitchConfig,
    PitchTrack,
    pitch_metrics,
    pitch_metrics_from_tracks,
    track_pitch,
)
from waveflow_py.evaluation.spectral import (
    MRSTFT_RESOLUTIONS,
    MRSTFT_UNSEEN_RESOLUTIONS,
    log_mel_l1,
    mel_cepstral_distortion,
    multi_resolution_stft,
)

__all__ = ["MetricSpec", "METRICS", "METRIC_KEYS", "MetricResult", "compute_metrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    """How to read one metric: a short label, its unit and whether higher is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    description: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("pesq_wb", "PESQ-WB", "MOS-LQO", True, "wide-band PESQ at 16 kHz (1.04..4.64)"),
    MetricSpec("stoi", "STOI", "", True, "short-time objective intelligibility (0..1)"),
    MetricSpec("mrstft", "MR-STFT", "", False, "multi-resolution STFT: spectral convergence + log-mag L1"),
    MetricSpec("mrstft_sc", "MR-STFT SC", "", False, "spectral convergence, mean of 3 resolutions"),
    MetricSpec("mrstft_logmag", "MR-STFT logmag", "ln", False, "log-magnitude L1, mean of 3 resolutions"),
    MetricSpec(
        "mrstft_unseen",
        "MR-STFT unseen",
        "",
        False,
        "MR-STFT (SC + log-mag L1) at FFT/hop 256/64 and 4096/1024, resolutions a spectral loss on the "
        "usual three does not use",
    ),
    *(
        MetricSpec(
            f"mrstft_{n}_{h}",
            f"MR-STFT {n}/{h}",
            "",
            False,
            f"SC + log-mag L1 at FFT/hop {n}/{h} alone "
            f"({'one of the usual three' if (n, h) in MRSTFT_RESOLUTIONS else 'unseen'})",
        )
        for n, h in sorted(MRSTFT_RESOLUTIONS + MRSTFT_UNSEEN_RESOLUTIONS)
    ),
    MetricSpec("log_mel_l1", "log-mel L1", "model log units", False, "L1 of the model's log-mel"),
    MetricSpec(
        "mcd",
        "MCD",
        "dB",
        False,
        "mel-cepstral distortion, c1..c24 (c1..c(n_mels-1) for "
        "mels under 25 bins; the report's settings name the range), frames 1:1",
    ),
    MetricSpec("f0_rmse_cents", "F0 RMSE", "cents", False, "over frames voiced in both (pYIN)"),
    MetricSpec(
        "gpe",
        "GPE",
        "",
        False,
        "gross pitch error: share of frames voiced in both with F0 off by > 20 % (pYIN)",
    ),
    MetricSpec("periodicity_rmse", "periodicity RMSE", "", False, "RMSE of pYIN voiced probability"),
    MetricSpec("vuv_f1", "V/UV F1", "", True, "voicing decisions vs the reference's (pYIN)"),
)
METRIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS)
# the MR-STFT family, computed together: the means over the usual and the unseen resolutions, and each
MRSTFT_KEYS: tuple[str, ...] = tuple(k for k in METRIC_KEYS if k.startswith("mrstft"))
PITCH_KEYS: tuple[str, ...] = ("f0_rmse_cents", "gpe", "periodicity_rmse", "vuv_f1")  # one pYIN pass


@dataclass
class MetricResult:
    """``values[key]`` for every key of :data:`METRIC_KEYS` (NaN where it failed; reason in ``errors``)."""

    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _attempt(result: MetricResult, keys: tuple[str, ...], fn: Callable[[], Any]) -> None:
    """Run ``fn`` (returning a float for one key or a dict for several); failures become NaN + reason."""
    try:
        out = fn()
    except (ValueError, ArithmeticError, RuntimeError) as e:
        for k in keys:
            result.values[k] = float("nan")
            result.errors[k] = f"{type(e).__name__}: {e}"
        logger.warning("metric %s failed: %s", "/".join(keys), e)
        return
    if isinstance(out, dict):
        result.values.update({k: float(out[k]) for k in keys})
    else:
        result.values[keys[0]] = float(out)


def compute_metrics(
    reference: Any,
    degraded: Any,
    sample_rate: int,
    mel_config: MelConfig,
    *,
    pitch_config: PitchConfig | None = None,
    reference_tracks: MutableMapping[int, PitchTrack] | None = None,
) -> MetricResult:
    """Every metric of :data:`METRICS`: ``degraded`` against ``reference`` (1-D, trimmed to the shorter).

    ``mel_config`` is the model's mel (log-mel L1 and MCD use it; its sample rate must be
    ``sample_rate``). ``reference_tracks`` is an optional cache of the reference's pitch track keyed by
    the trimmed length, so one reference scored against several systems is tracked once.
    Invalid input (not 1-D, NaN, wrong rate) raises ``ValueError``; a metric that cannot score an
    otherwise valid pair yields NaN with its reason.
    """
    sr = check_sample_rate(sample_rate)
    if sr != mel_config.sample_rate:
        raise ValueError(f"sample_rate {sr} Hz does not match the mel config's {mel_config.sample_rate} Hz")
    ref, deg = align_pair(reference, degraded)
    result = MetricResult()
    _attempt(result, ("pesq_wb",), lambda: pesq_wb(ref, deg, sr))
    _attempt(result, ("stoi",), lambda: stoi(ref, deg, sr))

    def mrstft() -> dict[str, float]:  # each resolution once; the means as multi_resolution_stft takes them
        per = {
            r: multi_resolution_stft(ref, deg, (r,)) for r in MRSTFT_RESOLUTIONS + MRSTFT_UNSEEN_RESOLUTIONS
        }

        def mean(rs: tuple[tuple[int, int], ...], part: str) -> float:
            return float(np.mean([per[r][part] for r in rs]))

        sc, lm = mean(MRSTFT_RESOLUTIONS, "sc"), mean(MRSTFT_RESOLUTIONS, "log_mag")
        out = {"mrstft": sc + lm, "mrstft_sc": sc, "mrstft_logmag": lm}
        out["mrstft_unseen"] = mean(MRSTFT_UNSEEN_RESOLUTIONS, "sc") + mean(
            MRSTFT_UNSEEN_RESOLUTIONS, "log_mag"
        )
        out.update({f"mrstft_{n}_{h}": v["total"] for (n, h), v in per.items()})
        return out

    _attempt(result, MRSTFT_KEYS, mrstft)
    _attempt(result, ("log_mel_l1",), lambda: log_mel_l1(ref, deg, sr, mel_config))
    _attempt(result, ("mcd",), lambda: mel_cepstral_distortion(ref, deg, sr, mel_config))

    def pitch() -> dict[str, float]:
        cache = reference_tracks if reference_tracks is not None else {}
        if ref.size not in cache:
            cache[ref.size] = track_pitch(ref, sr, pitch_config)
        track = cache[ref.size]
        if np.array_equal(ref, deg):  # pYIN is deterministic: the reference's own track, not re-run
            return pitch_metrics_from_tracks(track, track)
        return pitch_metrics(ref, deg, sr, pitch_config, reference_track=track)

    _attempt(result, PITCH_KEYS, pitch)
    for key in ("f0_rmse_cents", "gpe"):  # NaN only when no frame is voiced in both: say so
        if np.isnan(result.values[key]) and key not in result.errors:
            result.errors[key] = NO_SHARED_VOICING
    return result

"""Pitch metrics from probabilistic YIN (pYIN, Mauch & Dixon 2014; ``librosa.pyin``).

Both signals are resampled to :attr:`PitchConfig.sample_rate` (16 kHz, soxr) and tracked with
``librosa.pyin(fmin=50, fmax=550, frame_length=1024 (64 ms), hop_length=160 (10 ms), center=True)``
and librosa's other defaults (beta(2, 18) threshold prior, 0.1-semitone resolution,
switch probability 0.01). Then, with the reference's track as ground truth:

* **F0 RMSE (cents)**: ``sqrt(mean((1200 * log2(f0_d / f0_r))^2))`` over frames that pYIN marks voiced
  in *both* signals (NaN when there are none).
* **Gross pitch error (GPE)**: the share of those frames voiced in both whose F0 is off by more than
  20 %, ``|f0_d / f0_r - 1| > 0.2`` (octave errors count, a 19 % deviation does not; NaN when no frame
  is voiced in both).
* **Periodicity RMSE**: RMSE over all frames between the two pYIN voiced probabilities. This follows
  the periodicity error of CARGAN (Morrison et al. 2022), which uses torchcrepe's periodicity; here
  pYIN's voiced probability stands in for it (range 0..1).
* **V/UV F1**: F1 score of the degraded signal's voiced/unvoiced decisions against the reference's
  (voiced = positive class); 1 when neither signal has a voiced frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from waveflow_py.evaluation._signal import align_pair, as_signal, check_sample_rate, resample

__all__ = [
    "PitchConfig",
    "PitchTrack",
    "track_pitch",
    "GPE_THRESHOLD",
    "NO_SHARED_VOICING",
    "f0_rmse_cents",
    "f1_from_counts",
    "gross_pitch_error",
    "periodicity_rmse",
    "vuv_f1",
    "pitch_metrics",
    "pitch_metrics_from_tracks",
]

GPE_THRESHOLD = 0.2  # relative F0 deviation above which a frame is a gross pitch error
# why F0 RMSE and GPE are NaN: the only case in which they are
NO_SHARED_VOICING = "no frame is voiced (pYIN) in both the reference and the output"


@dataclass(frozen=True)
class PitchConfig:
    """pYIN settings (at ``sample_rate``, to which signals are resampled first)."""

    fmin: float = 50.0
    fmax: float = 550.0
    sample_rate: int = 16000
    frame_length: int = 1024
    hop_length: int = 160

    def __post_init__(self) -> None:
        if not 0 < self.fmin < self.fmax < self.sample_rate / 2:
            raise ValueError(f"pitch range: need 0 < fmin < fmax < Nyquist, got {self.fmin}..{self.fmax} Hz")
        if self.frame_length < 2 * self.sample_rate / self.fmin:
            raise ValueError(
                f"frame_length {self.frame_length} holds fewer than two periods of fmin={self.fmin} Hz "
                f"at {self.sample_rate} Hz"
            )
        if self.hop_length <= 0:
            raise ValueError(f"hop_length: expected a positive integer, got {self.hop_length}")

    def describe(self) -> str:
        """One line for reports."""
        return (
            f"librosa.pyin on audio resampled to {self.sample_rate} Hz: fmin={self.fmin:g} Hz, "
            f"fmax={self.fmax:g} Hz, frame_length={self.frame_length} "
            f"({1000 * self.frame_length / self.sample_rate:g} ms), hop_length={self.hop_length} "
            f"({1000 * self.hop_length / self.sample_rate:g} ms), other parameters librosa defaults"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PitchTrack:
    """Frame-wise pYIN output, each of shape ``(frames,)``: f0 in Hz (NaN where unvoiced)."""

    f0: np.ndarray
    voiced: np.ndarray
    voiced_prob: np.ndarray


def track_pitch(signal: Any, sample_rate: int, config: PitchConfig | None = None) -> PitchTrack:
    """pYIN track of a 1-D signal (resampled to ``config.sample_rate`` first)."""
    import librosa

    cfg = config or PitchConfig()
    x = resample(as_signal(signal), check_sample_rate(sample_rate), cfg.sample_rate)
    if x.size < cfg.frame_length // 2 + 1:
        x = np.pad(x, (0, cfg.frame_length // 2 + 1 - x.size))
    f0, voiced, prob = librosa.pyin(
        x.astype(np.float32),
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        sr=cfg.sample_rate,
        frame_length=cfg.frame_length,
        hop_length=cfg.hop_length,
        center=True,
    )
    return PitchTrack(
        f0=np.asarray(f0, np.float64),
        voiced=np.asarray(voiced, bool),
        voiced_prob=np.asarray(prob, np.float64),
    )


def _paired(reference: PitchTrack, degraded: PitchTrack) -> tuple[PitchTrack, PitchTrack]:
    n = min(reference.f0.size, degraded.f0.size)
    if max(reference.f0.size, degraded.f0.size) - n > 1:
        raise ValueError(
            f"pitch tracks differ in length ({reference.f0.size} vs {degraded.f0.size} frames); "
            "track signals of the same length"
        )

    def cut(t: PitchTrack) -> PitchTrack:
        return PitchTrack(t.f0[:n], t.voiced[:n], t.voiced_prob[:n])

    return cut(reference), cut(degraded)


def _voiced_in_both(reference: PitchTrack, degraded: PitchTrack) -> tuple[np.ndarray, np.ndarray]:
    """F0 (reference, degraded) of the frames voiced in both tracks with a finite F0 in both."""
    ref, deg = _paired(reference, degraded)
    both = ref.voiced & deg.voiced & np.isfinite(ref.f0) & np.isfinite(deg.f0)
    return ref.f0[both], deg.f0[both]


def f0_rmse_cents(reference: PitchTrack, degraded: PitchTrack) -> float:
    """RMSE of the F0 difference in cents over frames voiced in both tracks; NaN if there are none."""
    f_r, f_d = _voiced_in_both(reference, degraded)
    if not f_r.size:
        return float("nan")
    cents = 1200.0 * np.log2(f_d / f_r)
    return float(np.sqrt(np.mean(cents**2)))


def gross_pitch_error(reference: PitchTrack, degraded: PitchTrack, threshold: float = GPE_THRESHOLD) -> float:
    """Share of the frames voiced in both tracks whose F0 is off by more than ``threshold`` (relative to
    the reference's F0); NaN if no frame is voiced in both."""
    if not threshold > 0:
        raise ValueError(f"threshold: expected a relative deviation > 0, got {threshold}")
    f_r, f_d = _voiced_in_both(reference, degraded)
    if not f_r.size:
        return float("nan")
    return float(np.mean(np.abs(f_d / f_r - 1.0) > threshold))


def periodicity_rmse(reference: PitchTrack, degraded: PitchTrack) -> float:
    """RMSE between the pYIN voiced probabilities over all frames (CARGAN-style periodicity error)."""
    ref, deg = _paired(reference, degraded)
    return float(np.sqrt(np.mean((ref.voiced_prob - deg.voiced_prob) ** 2)))


def vuv_f1(reference: PitchTrack, degraded: PitchTrack) -> float:
    """F1 of degraded voiced decisions against the reference's (voiced = positive); 1 if none voiced."""
    ref, deg = _paired(reference, degraded)
    tp = int(np.sum(ref.voiced & deg.voiced))
    fp = int(np.sum(~ref.voiced & deg.voiced))
    fn = int(np.sum(ref.voiced & ~deg.voiced))
    return f1_from_counts(tp, fp, fn)


def f1_from_counts(tp: float, fp: float, fn: float, empty: float = 1.0) -> float:
    """``2 tp / (2 tp + fp + fn)`` from true-positive, false-positive and false-negative counts (voiced =
    positive); ``empty`` when all three are zero (nothing voiced on either side)."""
    if tp + fp + fn == 0:
        return float(empty)
    return 2.0 * tp / (2.0 * tp + fp + fn)


def pitch_metrics(
    reference: Any,
    degraded: Any,
    sample_rate: int,
    config: PitchConfig | None = None,
    reference_track: PitchTrack | None = None,
) -> dict[str, float]:
    """``{"f0_rmse_cents", "gpe", "periodicity_rmse", "vuv_f1"}``; signals trimmed to the shorter first.

    ``reference_track`` (from :func:`track_pitch` on the same trimmed reference) skips re-tracking it.
    """
    ref, deg = align_pair(reference, degraded)
    ref_track = reference_track or track_pitch(ref, sample_rate, config)
    return pitch_metrics_from_tracks(ref_track, track_pitch(deg, sample_rate, config))


def pitch_metrics_from_tracks(ref_track: PitchTrack, deg_track: PitchTrack) -> dict[str, float]:
    """``{"f0_rmse_cents", "gpe", "periodicity_rmse", "vuv_f1"}`` of two tracks of the same length."""
    return {
        "f0_rmse_cents": f0_rmse_cents(ref_track, deg_track),
        "gpe": gross_pitch_error(ref_track, deg_track),
        "periodicity_rmse": periodicity_rmse(ref_track, deg_track),
        "vuv_f1": vuv_f1(ref_track, deg_track),
    }

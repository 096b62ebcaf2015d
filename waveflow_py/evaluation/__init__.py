"""Evaluation of vocoders: objective metrics, a Griffin-Lim baseline and reports.

* :mod:`.metrics` (PESQ-WB, STOI, multi-resolution STFT at the usual and at unseen resolutions, log-mel
  L1, MCD, F0 RMSE, gross pitch error, periodicity, V/UV F1; the definitions live in :mod:`.perceptual`,
  :mod:`.spectral` and :mod:`.pitch`);
* :mod:`.baselines` (Griffin-Lim from the model's log-mel);
* :func:`evaluate` (:mod:`.runner`) and :func:`write_report` (:mod:`.report`): per-clip scores of the
  vocoder, Griffin-Lim and the reference itself, with 95% confidence intervals, per-speaker tables
  (:mod:`.speakers`), figures, NLL and a warning for any clip whose NLL explodes.

PESQ and STOI need the ``eval`` extra: ``pip install waveflow-py[eval]``.
"""

from waveflow_py.evaluation.baselines import DEFAULT_GL_ITERS, griffin_lim
from waveflow_py.evaluation.clips import EvalClip, find_clips, speaker_from_name
from waveflow_py.evaluation.metrics import METRIC_KEYS, METRICS, MetricResult, compute_metrics
from waveflow_py.evaluation.perceptual import pesq_wb, stoi
from waveflow_py.evaluation.pitch import (
    PitchConfig,
    PitchTrack,
    f0_rmse_cents,
    gross_pitch_error,
    periodicity_rmse,
    pitch_metrics,
    track_pitch,
    vuv_f1,
)
from waveflow_py.evaluation.report import write_report
from waveflow_py.evaluation.results import SYSTEMS, ClipResult, EvalResult
from waveflow_py.evaluation.runner import evaluate
from waveflow_py.evaluation.speakers import SpeakerSummary, per_speaker
from waveflow_py.evaluation.spectral import (
    MRSTFT_RESOLUTIONS,
    MRSTFT_UNSEEN_RESOLUTIONS,
    log_mel_l1,
    mel_cepstral_distortion,
    multi_resolution_stft,
)
from waveflow_py.evaluation.stats import Summary, summarize
from waveflow_py.evaluation.system import EvalModel

__all__ = [
    "DEFAULT_GL_ITERS",
    "METRICS",
    "METRIC_KEYS",
    "MRSTFT_RESOLUTIONS",
    "MRSTFT_UNSEEN_RESOLUTIONS",
    "SYSTEMS",
    "ClipResult",
    "EvalClip",
    "EvalModel",
    "EvalResult",
    "MetricResult",
    "PitchConfig",
    "PitchTrack",
    "SpeakerSummary",
    "Summary",
    "compute_metrics",
    "evaluate",
    "f0_rmse_cents",
    "find_clips",
    "griffin_lim",
    "gross_pitch_error",
    "log_mel_l1",
    "mel_cepstral_distortion",
    "multi_resolution_stft",
    "periodicity_rmse",
    "per_speaker",
    "pesq_wb",
    "pitch_metrics",
    "speaker_from_name",
    "stoi",
    "summarize",
    "track_pitch",
    "vuv_f1",
    "write_report",
]

"""The source-filter stages: exact, mel-conditioned filters between the audio and the flows' excitation.

A vocoder with these stages lets its flows model an excitation instead of the waveform: the mel already
gives each frame's spectral envelope, energy and (roughly) pitch, and a fixed filter derived from it
removes them, exactly invertibly and with a log-det, so the likelihood stays exact. Layout (imports
point down: ``flows``, ``audio`` and ``config`` below, ``models`` above):

* analysis from the mel (no learned parameters):
  :mod:`~waveflow_py.sourcefilter.envelope` (:class:`SpectralEnvelope`: per-segment LPC coefficients and
  gains by NNLS inversion of the filter bank and Levinson-Durbin) and
  :mod:`~waveflow_py.sourcefilter.periodicity` (:class:`MelPeriodicity`: pitch lag and prediction gain);
* the exact filter flows (the flow contract, plus chunked analysis/synthesis with a filter state):
  :mod:`~waveflow_py.sourcefilter.lpc` (:class:`LPCFilter`, :class:`FrameGain`, :class:`PreEmphasis`)
  and :mod:`~waveflow_py.sourcefilter.ltp` (:class:`LongTermPredictor`);
* the one learnable stage, :mod:`~waveflow_py.sourcefilter.harmonic` (:class:`HarmonicSource`: harmonics
  of the mel's F0 with amplitudes and a noise gain from a small per-frame network, an exact shift and
  scale of the excitation);
* their shared base, :mod:`~waveflow_py.sourcefilter.base` (:class:`FilterFlow`: checks and the flow
  contract; the numba/torch synthesis dispatch and the compiled-loop call);
* the assembly a model owns, :mod:`~waveflow_py.sourcefilter.stages` (:class:`SourceFilter`:
  ``analysis(audio, mel)``, ``synthesis(excitation, mel, state)``, :class:`SourceFilterState`), built from
  a :class:`~waveflow_py.config.SourceFilterConfig` (``model.source_filter`` of the model configs).
"""

from __future__ import annotations

from waveflow_py.sourcefilter.base import FilterFlow, numba_available
from waveflow_py.sourcefilter.envelope import SpectralEnvelope, levinson_durbin, reflection_coefficients
from waveflow_py.sourcefilter.harmonic import HarmonicSource
from waveflow_py.sourcefilter.lpc import (
    FrameGain,
    LPCFilter,
    PreEmphasis,
    lpc_context,
    lpc_synthesize,
    lpc_whiten,
)
from waveflow_py.sourcefilter.ltp import DEFAULT_TAPS, LongTermPredictor, ltp_context
from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range
from waveflow_py.sourcefilter.stages import SourceFilter, SourceFilterState

__all__ = [
    "DEFAULT_TAPS",
    "FilterFlow",
    "FrameGain",
    "HarmonicSource",
    "LPCFilter",
    "LongTermPredictor",
    "MelPeriodicity",
    "PreEmphasis",
    "SourceFilter",
    "SourceFilterState",
    "SpectralEnvelope",
    "lag_range",
    "levinson_durbin",
    "lpc_context",
    "lpc_synthesize",
    "lpc_whiten",
    "ltp_context",
    "numba_available",
    "reflection_coefficients",
]

"""The source-filter stages of a vocoder, assembled: audio <-> excitation, conditioned on the mel.

:class:`SourceFilter` builds the stages a :class:`~waveflow_py.config.SourceFilterConfig` asks for and
runs them in order. Analysis (training, parallel over time): pre-emphasis, then the envelope whitening
(a per-segment gain or LPC filter whose coefficients come from the mel), then the harmonic source
(learnable: subtracts the mel's harmonics and divides by a noise gain), then the pitch predictor
(lag and gain from the mel). Synthesis runs the inverses in the reverse order; each stage's filter
memory travels in a :class:`SourceFilterState`, so chunked synthesis equals one pass. Every stage is a
:class:`~waveflow_py.sourcefilter.base.FilterFlow` with a context computed from the mel (fixed stages:
without autograd and with autocast off, so mixed-precision training sees the coefficients synthesis
uses), and the log-dets add up.

One more stage is one entry of :meth:`SourceFilter._stages` (its flow, its context from the mel, its
state field), built in ``__init__`` from its options in the config block.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from waveflow_py.config import MelConfig, SourceFilterConfig
from waveflow_py.sourcefilter.base import FilterFlow
from waveflow_py.sourcefilter.envelope import SpectralEnvelope
from waveflow_py.sourcefilter.harmonic import HarmonicSource
from waveflow_py.sourcefilter.lpc import LPCFilter, PreEmphasis, lpc_context
from waveflow_py.sourcefilter.ltp import LongTermPredictor, ltp_context
from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range

__all__ = ["SourceFilter", "SourceFilterState"]

Context = Callable[[Tensor, int], Tensor | None]


@dataclass
class SourceFilterState:
    """The memory :meth:`SourceFilter.synthesis` carries from one chunk to the next.

    ``lpc``: ``(B, p)`` the last ``p`` outputs of the envelope filter (pre-emphasised domain), oldest
    first (``p = 0`` for the gain envelope; ``None`` without an envelope). ``preemphasis``: ``(B, 1)``
    the last audio sample (de-emphasis memory; ``None`` without pre-emphasis). ``ltp``: ``(B, max_lag + K)``
    the last outputs of the pitch filter (``None`` without a pitch prior). ``harmonic``: ``(B, 1)`` the
    harmonic source's phase (``None`` without it). ``None`` fields at the start of a signal mean zeros.
    """

    lpc: Tensor | None = None
    preemphasis: Tensor | None = None
    ltp: Tensor | None = None
    harmonic: Tensor | None = None


def _full_precision(like: Tensor) -> Any:
    """Autocast off: the fixed stages' coefficients are the same under bf16/fp16 mixed precision (training)
    as without it (synthesis), so the likelihood is of one model."""
    return torch.autocast(device_type=like.device.type, enabled=False)


class SourceFilter(nn.Module):
    """``audio (B, T) <-> excitation (B, T)`` through the stages of ``config``, conditioned on a log-mel.

    Args:
        mel: the mel front end the conditioning comes from (``hop_length`` is the segment length).
        config: which stages (envelope, pre-emphasis, pitch) and their settings.

    With an envelope, ``envelope_log_scale`` (a persistent scalar buffer, 0 by default, set by
    :meth:`calibrate`) is added to every log-gain: the global excitation scale. ``mel`` tensors are
    ``(B, n_mels, F)`` and cover the signal from its first sample (segment ``i`` is samples
    ``[i*hop, (i+1)*hop)``; segments past the mel reuse the last one).
    """

    envelope_log_scale: Tensor  # a registered buffer, only with an envelope

    def __init__(self, mel: MelConfig, config: SourceFilterConfig) -> None:
        super().__init__()
        config.check_mel(mel)
        self.config, self.hop = config, mel.hop_length
        alpha = config.preemphasis
        self.preemphasis = PreEmphasis(alpha, mel.hop_length) if alpha > 0 else None
        self.envelope: SpectralEnvelope | None = None
        self.envelope_filter: LPCFilter | None = None
        if config.envelope != "none":
            order = config.lpc_order if config.envelope == "lpc" else 0
            self.envelope = SpectralEnvelope(mel, order, preemphasis=alpha)
            self.envelope_filter = LPCFilter(order, mel.hop_length)
            self.register_buffer("envelope_log_scale", torch.zeros(()))
        self.periodicity: MelPeriodicity | None = None
        self.pitch_filter: LongTermPredictor | None = None
        if config.pitch == "ltp":
            lo, hi = lag_range(mel)
            strength, threshold = config.pitch_strength, config.pitch_threshold
            self.periodicity = MelPeriodicity(
                mel, lo, hi, strength=strength, threshold=threshold, lag=config.pitch_lag
            )
            self.pitch_filter = LongTermPredictor(mel.hop_length, lo, hi)
        self.harmonic: HarmonicSource | None = None
        if config.source == "harmonic":
            self.harmonic = HarmonicSource(
                mel,
                config.source_bands,
                config.source_hidden,
                config.source_threshold,
                config.source_pitch,
                config.source_pitch_hidden,
                config.source_pitch_floor,
            )

    def _stages(self) -> list[tuple[str, FilterFlow, Context]]:
        """The active stages in analysis order: ``(state field, flow, context of (mel, samples))``."""
        stages: list[tuple[str, FilterFlow, Context]] = []
        if self.preemphasis is not None:
            stages.append(("preemphasis", self.preemphasis, lambda mel, length: None))
        if self.envelope_filter is not None:
            stages.append(("lpc", self.envelope_filter, self.envelope_context))
        if self.harmonic is not None:  # learnable: its controls keep their gradients
            stages.append(("harmonic", self.harmonic, self.harmonic.context))
        if self.pitch_filter is not None:
            stages.append(("ltp", self.pitch_filter, self.pitch_context))
        return stages

    @property
    def mel_context(self) -> int:
        """Mel frames either side of a segment that the stages read (0: frame-wise stages only)."""
        return max((flow.mel_context for _, flow, _ in self._stages()), default=0)

    @property
    def active(self) -> bool:
        """Whether any stage is on (else both directions are the identity)."""
        return bool(self._stages())

    # ------------------------------------------------------------------ contexts from the mel
    def envelope_context(self, mel: Tensor, length: int) -> Tensor:
        """LPC context ``(B, ceil(length / hop), 1 + p)`` for samples ``0 .. length - 1`` of ``mel``
        (segment alignment: :mod:`waveflow_py.sourcefilter.envelope`), with the calibrated global scale."""
        assert self.envelope is not None
        with torch.no_grad(), _full_precision(mel):
            a, log_gain = self.envelope(mel, -(-length // self.hop))
            return lpc_context(a, log_gain + self.envelope_log_scale.to(log_gain.dtype))

    def pitch_context(self, mel: Tensor, length: int, strength: float | None = None) -> Tensor:
        """Pitch-filter context ``(B, ceil(length / hop), 2)`` (lag, gain) for samples ``0 .. length - 1``
        (``strength``: the gain map's strength, ``None``: the configured ``pitch_strength``)."""
        assert self.periodicity is not None
        with torch.no_grad(), _full_precision(mel):
            lag, gain = self.periodicity(mel, -(-length // self.hop), strength)
            return ltp_context(lag, gain)

    # ------------------------------------------------------------------ the two directions
    def analysis(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T) -> (excitation (B, T), log|det| (B,))``: pre-emphasis (log-det 0), then
        ``e = (x - sum_k a_k x[n-k]) / g`` per hop segment, then the pitch predictor (identity without
        stages). Zero filter memory before the first sample."""
        x, logdet = audio, audio.new_zeros(audio.shape[0])
        for _, flow, context in self._stages():
            x, ld, _ = flow.analysis(x, context(mel, x.shape[1]))
            logdet = logdet + ld
        return x, logdet

    def synthesis(
        self,
        excitation: Tensor,
        mel: Tensor,
        state: SourceFilterState | None = None,
        pitch_strength: float | None = None,
        mel_offset: int = 0,
    ) -> tuple[Tensor, Tensor, SourceFilterState]:
        """``excitation (B, T) -> (audio (B, T), log|det| (B,), state)``: the stages' inverses in reverse
        order (the pitch recursion, the all-pole envelope filter, de-emphasis). ``state``: the one returned
        by the call on the preceding samples (``None`` at the start); the returned one continues the
        signal. ``pitch_strength``: the pitch gain's strength (a sampling setting; ``None``: the
        configured one, i.e. the exact inverse of :meth:`analysis`). ``mel_offset``: ``mel`` starts this
        many frames (segments) before the excitation: a stage that reads neighbouring frames
        (``mel_context``, the learned pitch predictor) computes its context over them too and drops them;
        frame-wise stages skip them."""
        if state is not None and not isinstance(state, SourceFilterState):
            raise ValueError(f"state: expected None or a SourceFilterState, got {type(state).__name__}")
        state = state or SourceFilterState()
        x, logdet = excitation, excitation.new_zeros(excitation.shape[0])
        after: dict[str, Tensor] = {}
        for name, flow, context in reversed(self._stages()):
            if name == "ltp" and pitch_strength is not None:
                context = functools.partial(self.pitch_context, strength=pitch_strength)
            if mel_offset and flow.mel_context:  # over the left context too, then dropped
                ctx = context(mel, x.shape[1] + mel_offset * self.hop)
                ctx = ctx if ctx is None else ctx[:, mel_offset:]
            else:
                ctx = context(mel[..., mel_offset:], x.shape[1])
            x, ld, after[name] = flow.synthesis(x, ctx, getattr(state, name))
            logdet = logdet + ld
        return x, logdet, dataclasses.replace(state, **after)

    @torch.no_grad()
    def calibrate(self, audio: Tensor, mel: Tensor) -> float:
        """Set ``envelope_log_scale`` so the excitation of ``audio (B, T)`` (with ``mel``) has unit
        variance; returns the new log-scale (0.0 and no change without an envelope filter). With a harmonic
        source the excitation measured is the envelope filter's output (the signal the source splits into
        harmonics and noise at unit power); otherwise the output of every stage."""
        if self.envelope_filter is None:
            return 0.0
        e = audio
        for name, flow, context in self._stages():
            if self.harmonic is not None and name in ("harmonic", "ltp"):
                break
            e = flow.analysis(e, context(mel, e.shape[1]))[0]
        var = e.double().square().mean().clamp_min(1e-20)
        self.envelope_log_scale.add_(0.5 * torch.log(var).to(self.envelope_log_scale.dtype))
        return float(self.envelope_log_scale)

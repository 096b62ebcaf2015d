"""What every mel-conditioned flow vocoder shares: the mel upsampler, shape checks, padding to the
squeeze group and the likelihood in nats per sample. Sampling (mel -> audio) is
:func:`waveflow_py.inference.synthesize`, the one sampler (noise from ``self.prior.sample``).

A subclass (WaveFlow, WaveGlow) builds its flows, and implements ``_squeeze`` (how a ``(B, C, T)``
signal is folded into its working shape), ``forward``, ``inverse`` and ``fast_cache`` (the explicit
cache object its ``inverse`` takes for fast synthesis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.audio.envelope import SpectralEnvelope
from waveflow_py.audio.periodicity import MelPeriodicity, lag_range
from waveflow_py.config import MelConfig
from waveflow_py.flows.base import check_tensor
from waveflow_py.flows.distributions import StandardNormal, check_positive
from waveflow_py.flows.lpc import LPCFilter, PreEmphasis, lpc_context
from waveflow_py.flows.ltp import LongTermPredictor, ltp_context
from waveflow_py.nn.upsample import MelUpsampler, factor_hop

__all__ = ["MelFlowVocoder", "EnvelopeState"]


def _full_precision(like: Tensor) -> Any:
    """Autocast off: the fixed stages' coefficients are the same under bf16/fp16 mixed precision (training)
    as without it (synthesis), so the likelihood is of one model."""
    return torch.autocast(device_type=like.device.type, enabled=False)


@dataclass
class EnvelopeState:
    """The memory :meth:`MelFlowVocoder.envelope_synthesis` carries from one chunk to the next.

    ``lpc``: ``(B, p)`` the last ``p`` outputs of the envelope filter (pre-emphasised domain), oldest
    first (``p = 0`` for the gain envelope; ``None`` without an envelope). ``preemphasis``: ``(B, 1)``
    the last audio sample (de-emphasis memory; ``None`` without pre-emphasis). ``ltp``: ``(B, max_lag + K)``
    the last outputs of the pitch filter (``None`` without a pitch prior). ``None`` fields at the start
    of a signal mean zeros.
    """

    lpc: Tensor | None = None
    preemphasis: Tensor | None = None
    ltp: Tensor | None = None


class MelFlowVocoder(nn.Module):
    """Base of the flow vocoders: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')``.

    ``T' = ceil(T / n_group) * n_group``: any length works, the waveform is zero-padded to the squeeze
    group inside and the padded samples reuse the last conditioning value.
    """

    envelope_log_scale: Tensor  # a registered buffer, only with an envelope (see _build_envelope)

    def __init__(
        self,
        mel: MelConfig,
        n_group: int,
        upsample_scales: list[int] | None,
        sigma: float,
        *,
        envelope: str = "none",
        lpc_order: int = 16,
        preemphasis: float = 0.0,
        pitch: str = "none",
        pitch_strength: float = 1.0,
        pitch_threshold: float = 0.3,
    ) -> None:
        super().__init__()
        scales = list(upsample_scales) if upsample_scales else factor_hop(mel.hop_length)
        if math.prod(scales) != mel.hop_length:
            raise ValueError(
                f"upsample_scales {scales} multiply to {math.prod(scales)}, "
                f"expected hop_length {mel.hop_length}"
            )
        self._mel_config = mel
        self._group = n_group
        self.upsampler = MelUpsampler(scales)
        self.prior = StandardNormal((1,), sigma=sigma)
        self._build_envelope(mel, envelope, lpc_order, preemphasis)
        self._build_pitch(mel, pitch, pitch_strength, pitch_threshold)
        # sampling setting, not a parameter (releases store it): the RMS every excitation frame is set to
        # before the envelope synthesis in inference.core.run_envelope (None: off; envelope priors only)
        self.excitation_rms: float | None = None

    def _build_envelope(self, mel: MelConfig, envelope: str, lpc_order: int, preemphasis: float) -> None:
        """The fixed envelope stage: pre-emphasis, then a gain or LPC whitening filter from the mel.

        With an envelope, ``envelope_log_scale`` (a persistent scalar buffer, 0 by default, set by
        :meth:`calibrate_envelope`) is added to every log-gain: the global excitation scale.
        """
        if envelope not in ("none", "gain", "lpc"):
            raise ValueError(f"envelope: expected 'none', 'gain' or 'lpc', got {envelope!r}")
        self._envelope_kind = envelope
        self.preemphasis = PreEmphasis(preemphasis, mel.hop_length) if preemphasis > 0 else None
        self.envelope: SpectralEnvelope | None = None
        self.envelope_filter: LPCFilter | None = None
        if envelope != "none":
            order = lpc_order if envelope == "lpc" else 0
            self.envelope = SpectralEnvelope(mel, order, preemphasis=preemphasis)
            self.envelope_filter = LPCFilter(order, mel.hop_length)
            self.register_buffer("envelope_log_scale", torch.zeros(()))

    def _build_pitch(self, mel: MelConfig, pitch: str, strength: float, threshold: float) -> None:
        """The fixed pitch stage after the envelope: a long-term predictor whose lag and gain come from
        the mel (:mod:`waveflow_py.audio.periodicity`); no parameters, no buffers."""
        if pitch not in ("none", "ltp"):
            raise ValueError(f"pitch: expected 'none' or 'ltp', got {pitch!r}")
        self.periodicity: MelPeriodicity | None = None
        self.pitch_filter: LongTermPredictor | None = None
        if pitch == "ltp":
            lo, hi = lag_range(mel)
            self.periodicity = MelPeriodicity(mel, lo, hi, strength=strength, threshold=threshold)
            self.pitch_filter = LongTermPredictor(mel.hop_length, lo, hi)

    # ------------------------------------------------------------------ attributes
    @property
    def hop_length(self) -> int:
        return self._mel_config.hop_length

    @property
    def sample_rate(self) -> int:
        return self._mel_config.sample_rate

    @property
    def n_group(self) -> int:
        return self._group

    # ------------------------------------------------------------------ for subclasses
    def _squeeze(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _flow_forward(self, x: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """The learned flows: ``x (B, T), mel -> (z (B, T'), log|det dz/dx| (B,))``."""
        raise NotImplementedError

    def _flow_inverse(self, z: Tensor, mel: Tensor, cache: Any = None) -> tuple[Tensor, Tensor]:
        """The learned flows inverted: ``z (B, T), mel -> (x (B, T), log|det dx/dz| (B,))``."""
        raise NotImplementedError

    def fast_cache(self, dtype: torch.dtype | None = None) -> Any:
        """A new explicit cache object for ``inverse(z, mel, cache=...)``: the same inverse, fast
        (``dtype``: its compute dtype, e.g. ``torch.bfloat16``; ``None``: the parameters' dtype)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shapes
    def _check_mel(self, mel: Tensor, batch: int | None = None) -> None:
        check_tensor(mel, name="mel", ndims=(3,))
        if mel.shape[1] != self._mel_config.n_mels:
            raise ValueError(
                f"mel: expected {self._mel_config.n_mels} mel bands (B, n_mels, F), "
                f"got shape {tuple(mel.shape)}"
            )
        if batch is not None and mel.shape[0] != batch:
            raise ValueError(f"mel: expected batch size {batch}, got shape {tuple(mel.shape)}")

    def _padded(self, length: int) -> int:
        return -(-length // self.n_group) * self.n_group

    def _check_length(self, length: int, mel: Tensor, what: str = "audio") -> None:
        """``mel`` must cover ``length`` samples; a latent may be as long as the padded coverage."""
        covered = mel.shape[-1] * self.hop_length
        allowed = covered if what == "audio" else self._padded(covered)
        if allowed < length:
            raise ValueError(
                f"mel has {mel.shape[-1]} frames x hop {self.hop_length} = {covered} samples of "
                f"conditioning, fewer than the {length} samples of {what}"
                + ("" if what == "audio" else f" (at most {allowed}: the conditioning rounded up to h)")
            )

    def _fold(self, signal: Tensor, mel: Tensor, what: str) -> tuple[Tensor, Tensor]:
        """Check ``signal (B, T)`` against ``mel``; return both padded to ``T'`` and squeezed."""
        check_tensor(signal, name=what, ndims=(2,))
        self._check_mel(mel, signal.shape[0])
        t = signal.shape[1]
        self._check_length(t, mel, what=what)
        tp = self._padded(t)
        return self._squeeze(F.pad(signal, (0, tp - t)).unsqueeze(1)), self._condition(mel, tp)

    def _condition(self, mel: Tensor, length: int) -> Tensor:
        """Upsampled mel for ``length`` samples (a multiple of the group), squeezed."""
        cond = self.upsampler(mel)
        if cond.shape[-1] < length:
            cond = F.pad(cond, (0, length - cond.shape[-1]), mode="replicate")
        return self._squeeze(cond[..., :length])

    # ------------------------------------------------------------------ the model: envelope, then flows
    # Synthesis is two stages: ``inverse_excitation`` (the learned flows; a finite receptive field, so
    # windows and chunks are exact) and ``envelope_synthesis`` (the fixed mel-conditioned envelope
    # filter; recursive, so chunked synthesis carries its ``state`` across chunks).
    def forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``, ``T' = ceil(T/g)*g``.

        With an envelope stage the audio is zero-padded to ``T'`` first, so the envelope transform (and
        its log-det) covers the same ``T'`` samples the inverse synthesises from ``z``.
        """
        if self._has_fixed_stage:
            check_tensor(audio, name="audio", ndims=(2,))
            self._check_mel(mel, audio.shape[0])
            self._check_length(audio.shape[1], mel, what="audio")
            audio = F.pad(audio, (0, self._padded(audio.shape[1]) - audio.shape[1]))
        x, ld_env = self.envelope_analysis(audio, mel)
        z, ld = self._flow_forward(x, mel)
        return z, ld + ld_env

    def inverse(self, z: Tensor, mel: Tensor, cache: Any = None) -> tuple[Tensor, Tensor]:
        """``z (B, T), mel -> (audio (B, T), log|det dx/dz| (B,))``.

        ``cache=None``: the reference inverse (differentiable, slow); ``cache=self.fast_cache(dtype)``: the
        same inverse, fast (see the subclass). The envelope stage runs over the whole signal at once.
        """
        x, ld = self._flow_inverse(z, mel, cache)
        audio, ld_env, _ = self.envelope_synthesis(x, mel)
        return audio, ld + ld_env

    def inverse_excitation(self, z: Tensor, mel: Tensor, cache: Any = None) -> tuple[Tensor, Tensor]:
        """First synthesis stage: the flows' inverse only, ``z -> excitation (B, T)`` (with log-det)."""
        return self._flow_inverse(z, mel, cache)

    def _envelope_context(self, mel: Tensor, length: int) -> Tensor:
        """LPC context ``(B, ceil(length / hop), 1 + p)`` for samples ``0 .. length - 1`` of ``mel``
        (segment alignment: :mod:`waveflow_py.audio.envelope`), with the calibrated global scale."""
        assert self.envelope is not None
        with torch.no_grad(), _full_precision(mel):
            a, log_gain = self.envelope(mel, -(-length // self.hop_length))
            return lpc_context(a, log_gain + self.envelope_log_scale.to(log_gain.dtype))

    def _pitch_context(self, mel: Tensor, length: int) -> Tensor:
        """Pitch-filter context ``(B, ceil(length / hop), 2)`` (lag, gain) for samples ``0 .. length - 1``."""
        assert self.periodicity is not None
        with torch.no_grad(), _full_precision(mel):
            lag, gain = self.periodicity(mel, -(-length // self.hop_length))
            return ltp_context(lag, gain)

    @property
    def _has_fixed_stage(self) -> bool:
        stages = (self.preemphasis, self.envelope_filter, self.pitch_filter)
        return any(s is not None for s in stages)

    def envelope_analysis(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T) -> (excitation (B, T), log|det| (B,))`` through the mel-conditioned envelope
        transform: pre-emphasis (log-det 0), then ``e = (x - sum_k a_k x[n-k]) / g`` per hop segment,
        then the pitch predictor (identity without them). Zero filter memory before the first sample.
        ``T`` may reach the mel's coverage rounded up to the group (segments past the mel reuse the
        last one)."""
        if not self._has_fixed_stage:
            return audio, audio.new_zeros(audio.shape[0])
        check_tensor(audio, name="audio", ndims=(2,))
        self._check_mel(mel, audio.shape[0])
        self._check_length(audio.shape[1], mel, what="padded audio")
        x, logdet = audio, audio.new_zeros(audio.shape[0])
        if self.preemphasis is not None:
            x, _, _ = self.preemphasis.analysis(x)
        if self.envelope_filter is not None:
            x, logdet, _ = self.envelope_filter.analysis(x, self._envelope_context(mel, x.shape[1]))
        if self.pitch_filter is not None:
            x, ld_pitch, _ = self.pitch_filter.analysis(x, self._pitch_context(mel, x.shape[1]))
            logdet = logdet + ld_pitch
        return x, logdet

    @torch.no_grad()
    def calibrate_envelope(self, audio: Tensor, mel: Tensor) -> float:
        """Set ``envelope_log_scale`` so the excitation of ``audio (B, T)`` (with ``mel``) has unit
        variance; returns the new log-scale (0.0 and no change without an envelope filter)."""
        if self.envelope_filter is None:
            return 0.0
        e, _ = self.envelope_analysis(audio, mel)
        var = e.double().square().mean().clamp_min(1e-20)
        self.envelope_log_scale.add_(0.5 * torch.log(var).to(self.envelope_log_scale.dtype))
        return float(self.envelope_log_scale)

    def envelope_synthesis(
        self, excitation: Tensor, mel: Tensor, state: Any = None
    ) -> tuple[Tensor, Tensor, Any]:
        """Second synthesis stage: ``excitation (B, T)`` -> ``(audio (B, T), log|det| (B,), state)``.

        The pitch filter's recursion (with a pitch prior), the all-pole envelope filter (numba loops on
        CPU without autograd, batched triangular solves / blocks otherwise), then de-emphasis. ``mel``
        covers the excitation from its first sample (frame-aligned:
        its frame 0 is the chunk's first hop segment, so chunks start on a multiple of ``hop``).
        ``state``: the :class:`EnvelopeState` returned by the call on the preceding samples (``None`` at
        the start); the returned one continues the signal. Centred mels (``padding="center"``) average
        frames ``i`` and ``i + 1`` for segment ``i``: give each chunk's call one mel frame beyond its last
        segment (as a whole-signal call has) and chunked synthesis equals one pass exactly.
        Identity without an envelope (still returning an :class:`EnvelopeState`).
        """
        if state is not None and not isinstance(state, EnvelopeState):
            raise ValueError(f"state: expected None or an EnvelopeState, got {type(state).__name__}")
        state = state or EnvelopeState()
        if not self._has_fixed_stage:
            return excitation, excitation.new_zeros(excitation.shape[0]), state
        check_tensor(excitation, name="excitation", ndims=(2,))
        self._check_mel(mel, excitation.shape[0])
        self._check_length(excitation.shape[1], mel, what="excitation")
        x, logdet = excitation, excitation.new_zeros(excitation.shape[0])
        lpc_state, ltp_state = state.lpc, state.ltp
        if self.pitch_filter is not None:
            pitch_ctx = self._pitch_context(mel, x.shape[1])
            x, logdet, ltp_state = self.pitch_filter.synthesis(x, pitch_ctx, ltp_state)
        if self.envelope_filter is not None:
            ctx = self._envelope_context(mel, x.shape[1])
            x, ld_env, lpc_state = self.envelope_filter.synthesis(x, ctx, state.lpc)
            logdet = logdet + ld_env
        pre_state = state.preemphasis
        if self.preemphasis is not None:
            x, _, pre_state = self.preemphasis.synthesis(x, state.preemphasis)
        return x, logdet, EnvelopeState(lpc=lpc_state, preemphasis=pre_state, ltp=ltp_state)

    # ------------------------------------------------------------------ density and sampling
    def log_prob(self, audio: Tensor, mel: Tensor) -> Tensor:
        """Average log-likelihood in nats per sample ``(B,)`` (of the zero-padded length ``T'``)."""
        z, logabsdet = self(audio, mel)
        return (self.prior.log_prob(z) + logabsdet) / z.shape[1]


def check_excitation_rms(value: Any, model: nn.Module | None = None) -> float | None:
    """``value`` as a float > 0 (or ``None``: off), else ``ValueError``; with ``model``, also a
    ``ValueError`` unless the model has an envelope prior (``gain`` or ``lpc``: only they calibrate the
    excitation's level; without one the excitation is the audio)."""
    v = check_positive(value, "excitation_rms")
    if v is not None and model is not None:
        envelope = getattr(getattr(model, "config", None), "envelope", "none")
        if envelope not in ("gain", "lpc"):
            raise ValueError(
                f"excitation_rms: needs a model with an envelope prior (gain or lpc), this one has "
                f"envelope {envelope!r}"
            )
    return v

"""What every mel-conditioned flow vocoder shares: the mel upsampler, the source-filter stages in front
of the flows (:class:`~waveflow_py.sourcefilter.SourceFilter`), shape checks, padding to the squeeze
group and the likelihood in nats per sample. Sampling (mel -> audio) is
:func:`waveflow_py.inference.synthesize`, the one sampler (noise from ``self.prior.sample``).

A subclass (WaveFlow, WaveGlow) builds its flows, and implements ``_squeeze`` (how a ``(B, C, T)``
signal is folded into its working shape), ``forward``, ``inverse`` and ``fast_cache`` (the explicit
cache object its ``inverse`` takes for fast synthesis).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.config import MelConfig, SourceFilterConfig
from waveflow_py.flows.base import check_tensor
from waveflow_py.flows.distributions import StandardNormal
from waveflow_py.nn.upsample import MelUpsampler, factor_hop
from waveflow_py.sampling import DEFAULT_SAMPLING, SamplingConfig, check_for_model
from waveflow_py.sourcefilter import SourceFilter, SourceFilterState
from waveflow_py.sourcefilter.level import level_frames

__all__ = ["MelFlowVocoder"]

# state_dict keys kept at the model's root, where releases made before the source-filter package stored
# them, for buffers that now live in ``self.source_filter``
_ROOT_KEYS = ("envelope_log_scale",)


class MelFlowVocoder(nn.Module):
    """Base of the flow vocoders: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')``.

    ``T' = ceil(T / n_group) * n_group``: any length works, the waveform is zero-padded to the squeeze
    group inside and the padded samples reuse the last conditioning value.
    """

    def __init__(
        self,
        mel: MelConfig,
        n_group: int,
        upsample_scales: list[int] | None,
        sigma: float,
        source_filter: SourceFilterConfig | None = None,
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
        self.source_filter = SourceFilter(mel, source_filter or SourceFilterConfig())
        self._sampling = DEFAULT_SAMPLING

    # ------------------------------------------------------------------ sampling settings
    @property
    def sampling(self) -> SamplingConfig:
        """The release level of the sampling settings (:mod:`waveflow_py.sampling`): what every sampler
        uses when it is given none (``load_release`` sets the release's; the library default otherwise).
        Not a parameter: not in ``state_dict``."""
        return self._sampling

    @sampling.setter
    def sampling(self, value: SamplingConfig) -> None:
        if not isinstance(value, SamplingConfig):
            raise ValueError(f"sampling: expected a SamplingConfig, got {type(value).__name__}")
        self._sampling = check_for_model(value, getattr(self, "config", None))

    # ------------------------------------------------------------------ state_dict keys
    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """The module's state_dict, with the keys of :data:`_ROOT_KEYS` at the model's root (as releases
        store them) instead of under ``source_filter.``."""
        out = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        for key in _ROOT_KEYS:
            if prefix + "source_filter." + key in out:
                out[prefix + key] = out.pop(prefix + "source_filter." + key)
        return out

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # torch's place for a subclass's backward-compatible loading: the root keys of state_dict() go
        # back to the source filter before this module and its children load
        for key in _ROOT_KEYS:
            if prefix + key in state_dict:
                state_dict[prefix + "source_filter." + key] = state_dict.pop(prefix + key)
        super()._load_from_state_dict(state_dict, prefix, *args)

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

    # ------------------------------------------------------------------ the model: source filter, then flows
    # Synthesis is two stages: ``inverse_excitation`` (the learned flows; a finite receptive field, so
    # windows and chunks are exact) and ``envelope_synthesis`` (the fixed mel-conditioned source-filter
    # stages; recursive, so chunked synthesis carries their ``state`` across chunks).
    def forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``, ``T' = ceil(T/g)*g``.

        With a source-filter stage the audio is zero-padded to ``T'`` first, so the stage (and its
        log-det) covers the same ``T'`` samples the inverse synthesises from ``z``.
        """
        if self.source_filter.active:
            check_tensor(audio, name="audio", ndims=(2,))
            self._check_mel(mel, audio.shape[0])
            self._check_length(audio.shape[1], mel, what="audio")
            audio = F.pad(audio, (0, self._padded(audio.shape[1]) - audio.shape[1]))
        x, ld_env = self.envelope_analysis(audio, mel)
        z, ld = self._flow_forward(x, mel)
        return z, ld + ld_env

    def inverse(
        self, z: Tensor, mel: Tensor, cache: Any = None, sampling: SamplingConfig | None = None
    ) -> tuple[Tensor, Tensor]:
        """``z (B, T), mel -> (audio (B, T), log|det dx/dz| (B,))``.

        ``cache=None``: the reference inverse (differentiable, slow); ``cache=self.fast_cache(dtype)``: the
        same inverse, fast (see the subclass). The source-filter stages run over the whole signal at once,
        with the sampling settings' excitation level and pitch strength (``sampling``; ``None``: the
        model's, :attr:`sampling`), as every synthesis path applies them. With the library default (no
        level, the pitch strength as built) this is the exact inverse of :meth:`forward`; the log-det is
        the stages' and the flows' (the levelling adds none).
        """
        x, ld = self._flow_inverse(z, mel, cache)
        audio, ld_env, _ = self.envelope_synthesis(x, mel, sampling=sampling)
        return audio, ld + ld_env

    def inverse_excitation(self, z: Tensor, mel: Tensor, cache: Any = None) -> tuple[Tensor, Tensor]:
        """First synthesis stage: the flows' inverse only, ``z -> excitation (B, T)`` (with log-det)."""
        return self._flow_inverse(z, mel, cache)

    def envelope_analysis(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T) -> (excitation (B, T), log|det| (B,))`` through the source-filter stages
        (:meth:`SourceFilter.analysis`; identity without them). ``T`` may reach the mel's coverage rounded
        up to the group (segments past the mel reuse the last one)."""
        if not self.source_filter.active:
            return audio, audio.new_zeros(audio.shape[0])
        check_tensor(audio, name="audio", ndims=(2,))
        self._check_mel(mel, audio.shape[0])
        self._check_length(audio.shape[1], mel, what="padded audio")
        return self.source_filter.analysis(audio, mel)

    def calibrate_envelope(self, audio: Tensor, mel: Tensor) -> float:
        """Set the excitation scale so the excitation of ``audio (B, T)`` has unit variance
        (:meth:`SourceFilter.calibrate`); returns the new log-scale (0.0 without an envelope filter)."""
        return self.source_filter.calibrate(audio, mel)

    def envelope_synthesis(
        self,
        excitation: Tensor,
        mel: Tensor,
        state: Any = None,
        sampling: SamplingConfig | None = None,
        mel_offset: int = 0,
    ) -> tuple[Tensor, Tensor, Any]:
        """Second synthesis stage: ``excitation (B, T)`` -> ``(audio (B, T), log|det| (B,), state)``.

        The source-filter stages' inverses (:meth:`SourceFilter.synthesis`: numba loops on CPU without
        autograd, batched triangular solves / blocks otherwise). ``mel`` covers the excitation from its
        first sample (frame-aligned: its frame 0 is the chunk's first hop segment, so chunks start on a
        multiple of ``hop``). ``state``: the :class:`~waveflow_py.sourcefilter.SourceFilterState`
        returned by the call on the preceding samples (``None`` at the start); the returned one continues
        the signal. Centred mels (``padding="center"``) average frames ``i`` and ``i + 1`` for segment
        ``i``: give each chunk's call one mel frame beyond its last segment (as a whole-signal call has)
        and chunked synthesis equals one pass exactly. Identity without stages (still returning a state).

        ``sampling`` (``None``: :attr:`sampling`): with ``excitation_rms`` set, each ``hop``-sample frame
        of the excitation is first set to that RMS (:func:`~waveflow_py.sourcefilter.level.level_frames`;
        frames count from the chunk's first sample, so chunks must start on a frame boundary); its
        ``pitch_strength`` sets the pitch predictor's gain. ``mel_offset``: ``mel`` starts this many frames
        before the excitation (left context for a stage that looks at neighbouring frames, the learned
        pitch predictor of the harmonic source; streaming passes it so chunks equal one pass).
        """
        if state is not None and not isinstance(state, SourceFilterState):
            raise ValueError(f"state: expected None or a SourceFilterState, got {type(state).__name__}")
        settings = self._sampling if sampling is None else check_for_model(sampling, self.config)
        if not self.source_filter.active:
            return excitation, excitation.new_zeros(excitation.shape[0]), state or SourceFilterState()
        check_tensor(excitation, name="excitation", ndims=(2,))
        self._check_mel(mel, excitation.shape[0])
        if (
            isinstance(mel_offset, bool)
            or not isinstance(mel_offset, int)
            or not 0 <= mel_offset < mel.shape[-1]
        ):
            raise ValueError(f"mel_offset: expected 0 <= offset < {mel.shape[-1]} frames, got {mel_offset!r}")
        self._check_length(excitation.shape[1], mel[..., mel_offset:], what="excitation")
        if settings.excitation_rms is not None:
            excitation = level_frames(excitation, self.hop_length, settings.excitation_rms)
        return self.source_filter.synthesis(excitation, mel, state, settings.pitch_strength, mel_offset)

    # ------------------------------------------------------------------ density and sampling
    def log_prob(self, audio: Tensor, mel: Tensor) -> Tensor:
        """Average log-likelihood in nats per sample ``(B,)`` (of the zero-padded length ``T'``)."""
        z, logabsdet = self(audio, mel)
        return (self.prior.log_prob(z) + logabsdet) / z.shape[1]


def check_excitation_rms(value: Any, model: nn.Module | None = None) -> float | None:
    """``value`` as a float > 0 (or ``None``: off), else ``ValueError``; with ``model``, also a
    ``ValueError`` unless the model has an envelope prior (``gain`` or ``lpc``: only they calibrate the
    excitation's level; without one the excitation is the audio). The checks of
    :class:`~waveflow_py.sampling.SamplingConfig` and :func:`~waveflow_py.sampling.check_for_model`."""
    settings = SamplingConfig(excitation_rms=value)
    if model is not None:
        check_for_model(settings, getattr(model, "config", None))
    return settings.excitation_rms

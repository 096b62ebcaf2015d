"""What every mel-conditioned flow vocoder shares: the mel upsampler, shape checks, padding to the
squeeze group, the likelihood in nats per sample and sampling with lengths.

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

from waveflow_py.config import MelConfig
from waveflow_py.flows.base import check_tensor
from waveflow_py.flows.distributions import StandardNormal
from waveflow_py.nn.upsample import MelUpsampler, factor_hop

__all__ = ["MelFlowVocoder"]


class MelFlowVocoder(nn.Module):
    """Base of the flow vocoders: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')``.

    ``T' = ceil(T / n_group) * n_group``: any length works, the waveform is zero-padded to the squeeze
    group inside and the padded samples reuse the last conditioning value.
    """

    def __init__(self, mel: MelConfig, n_group: int, upsample_scales: list[int] | None, sigma: float) -> None:
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
        """``audio (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``, ``T' = ceil(T/g)*g``."""
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

    def envelope_analysis(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T) -> (excitation (B, T), log|det| (B,))`` through the mel-conditioned envelope
        transform (identity without an envelope)."""
        return audio, audio.new_zeros(audio.shape[0])

    def envelope_synthesis(
        self, excitation: Tensor, mel: Tensor, state: Any = None
    ) -> tuple[Tensor, Tensor, Any]:
        """Second synthesis stage: ``excitation (B, T)`` -> ``(audio (B, T), log|det| (B,), state)``.

        ``mel`` covers the excitation from its first sample (frame-aligned). ``state`` (from the previous
        call on the preceding samples, ``None`` at the start) carries the filter memory across chunks.
        Identity without an envelope.
        """
        return excitation, excitation.new_zeros(excitation.shape[0]), state

    # ------------------------------------------------------------------ density and sampling
    def log_prob(self, audio: Tensor, mel: Tensor) -> Tensor:
        """Average log-likelihood in nats per sample ``(B,)`` (of the zero-padded length ``T'``)."""
        z, logabsdet = self(audio, mel)
        return (self.prior.log_prob(z) + logabsdet) / z.shape[1]

    @torch.no_grad()
    def infer(
        self,
        mel: Tensor,
        sigma: float = 1.0,
        lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        cached: bool = True,
    ) -> Tensor:
        """Synthesise ``audio (B, F * hop)`` from ``mel (B, n_mels, F)`` with ``z ~ N(0, sigma^2)``.

        ``lengths``: valid mel frames per item ``(B,)``; samples past ``lengths * hop`` are zeroed (for
        audio that also ignores the padding frames, use :func:`waveflow_py.inference.synthesize`).
        ``dtype``: compute dtype of the fast inverse (e.g. ``torch.bfloat16``); ``cached=False`` runs the
        reference inverse (slow; for tests).
        """
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        self._check_mel(mel)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        b, _, frames = mel.shape
        t = frames * self.hop_length
        ref = next(self.parameters())
        z = torch.randn(b, t, generator=generator, device=ref.device, dtype=ref.dtype) * sigma
        audio, _ = self.inverse(z, mel.to(ref.dtype), cache=self.fast_cache(dtype) if cached else None)
        audio = audio[:, :t]
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=audio.device)
            if lengths.shape != (b,) or bool((lengths < 1).any()) or bool((lengths > frames).any()):
                raise ValueError(
                    f"lengths: expected {b} frame counts in [1, {frames}], got {lengths.tolist()}"
                )
            keep = torch.arange(t, device=audio.device)[None, :] < (lengths[:, None] * self.hop_length)
            audio = audio * keep
        return audio

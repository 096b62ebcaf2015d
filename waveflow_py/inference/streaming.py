"""Streaming synthesis: mel chunks in, audio chunks out, with memory bounded by the chunk size.

For long inputs and TTS servers that produce mels incrementally. Each emitted block of ``chunk_frames``
frames is synthesised from a window holding ``context_frames`` frames on either side (the left context
from the past, the right one a fixed lookahead), so work and memory per step are
``O(chunk_frames + 2 * context_frames)`` frames whatever the input length; only the last
``context_frames`` frames (+ the not yet emitted ones) of mel and noise are kept.

**Exactness.** Every time-mixing operation of WaveGlow / WaveFlow is a convolution with a finite reach
(the non-causal width/time convolutions of every flow add up, see
:func:`~waveflow_py.inference.receptive.receptive_field`). With ``context_frames >= ceil(R / hop)`` (the
default) the emitted audio equals offline :func:`~waveflow_py.inference.synthesis.synthesize` with the
same noise **up to float rounding**, not bit for bit: the windows are different GEMM/conv shapes, so
sums are accumulated in different orders (tests/inference/test_streaming.py bounds the difference in
float32). A smaller ``context_frames`` trades accuracy for latency and speed;
the error then depends on the weights (it is not bounded by this module). The lookahead (latency) is
``context_frames`` frames: 131 frames (1.5 s at 22.05 kHz) for the default WaveFlow (h=16, width
dilations 1..128), 514 for h=64, 99 for WaveGlow. Compute per emitted frame is
``(chunk_frames + 2 * context_frames) / chunk_frames`` times offline synthesis (the contexts are
recomputed for every chunk), so exact streaming wants large chunks (e.g. 262 frames: 2x).

**Envelope.** The windows run through the flows only (``model.inverse_excitation``); the emitted
excitation then goes through the model's envelope stage (``model.envelope_synthesis``, a recursive
filter), whose ``state`` (filter memory) is carried from one emitted chunk to the next, so the stream
equals ``model.inverse`` over the whole utterance also with an envelope.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from waveflow_py.inference.core import (
    NoiseStream,
    model_param,
    run_envelope,
    run_excitation,
)
from waveflow_py.inference.projection import ProjectionStream
from waveflow_py.inference.receptive import context_frames as rf_frames
from waveflow_py.inference.receptive import stage_context_frames
from waveflow_py.sampling import SamplingConfig, check_for_model, resolve_sampling, sampling_of

__all__ = ["StreamingSynthesizer"]

log = logging.getLogger(__name__)


class StreamingSynthesizer:
    """Incremental synthesiser for a batch of ``batch`` streams of equal progress.

    ``push(mel (B, n_mels, f), z=None) -> audio (B, k * hop)`` for the frames that became final (``k`` a
    multiple of ``chunk_frames``, maybe 0; with a mel projection, the samples whose projection is final:
    ``(projection_iters + 1) * n_fft`` fewer); ``flush() -> audio`` for the rest at the end of the input.
    ``z`` (``(B, f * hop)``) gives the noise of the pushed frames; by default it is drawn from the model's
    prior with ``generator`` at the settings' temperature and truncation (a
    :class:`~waveflow_py.inference.core.NoiseStream`: for one stream, the same noise as offline
    :func:`~waveflow_py.inference.synthesis.synthesize` with that generator, however the input is split).

    Args:
        model: WaveGlow or WaveFlow (its ``hop_length`` must be a multiple of ``n_group``).
        chunk_frames: frames synthesised per step.
        context_frames: frames of context on each side (default: the receptive field, exact).
        sampling, temperature: the sampling settings, resolved as in
            :func:`~waveflow_py.inference.synthesis.synthesize` (``None``: the model's); with a
            ``mel_projection`` the audio is projected as it streams
            (:class:`~waveflow_py.inference.projection.ProjectionStream`: equal to offline, returned
            ``(projection_iters + 1) * n_fft`` samples later, in whole hops).
        generator: the noise's generator, when ``z`` is not pushed.
        dtype, cached: as in :func:`~waveflow_py.inference.synthesis.synthesize`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        chunk_frames: int = 32,
        context_frames: int | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        cached: bool = True,
        sampling: SamplingConfig | None = None,
    ) -> None:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        if context_frames is not None and context_frames < 0:
            raise ValueError(f"context_frames must be >= 0, got {context_frames}")
        hop, g = int(model.hop_length), int(model.n_group)
        if hop % g:
            raise ValueError(f"streaming needs hop_length ({hop}) to be a multiple of n_group ({g})")
        self.model = model
        self.hop = hop
        self.n_mels = int(model.config.mel.n_mels)
        self.chunk_frames = chunk_frames
        self.exact_context = rf_frames(model)
        self._stage_context = stage_context_frames(model)  # left mel frames the stages need (0: none)
        self.context_frames = self.exact_context if context_frames is None else context_frames
        if self.context_frames < self.exact_context:
            log.info(
                "context_frames=%d < receptive field %d frames: output is approximate",
                self.context_frames,
                self.exact_context,
            )
        base = sampling_of(model) if sampling is None else sampling
        self.sampling = check_for_model(resolve_sampling(base, temperature=temperature), model.config)
        self._projection: ProjectionStream | None = None  # the mel projection, streamed
        if self.sampling.mel_projection is not None:
            s = self.sampling
            self._projection = ProjectionStream(
                model.config.mel, s.mel_projection, iters=s.projection_iters, fit=s.projection_fit
            )
        self.generator, self.dtype, self.cached = generator, dtype, cached
        self.reset()

    def reset(self) -> None:
        """Forget the stream (start a new utterance)."""
        self._mel: Tensor | None = None  # buffered frames [self._start, self._received)
        self._z: Tensor | None = None
        self._state: Any = None  # the envelope filter's memory after the last emitted sample
        self._noise: NoiseStream | None = None  # the prior's draws, when z is not pushed
        self._start = 0
        self._received = 0
        self._emitted = 0
        if self._projection is not None:
            self._projection.reset()

    @property
    def buffered_frames(self) -> int:
        """Frames of mel currently held (bounded by ``2 * context_frames + chunk_frames`` + one push)."""
        return 0 if self._mel is None else self._mel.shape[-1]

    def push(self, mel: Tensor, z: Tensor | None = None) -> Tensor:
        """Add ``mel (B, n_mels, f)`` (and optionally its noise ``z (B, f * hop)``); return final audio."""
        if mel.dim() != 3 or mel.shape[-1] < 1 or mel.shape[1] != self.n_mels:
            raise ValueError(
                f"mel: expected a chunk (B, n_mels={self.n_mels}, f >= 1), got {tuple(mel.shape)}"
            )
        if self._mel is not None and mel.shape[:2] != self._mel.shape[:2]:
            want = tuple(self._mel.shape[:2])
            raise ValueError(f"mel: expected (B, n_mels) = {want}, got {tuple(mel.shape)}")
        p = model_param(self.model)
        f = mel.shape[-1]
        if z is None:
            if self._noise is None:
                self._noise = NoiseStream(self.model, self.sampling, self.generator, rows=mel.shape[0])
            z = self._noise.take(f * self.hop)
        elif tuple(z.shape) != (mel.shape[0], f * self.hop):
            raise ValueError(f"z: expected shape ({mel.shape[0]}, {f * self.hop}), got {tuple(z.shape)}")
        mel, z = mel.to(p.device, p.dtype), z.to(p.device, p.dtype)
        self._mel = mel if self._mel is None else torch.cat([self._mel, mel], dim=-1)
        self._z = z if self._z is None else torch.cat([self._z, z], dim=-1)
        self._received += f
        out = []
        while self._received - self._emitted - self.context_frames >= self.chunk_frames:
            out.append(self._emit(self.chunk_frames))
        audio = self._join(out)
        return audio if self._projection is None else self._projection.push(audio, mel)

    def flush(self) -> Tensor:
        """Synthesise every remaining frame (the input has ended); the stream is then reset."""
        out = []
        while self._emitted < self._received:
            out.append(self._emit(min(self.chunk_frames, self._received - self._emitted)))
        audio = self._join(out)
        if self._projection is not None:
            audio = self._projection.flush(audio)
        self.reset()
        return audio

    def _join(self, parts: list[Tensor]) -> Tensor:
        if parts:
            return torch.cat(parts, dim=-1)
        b = 0 if self._mel is None else self._mel.shape[0]
        return torch.zeros(b, 0, device=model_param(self.model).device)

    def _emit(self, n: int) -> Tensor:
        assert self._mel is not None and self._z is not None
        ctx = self.context_frames
        lo = max(self._start, self._emitted - ctx)
        hi = min(self._received, self._emitted + n + ctx)  # the true end, or a full right context
        a, b = lo - self._start, hi - self._start
        excitation = run_excitation(
            self.model,
            self._z[:, a * self.hop : b * self.hop],
            self._mel[:, :, a:b],
            cached=self.cached,
            dtype=self.dtype,
        )
        off = (self._emitted - lo) * self.hop
        # the envelope sees the mel from the first emitted frame on (all that is buffered after it) and,
        # when a stage reads neighbouring frames (the learned pitch predictor), the left context too
        left = min(self._emitted - lo, self._stage_context)
        piece, self._state = run_envelope(
            self.model,
            excitation[:, off : off + n * self.hop],
            self._mel[:, :, self._emitted - self._start - left :],
            self._state,
            sampling=self.sampling,
            mel_offset=left,
        )
        self._emitted += n
        drop = max(0, self._emitted - ctx - self._start)  # keep only the left context
        if drop:
            self._mel = self._mel[:, :, drop:]
            self._z = self._z[:, drop * self.hop :]
            self._start += drop
        return piece

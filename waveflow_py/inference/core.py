"""The pieces every synthesis path shares: noise from the prior, and the two synthesis stages run in the
model's device and dtype, each with the sampling settings (:class:`~waveflow_py.sampling.SamplingConfig`)
passed explicitly.

A model's inverse is two stages (:class:`~waveflow_py.models.base.MelFlowVocoder`):
:func:`run_excitation` (the flows' inverse; a finite receptive field, so windows of it are exact) and
:func:`run_envelope` (the mel-conditioned envelope filter with the settings' excitation level and pitch
strength; recursive, so it runs over an item's whole signal, or carries its ``state`` from chunk to
chunk). :func:`run_inverse` is both, i.e. ``model.inverse(z, mel, sampling=...)``. The noise is the
prior's at the settings' temperature and truncation (:class:`NoiseStream`, :func:`draw_noise`).
Batched (:mod:`~waveflow_py.inference.synthesis`), streaming
(:mod:`~waveflow_py.inference.streaming`) and CUDA-graph (:mod:`~waveflow_py.inference.cuda`) synthesis
are built from these, so all of them equal the offline ``model.inverse``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from waveflow_py.flows.distributions import check_temperature
from waveflow_py.models.base import check_excitation_rms
from waveflow_py.sampling import DEFAULT_TEMPERATURE, SamplingConfig, sampling_of
from waveflow_py.sourcefilter.level import level_frames

__all__ = [
    "full_precision",
    "DEFAULT_TEMPERATURE",
    "check_temperature",
    "model_param",
    "new_cache",
    "run_excitation",
    "run_envelope",
    "run_inverse",
    "sample_path",
    "level_frames",
    "check_excitation_rms",
    "SamplingConfig",
    "draw_noise",
    "NoiseStream",
    "NOISE_BLOCK",
]


def model_param(model: nn.Module) -> Tensor:
    """The model's first parameter (its device and dtype); ``ValueError`` for a model without any."""
    for p in model.parameters():
        return p
    raise ValueError("model has no parameters")


def new_cache(model: nn.Module, dtype: torch.dtype | None = None) -> Any:
    """The explicit fast-inverse cache object ``model.inverse`` takes (``model.fast_cache(dtype)``)."""
    if not callable(getattr(model, "fast_cache", None)):
        name = type(model).__name__
        raise ValueError(f"expected a WaveFlow or WaveGlow model (with fast_cache), got {name}")
    return model.fast_cache(dtype)


@contextlib.contextmanager
def _autocast(device: torch.device, dtype: torch.dtype | None, base: torch.dtype) -> Iterator[None]:
    if dtype is None or dtype == base:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


@torch.no_grad()
def run_excitation(
    model: nn.Module, z: Tensor, mel: Tensor, *, cached: bool = True, dtype: torch.dtype | None = None
) -> Tensor:
    """First stage, ``model.inverse_excitation(z, mel)``, in the model's device/dtype: ``cached`` through
    the explicit cache (``dtype`` = compute dtype of the WaveNets), else the reference inverse (under
    autocast for ``dtype``). Returns the excitation ``(B, T)`` in the model's dtype."""
    p = model_param(model)
    z, mel = z.to(p.device, p.dtype), mel.to(p.device, p.dtype)
    if cached:
        x, _ = model.inverse_excitation(z, mel, cache=new_cache(model, dtype))
    else:
        with _autocast(p.device, dtype, p.dtype):
            x, _ = model.inverse_excitation(z, mel)
    return x.to(p.dtype)


@torch.no_grad()
def run_envelope(
    model: nn.Module,
    excitation: Tensor,
    mel: Tensor,
    state: Any = None,
    sampling: SamplingConfig | None = None,
    mel_offset: int = 0,
) -> tuple[Tensor, Any]:
    """Second stage, ``model.envelope_synthesis(excitation, mel, state, sampling)`` in the model's dtype:
    float32 audio ``(B, T)`` and the filter state after the last sample (pass it with the following
    samples). ``sampling`` (``None``: the model's): with ``excitation_rms`` set, each ``hop``-sample frame
    of the excitation is first scaled to that RMS (:func:`level_frames`), so the excitation must start on
    a frame boundary (every synthesis path calls it so); ``pitch_strength`` sets the pitch gain.
    ``mel_offset``: ``mel`` starts this many frames before the excitation (streaming's left context)."""
    p = model_param(model)
    extra = {"mel_offset": mel_offset} if mel_offset else {}  # only models with context-reading stages
    audio, _, state = model.envelope_synthesis(
        excitation.to(p.device, p.dtype), mel.to(p.device, p.dtype), state, sampling=sampling, **extra
    )
    return audio.float(), state


def sample_path(
    model: nn.Module, z: Tensor, mel: Tensor, *, sampling: SamplingConfig | None = None, cache: Any = None
) -> Tensor:
    """The synthesis path with autograd (training through the sampler): the flows' inverse
    (``model.inverse_excitation``; the reference inverse when ``cache`` is None), then the fixed stages
    with the sampling settings (``None``: the model's; the excitation levelled frame by frame when
    ``excitation_rms`` is set, the pitch gain at ``pitch_strength``) (``model.envelope_synthesis``, in
    float32 or float64 outside autocast, their differentiable torch recursions when gradients are
    needed). Returns the audio ``(B, T)``; ``run_inverse`` is this path without gradients."""
    x, _ = model.inverse_excitation(z, mel, cache=cache)
    with torch.autocast(device_type=x.device.type, enabled=False):
        audio, _, _ = model.envelope_synthesis(full_precision(x), full_precision(mel), sampling=sampling)
    return audio


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 unless it is float32 or float64 already (bf16/fp16 from autocast)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@torch.no_grad()
def run_inverse(
    model: nn.Module,
    z: Tensor,
    mel: Tensor,
    *,
    cached: bool = True,
    dtype: torch.dtype | None = None,
    sampling: SamplingConfig | None = None,
) -> Tensor:
    """Both stages over the whole signal (= ``model.inverse(z, mel, sampling=sampling)``); float32 audio
    ``(B, T)``."""
    excitation = run_excitation(model, z, mel, cached=cached, dtype=dtype)
    return run_envelope(model, excitation, mel, sampling=sampling)[0]


# Noise is drawn in blocks of this many samples (always whole blocks), so noise drawn piece by piece
# (streaming, long inputs in chunks) is the same as noise drawn at once, whatever the generator's device.
NOISE_BLOCK = 1 << 16


class NoiseStream:
    """The noise of ``rows`` signals, drawn from the model's prior (``model.prior.sample_into``) at the
    temperature and truncation of ``sampling`` (``None``: the model's) in whole blocks of
    :data:`NOISE_BLOCK` samples (``(rows, NOISE_BLOCK)`` each, from ``generator``), handed out piece by
    piece with :meth:`take`. One block is held at a time."""

    def __init__(
        self,
        model: nn.Module,
        sampling: SamplingConfig | None,
        generator: torch.Generator | None,
        *,
        rows: int = 1,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        p = model_param(model)
        self.prior, self.generator = model.prior, generator
        self.sampling = sampling_of(model) if sampling is None else sampling
        self.device = p.device if device is None else device
        self.dtype = p.dtype if dtype is None else dtype
        self.rows = rows
        self._block = torch.empty(rows, 0, device=self.device)
        self._pos = 0

    def take(self, n: int, out: Tensor | None = None) -> Tensor:
        """The next ``n`` samples of every row, ``(rows, n)`` (written into ``out`` when given)."""
        if out is None:
            out = torch.empty(self.rows, n, device=self.device, dtype=self.dtype)
        done = 0
        while done < n:
            if self._pos == self._block.shape[1]:
                self._block = torch.empty(self.rows, NOISE_BLOCK, device=self.device)
                s = self.sampling
                self.prior.sample_into(self._block, s.temperature, self.generator, truncation=s.truncation)
                self._pos = 0
            k = min(n - done, self._block.shape[1] - self._pos)
            out[:, done : done + k] = self._block[:, self._pos : self._pos + k]
            done, self._pos = done + k, self._pos + k
        return out


def draw_noise(
    model: nn.Module,
    lengths_samples: Tensor,
    total: int,
    sampling: SamplingConfig | None,
    generator: torch.Generator | None,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``(B, total)`` noise from the model's prior: row ``i`` holds ``lengths_samples[i]`` samples of its
    own :class:`NoiseStream` at the temperature and truncation of ``sampling`` (``None``: the model's;
    items drawn in batch order from ``generator``), then zeros. Device and dtype default to the model's."""
    p = model_param(model)
    device = p.device if device is None else device
    dtype = p.dtype if dtype is None else dtype
    z = torch.zeros(len(lengths_samples), total, device=device, dtype=dtype)
    for i, n in enumerate(lengths_samples.tolist()):
        if n > total:
            raise ValueError(f"lengths: item {i} has {n} samples, more than the {total} of the batch")
        NoiseStream(model, sampling, generator, device=device, dtype=dtype).take(n, out=z[i : i + 1, :n])
    return z

"""Batched synthesis of mel spectrograms of different lengths, exact per item.

``synthesize(model, mels, lengths)`` pads the batch to the longest item and runs one inverse. The
WaveNets' time/width convolutions are non-causal, so in that padded pass the last ``R`` samples of a
shorter item (``R`` = :func:`~waveflow_py.inference.receptive.receptive_field`) see the padding. With
``exact=True`` (default) those tails are recomputed from each item's own mel and noise only: a window
of ``2 C`` frames ending at the item's true end (``C = ceil(R / hop)``), whose last ``C`` frames are then
free of both the padding and the window's left edge. Windows of equal length are batched together.

**Guarantee**: item ``i``'s audio equals synthesising ``mels[i][:, :lengths[i]]`` alone with the noise
``z[i, :lengths[i] * hop]``, up to float rounding (different GEMM shapes; tests/inference/test_synthesis.py
bounds the difference in float32), and nothing of a neighbour or of the
padding reaches it (batch rows never mix). With ``exact=False`` only samples further than ``R`` from
the item's end are guaranteed; the tail may depend on the padding. Samples past the end are zero.

Cost: ``exact=True`` synthesises ``min(F_i, 2 C)`` extra frames per shorter item. ``C`` is large for the
paper's models because their width dilations double per layer: default WaveFlow (h=16) ``R`` = 33472
samples, ``C`` = 131 frames (1.5 s at 22.05 kHz); WaveFlow h=64: 514 frames; WaveGlow: 99 frames. A
per-item column mask inside the WaveNets (zeroing padded columns before every width convolution) would
make the padded pass itself exact at no extra cost; the models do not offer one yet.

Two stages: the windows above run through the flows only (``model.inverse_excitation``, finite
receptive field); the envelope stage (``model.envelope_synthesis``, a recursive filter) then runs over
each item's whole excitation with that item's own frames, so the result equals ``model.inverse`` of the
item alone also when an envelope is on.

**Long inputs** (more than ``max_frames`` frames, default :data:`DEFAULT_MAX_FRAMES`, 8.9 s at
22.05 kHz / hop 256) are synthesised item by item through
:class:`~waveflow_py.inference.streaming.StreamingSynthesizer` with the exact context, their noise drawn
piece by piece (:class:`~waveflow_py.inference.core.NoiseStream`): the working memory is bounded by a
window of ``max_frames + 2 C`` frames whatever the length (only the input mel and the output audio
grow with it), and the audio equals the one-shot synthesis up to float rounding.

Sampling settings (:class:`~waveflow_py.sampling.SamplingConfig`: temperature, truncation, excitation
level, pitch strength) are resolved once by the one rule (:func:`~waveflow_py.sampling.resolve_sampling`):
the explicit ``temperature`` over the explicit ``sampling`` over the model's (its release's, else the
library default), and passed to every stage. Noise: unless ``z`` is given, item ``i`` gets
``lengths[i] * hop`` draws of the model's prior at the settings' temperature and truncation
(``model.prior.sample``) from ``generator`` in batch order, so a batch reproduces the same items
synthesised one by one with the same generator.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from waveflow_py.inference.core import (
    NoiseStream,
    draw_noise,
    model_param,
    new_cache,
    run_envelope,
    run_excitation,
    run_inverse,
)
from waveflow_py.inference.receptive import context_frames
from waveflow_py.sampling import SamplingConfig, check_for_model, resolve_sampling, sampling_of

__all__ = ["synthesize", "run_inverse", "new_cache", "batch_mels", "draw_noise", "DEFAULT_MAX_FRAMES"]

log = logging.getLogger(__name__)

# Inputs longer than this many frames are synthesised in chunks of this many frames (plus the exact
# context on both sides), so the working memory does not grow with the input. 768 frames (8.9 s at
# 22.05 kHz, hop 256) balance a window's memory (the paper's WaveFlow keeps conditioning projections per
# sample of a window) against the recomputed contexts' compute (docs/implementation-notes.md).
DEFAULT_MAX_FRAMES = 768


def batch_mels(
    mels: Tensor | Sequence[Tensor], lengths: Tensor | Sequence[int] | None, n_mels: int | None = None
) -> tuple[Tensor, Tensor]:
    """``(B, n_mels, F)`` (+ optional frame lengths) or a list of ``(n_mels, F_i)`` -> padded batch and
    lengths ``(B,)`` (on the CPU; the mel stays on its device). List items are padded by repeating their
    last frame (values past a length never reach that item's output with ``exact=True``). ``n_mels``:
    the bin count the model expects (checked when given)."""
    if isinstance(mels, Tensor):
        if mels.dim() == 2:
            mels = mels.unsqueeze(0)
        if mels.dim() != 3 or mels.shape[-1] < 1:
            raise ValueError(
                f"mels: expected (B, n_mels, F >= 1) or a list of (n_mels, F_i), got {tuple(mels.shape)}"
            )
        _check_bins(mels, n_mels)
        frames = mels.shape[-1]
        if lengths is None:
            return mels, torch.full((mels.shape[0],), frames, dtype=torch.long)
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu().reshape(-1)
        if lengths.shape != (mels.shape[0],) or bool((lengths < 1).any()) or bool((lengths > frames).any()):
            raise ValueError(
                f"lengths: expected {mels.shape[0]} frame counts in [1, {frames}], got {lengths.tolist()}"
            )
        return mels, lengths
    items = [m.squeeze(0) if m.dim() == 3 and m.shape[0] == 1 else m for m in mels]
    if not items or any(m.dim() != 2 or m.shape[-1] < 1 for m in items):
        shapes = [tuple(m.shape) for m in items]
        raise ValueError(f"mels: expected a non-empty list of (n_mels, F_i), got {shapes}")
    if lengths is not None:
        raise ValueError("lengths: give lengths only with a padded (B, n_mels, F) tensor, not with a list")
    longest = max(m.shape[-1] for m in items)
    out = torch.stack([torch.cat([m, m[:, -1:].expand(-1, longest - m.shape[-1])], dim=1) for m in items])
    _check_bins(out, n_mels)
    return out, torch.tensor([m.shape[-1] for m in items], dtype=torch.long)


def _check_bins(mel: Tensor, n_mels: int | None) -> None:
    if n_mels is not None and mel.shape[1] != n_mels:
        raise ValueError(f"mels: expected {n_mels} mel bands (B, n_mels, F), got shape {tuple(mel.shape)}")
    if not mel.is_floating_point():
        raise ValueError(f"mels: expected a floating-point tensor, got {mel.dtype}")


@torch.no_grad()
def synthesize(
    model: nn.Module,
    mels: Tensor | Sequence[Tensor],
    lengths: Tensor | Sequence[int] | None = None,
    temperature: float | None = None,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
    *,
    sampling: SamplingConfig | None = None,
    z: Tensor | None = None,
    cached: bool = True,
    exact: bool = True,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
) -> tuple[Tensor, Tensor]:
    """THE mel -> audio path: synthesise a batch of mels of different lengths (see the module docstring
    for the guarantee).

    Args:
        model: a WaveGlow or WaveFlow.
        mels: ``(B, n_mels, F)`` with ``lengths`` (valid frames per item, default all ``F``) or a list of
            ``(n_mels, F_i)``.
        temperature: scale of the noise relative to the prior's training sigma (ignored when ``z`` is
            given); ``None``: the one of ``sampling``.
        dtype: compute dtype of the networks (``torch.bfloat16`` / ``torch.float16``), None: the model's.
        generator: random generator of the noise.
        sampling: the sampling settings (``None``: the model's, ``model.sampling``: its release's, else
            the library default); ``temperature`` overrides its temperature. Its ``mel_projection``
            post-filter (:mod:`waveflow_py.inference.projection`) acts on each item's audio last.
        z: the noise itself, ``(B, >= F * hop)`` (item ``i`` uses its first ``lengths[i] * hop`` samples).
        cached: use the model's fast cached inverse (default) or the reference inverse.
        exact: recompute the tails of shorter items so that padding never reaches them.
        max_frames: inputs longer than this are synthesised in chunks of this many frames with the exact
            context (bounded memory, same audio up to float rounding); ``None``: never chunk.

    Returns:
        ``audio (B, F * hop)`` float32, zero past each item's end, and ``lengths`` in samples ``(B,)``.
    """
    base = sampling_of(model) if sampling is None else sampling
    settings = check_for_model(
        resolve_sampling(base, temperature=temperature), getattr(model, "config", None)
    )
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames: expected >= 1 or None, got {max_frames}")
    mel, frames = batch_mels(mels, lengths, _n_mels(model))
    hop = int(model.hop_length)
    b, _, f_max = mel.shape
    n_samples = frames * hop
    total = f_max * hop
    p = model_param(model)
    if z is not None and (z.dim() != 2 or z.shape[0] != b or z.shape[1] < total):
        raise ValueError(f"z: expected noise of shape ({b}, >= {total}), got {tuple(z.shape)}")
    mel = mel.to(p.device, p.dtype)
    if max_frames is not None and f_max > max_frames and _streamable(model):
        audio = _synthesize_chunked(
            model, mel, z, generator, frames, max_frames, settings, cached=cached, dtype=dtype
        )
        return _mel_projection(model, audio, mel, frames, settings), n_samples
    if z is None:
        z = draw_noise(model, n_samples, total, settings, generator)
    z = z[:, :total].to(p.device, p.dtype)
    excitation = run_excitation(model, z, mel, cached=cached, dtype=dtype)
    if exact and bool((frames < f_max).any()):
        _fix_tails(model, excitation, z, mel, frames, cached=cached, dtype=dtype)
    audio = _envelope_per_item(model, excitation, mel, frames, settings)
    return _mel_projection(model, audio, mel, frames, settings), n_samples


def _mel_projection(
    model: nn.Module, audio: Tensor, mel: Tensor, frames: Tensor, sampling: SamplingConfig
) -> Tensor:
    """The mel projection post-filter (``sampling.mel_projection``; off: ``audio`` as it is), each item on
    its own samples and frames (as if alone: the padding never reaches it)."""
    if sampling.mel_projection is None:
        return audio
    from waveflow_py.inference.projection import project_to_mel

    cfg = model.config.mel
    out = torch.zeros_like(audio)
    for i, f in enumerate(frames.tolist()):
        n = f * int(model.hop_length)
        out[i, :n] = project_to_mel(
            audio[i : i + 1, :n],
            mel[i : i + 1, :, :f].float(),
            cfg,
            sampling.mel_projection,
            iters=sampling.projection_iters,
            fit=sampling.projection_fit,
        )[0]
    return out


def _n_mels(model: nn.Module) -> int | None:
    mel_cfg = getattr(getattr(model, "config", None), "mel", None)
    return int(mel_cfg.n_mels) if mel_cfg is not None else None


def _streamable(model: nn.Module) -> bool:
    if int(model.hop_length) % int(model.n_group):
        log.warning(
            "hop_length %d is not a multiple of n_group %d: synthesising a long input in one piece",
            int(model.hop_length),
            int(model.n_group),
        )
        return False
    return True


def _envelope_per_item(
    model: nn.Module, excitation: Tensor, mel: Tensor, frames: Tensor, sampling: SamplingConfig
) -> Tensor:
    """The envelope stage over each item's own ``frames[i] * hop`` samples and frames (items of equal
    length together); float32 audio ``(B, F * hop)``, zero past each item's end."""
    hop = int(model.hop_length)
    f_max = mel.shape[-1]
    if bool((frames == f_max).all()):
        return run_envelope(model, excitation, mel, sampling=sampling)[0]
    audio = torch.zeros(excitation.shape, device=excitation.device, dtype=torch.float32)
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(frames.tolist()):
        groups.setdefault(f, []).append(i)
    for f, items in groups.items():
        idx = torch.tensor(items, device=excitation.device)
        piece = run_envelope(model, excitation[idx, : f * hop], mel[idx, :, :f], sampling=sampling)[0]
        audio[idx, : f * hop] = piece
    return audio


def _synthesize_chunked(
    model: nn.Module,
    mel: Tensor,
    z: Tensor | None,
    generator: torch.Generator | None,
    frames: Tensor,
    chunk: int,
    sampling: SamplingConfig,
    *,
    cached: bool,
    dtype: torch.dtype | None,
) -> Tensor:
    """Each item alone through a :class:`StreamingSynthesizer` of ``chunk``-frame steps (exact context):
    memory per step is bounded by ``chunk + 2 C`` frames. The noise: ``z`` itself, or (``None``) drawn
    piece by piece from ``generator`` at ``sampling`` (the same noise as :func:`draw_noise`)."""
    from waveflow_py.inference.streaming import StreamingSynthesizer

    hop = int(model.hop_length)
    p = model_param(model)
    audio = torch.zeros(mel.shape[0], mel.shape[-1] * hop, device=p.device, dtype=torch.float32)
    flow_only = dataclasses.replace(sampling, mel_projection=None)  # synthesize projects the whole item
    stream = StreamingSynthesizer(model, chunk_frames=chunk, cached=cached, dtype=dtype, sampling=flow_only)
    for i, f in enumerate(frames.tolist()):
        pos = 0
        draws = None if z is not None else NoiseStream(model, sampling, generator)
        for a in range(0, f, chunk):
            b = min(f, a + chunk)
            if draws is None:
                assert z is not None
                zi = z[i : i + 1, a * hop : b * hop]
            else:
                zi = draws.take((b - a) * hop)
            piece = stream.push(mel[i : i + 1, :, a:b], zi)
            audio[i, pos : pos + piece.shape[1]] = piece[0]
            pos += piece.shape[1]
        piece = stream.flush()
        audio[i, pos : pos + piece.shape[1]] = piece[0]
    return audio


def _fix_tails(
    model: nn.Module,
    excitation: Tensor,
    z: Tensor,
    mel: Tensor,
    frames: Tensor,
    *,
    cached: bool,
    dtype: torch.dtype | None,
) -> None:
    """Recompute, in place, the last ``C`` frames of every shorter item's excitation from a ``2 C``-frame
    window that ends at its own end (windows of equal length are batched; the flows only, the envelope
    runs afterwards over the whole item). When ``hop`` is not a multiple of ``n_group`` a window could
    not start on a column boundary: the whole item is recomputed instead."""
    hop = int(model.hop_length)
    c = context_frames(model)
    aligned = hop % int(model.n_group) == 0
    f_max = mel.shape[-1]
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(frames.tolist()):
        if f < f_max:
            groups.setdefault(min(f, 2 * c) if aligned else f, []).append(i)
    for width, items in groups.items():
        starts = [int(frames[i]) - width for i in items]
        zw = torch.stack([z[i, s * hop : (s + width) * hop] for i, s in zip(items, starts, strict=True)])
        mw = torch.stack([mel[i, :, s : s + width] for i, s in zip(items, starts, strict=True)])
        out = run_excitation(model, zw, mw, cached=cached, dtype=dtype)
        keep = min(width, c) if aligned else width
        for row, (i, s) in enumerate(zip(items, starts, strict=True)):
            end = (s + width) * hop
            excitation[i, end - keep * hop : end] = out[row, (width - keep) * hop :]

"""Batched synthesis of mel spectrograms of different lengths, exact per item.

``synthesize(model, mels, lengths)`` pads the batch to the longest item and runs one inverse. The
WaveNets' time/width convolutions are non-causal, so in that padded pass the last ``R`` samples of a
shorter item (``R`` = :func:`~waveflow_py.inference.receptive.receptive_field`) see the padding. With
``exact=True`` (default) those tails are recomputed from each item's own mel and noise only: a window
of ``2 C`` frames ending at the item's true end (``C = ceil(R / hop)``), whose last ``C`` frames are then
free of both the padding and the window's left edge. Windows of equal length are batched together.

**Guarantee**: item ``i``'s audio equals synthesising ``mels[i][:, :lengths[i]]`` alone with the noise
``z[i, :lengths[i] * hop]``, up to float rounding (different GEMM shapes; measured differences are at
the 1e-6 level in float32, see tests/inference/test_synthesis.py), and nothing of a neighbour or of the
padding reaches it (batch rows never mix). With ``exact=False`` only samples further than ``R`` from
the item's end are guaranteed; the tail may depend on the padding. Samples past the end are zero.

Cost: ``exact=True`` synthesises ``min(F_i, 2 C)`` extra frames per shorter item. ``C`` is large for the
paper's models because their width dilations double per layer: default WaveFlow (h=16) ``R`` = 33472
samples, ``C`` = 131 frames (1.5 s at 22.05 kHz); WaveFlow h=64: 514 frames; WaveGlow: 99 frames. A
per-item column mask inside the WaveNets (zeroing padded columns before every width convolution) would
make the padded pass itself exact at no extra cost; the models do not offer one yet.

Noise: unless ``z`` is given, item ``i`` gets ``sigma * randn(lengths[i] * hop)`` drawn from
``generator`` in batch order, so a batch reproduces the same items synthesised one by one with the same
generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from waveflow_py.flows.causal import RowCache
from waveflow_py.inference.receptive import context_frames
from waveflow_py.models.base import MelFlowVocoder
from waveflow_py.models.waveglow import WaveGlowCache

__all__ = ["synthesize", "run_inverse", "new_cache", "batch_mels", "draw_noise"]


def new_cache(model: nn.Module, dtype: torch.dtype | None = None) -> RowCache | WaveGlowCache:
    """The explicit fast-inverse cache object ``model.inverse`` takes (``model.fast_cache(dtype)``)."""
    if not isinstance(model, MelFlowVocoder):
        raise ValueError(f"expected a WaveFlow or WaveGlow model, got {type(model).__name__}")
    return model.fast_cache(dtype)


def _param(model: nn.Module) -> Tensor:
    for p in model.parameters():
        return p
    raise ValueError("model has no parameters")


@contextlib.contextmanager
def _autocast(device: torch.device, dtype: torch.dtype | None, base: torch.dtype) -> Iterator[None]:
    if dtype is None or dtype == base:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


@torch.no_grad()
def run_inverse(
    model: nn.Module, z: Tensor, mel: Tensor, *, cached: bool = True, dtype: torch.dtype | None = None
) -> Tensor:
    """``model.inverse(z, mel)`` in the model's device/dtype; ``cached``: through the explicit cache
    (``dtype`` = compute dtype of the WaveNets), else the reference inverse (under autocast for ``dtype``).
    Returns float32 audio ``(B, T)``."""
    p = _param(model)
    z, mel = z.to(p.device, p.dtype), mel.to(p.device, p.dtype)
    if cached:
        audio, _ = model.inverse(z, mel, cache=new_cache(model, dtype))
    else:
        with _autocast(p.device, dtype, p.dtype):
            audio, _ = model.inverse(z, mel)
    return audio.float()


def batch_mels(
    mels: Tensor | Sequence[Tensor], lengths: Tensor | Sequence[int] | None
) -> tuple[Tensor, Tensor]:
    """``(B, n_mels, F)`` (+ optional frame lengths) or a list of ``(n_mels, F_i)`` -> padded batch and
    lengths ``(B,)``. List items are padded by repeating their last frame (values past a length never
    reach that item's output with ``exact=True``)."""
    if isinstance(mels, Tensor):
        if mels.dim() == 2:
            mels = mels.unsqueeze(0)
        if mels.dim() != 3:
            raise ValueError(
                f"mels: expected (B, n_mels, F) or a list of (n_mels, F_i), got {tuple(mels.shape)}"
            )
        frames = mels.shape[-1]
        if lengths is None:
            return mels, torch.full((mels.shape[0],), frames, dtype=torch.long)
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
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
    return out, torch.tensor([m.shape[-1] for m in items], dtype=torch.long)


def draw_noise(
    lengths_samples: Tensor,
    total: int,
    sigma: float,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """``(B, total)`` noise: row ``i`` is ``sigma * randn(lengths[i])`` (drawn in batch order), then zeros."""
    z = torch.zeros(len(lengths_samples), total, device=device, dtype=dtype)
    for i, n in enumerate(lengths_samples.tolist()):
        z[i, :n] = torch.randn(n, generator=generator, device=generator.device if generator else "cpu").to(
            device, dtype
        ) * sigma
    return z


@torch.no_grad()
def synthesize(
    model: nn.Module,
    mels: Tensor | Sequence[Tensor],
    lengths: Tensor | Sequence[int] | None = None,
    sigma: float = 1.0,
    dtype: torch.dtype | None = None,
    generator: torch.Generator | None = None,
    *,
    z: Tensor | None = None,
    cached: bool = True,
    exact: bool = True,
) -> tuple[Tensor, Tensor]:
    """Synthesise a batch of mels of different lengths (see the module docstring for the guarantee).

    Args:
        model: a WaveGlow or WaveFlow.
        mels: ``(B, n_mels, F)`` with ``lengths`` (valid frames per item, default all ``F``) or a list of
            ``(n_mels, F_i)``.
        sigma: prior temperature of the noise (ignored when ``z`` is given).
        dtype: compute dtype of the networks (``torch.bfloat16`` / ``torch.float16``), None: the model's.
        generator: random generator of the noise.
        z: the noise itself, ``(B, >= F * hop)`` (item ``i`` uses its first ``lengths[i] * hop`` samples).
        cached: use the model's fast cached inverse (default) or the reference inverse.
        exact: recompute the tails of shorter items so that padding never reaches them.

    Returns:
        ``audio (B, F * hop)`` float32, zero past each item's end, and ``lengths`` in samples ``(B,)``.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    mel, frames = batch_mels(mels, lengths)
    hop = int(model.hop_length)
    b, _, f_max = mel.shape
    n_samples = frames * hop
    total = f_max * hop
    p = _param(model)
    if z is None:
        z = draw_noise(n_samples, total, sigma, generator, p.device, p.dtype)
    elif z.dim() != 2 or z.shape[0] != b or z.shape[1] < total:
        raise ValueError(f"z: expected noise of shape ({b}, >= {total}), got {tuple(z.shape)}")
    z = z[:, :total].to(p.device, p.dtype)
    mel = mel.to(p.device, p.dtype)
    audio = run_inverse(model, z, mel, cached=cached, dtype=dtype)
    if exact and bool((frames < f_max).any()):
        _fix_tails(model, audio, z, mel, frames, cached=cached, dtype=dtype)
    keep = torch.arange(total, device=audio.device)[None, :] < n_samples.to(audio.device)[:, None]
    return audio * keep, n_samples


def _fix_tails(
    model: nn.Module, audio: Tensor, z: Tensor, mel: Tensor, frames: Tensor, *, cached: bool,
    dtype: torch.dtype | None,
) -> None:
    """Recompute, in place, the last ``C`` frames of every shorter item from a ``2 C``-frame window that
    ends at its own end (windows of equal length are batched). When ``hop`` is not a multiple of
    ``n_group`` a window could not start on a column boundary: the whole item is recomputed instead."""
    hop = int(model.hop_length)
    c = context_frames(model)
    aligned = hop % int(model.n_group) == 0
    f_max = mel.shape[-1]
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(frames.tolist()):
        if f < f_max:
            groups.setdefault(min(f, 2 * c) if aligned else f, []).append(i)
    for width, items in groups.items():
        starts = [frames[i].item() - width for i in items]
        zw = torch.stack([z[i, s * hop : (s + width) * hop] for i, s in zip(items, starts, strict=True)])
        mw = torch.stack([mel[i, :, s : s + width] for i, s in zip(items, starts, strict=True)])
        out = run_inverse(model, zw, mw, cached=cached, dtype=dtype)
        keep = min(width, c) if aligned else width
        for row, (i, s) in enumerate(zip(items, starts, strict=True)):
            end = (s + width) * hop
            audio[i, end - keep * hop : end] = out[row, (width - keep) * hop :]

"""How far along time one sample of ``z`` or one mel frame can influence the synthesised audio.

WaveGlow and WaveFlow invert in parallel along time (WaveFlow is sequential only along the height of each
column), and every time-mixing operation is a convolution with a finite kernel: the non-causal dilated
width/time convolutions of the WaveNets, the squeeze into columns of ``n_group`` samples, and the
transposed convolutions of the mel upsampler. An output sample ``t`` therefore depends only on inputs in
``[t - R, t + R]``, with ``R`` bounded by summing every convolution's one-sided reach (the flows are
chained, so the reaches add up). Batched and streaming synthesis use this bound to be exact.
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["receptive_field", "context_frames"]

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _one_side(kernel: int, dilation: int) -> int:
    return math.ceil((kernel - 1) * dilation / 2)


def _flow_columns(flows: nn.Module) -> int:
    """Sum of the one-sided time reach (in squeezed columns) of every convolution in the flows."""
    total = 0
    for mod in flows.modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            total += _one_side(int(mod.kernel_size[-1]), int(mod.dilation[-1]))
    return total


def _upsampler_samples(upsampler: nn.Module) -> int:
    """A bound (in output samples) of the time reach of the transposed convolutions of the upsampler."""
    stages = [m for m in upsampler.modules() if isinstance(m, _TRANSPOSED)]
    reach, scale = 0, 1
    for stage in reversed(stages):  # the last stage works at the sample rate
        k, s = int(stage.kernel_size[-1]), int(stage.stride[-1])
        scale *= s
        reach += (math.ceil(k / s) + 1) * scale
    return reach


def receptive_field(model: nn.Module) -> int:
    """One-sided receptive field ``R`` in samples of a WaveGlow / WaveFlow model's inverse (a bound).

    Changing ``z`` at sample ``t`` or the mel frames around ``t`` can only change the audio within
    ``[t - R, t + R]``. Reads the model's ``flows``, ``upsampler`` and ``n_group``.
    """
    for name in ("flows", "upsampler", "n_group"):
        if not hasattr(model, name):
            raise ValueError(f"receptive_field: expected a model with .{name} (WaveGlow or WaveFlow)")
    g = int(model.n_group)
    return g * _flow_columns(model.flows) + g + _upsampler_samples(model.upsampler)


def context_frames(model: nn.Module) -> int:
    """:func:`receptive_field` rounded up to whole mel frames (``ceil(R / hop)``), and at least the mel
    context of the source-filter stages (the learned pitch predictor's
    :data:`~waveflow_py.sourcefilter.pitchnet.RECEPTIVE_FRAMES`)."""
    frames = -(-receptive_field(model) // int(model.hop_length))
    stages = stage_context_frames(model)
    return max(frames, stages + 1) if stages else frames


def stage_context_frames(model: nn.Module) -> int:
    """Mel frames either side of a sample that the source-filter stages read (``SourceFilter.mel_context``:
    0 for frame-wise stages; the learned pitch predictor's
    :data:`~waveflow_py.sourcefilter.pitchnet.RECEPTIVE_FRAMES`)."""
    return int(getattr(getattr(model, "source_filter", None), "mel_context", 0))

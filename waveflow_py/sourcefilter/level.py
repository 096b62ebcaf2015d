"""The excitation level, a sampling setting of envelope-prior models (``SamplingConfig.excitation_rms``):
each frame of the flows' output set to one RMS before the envelope filter."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["level_frames"]

# a frame whose mean square is below this (the flows' inverse gave silence) is left as it is
_SILENT_FRAME = 1e-12


def level_frames(excitation: Tensor, hop: int, rms: float) -> Tensor:
    """``excitation (B, T)`` with each frame of ``hop`` samples (the last one may be shorter) scaled to
    root-mean-square ``rms``; a frame of (near) zeros stays as it is. Frames are counted from sample 0,
    so a signal cut on frame boundaries gives the same frames piece by piece (streaming == offline).

    Why: the envelope priors (``gain``, ``lpc``) calibrate the excitation to unit variance, and the mel
    fixes each frame's envelope and energy; the flows add the fine structure. Their inverse can be a
    steep level amplifier, though (docs/quality-per-compute.md, section 10), so the frame energies it
    produces wander. This puts the frame energies back where the prior says they are and keeps each
    frame's shape.
    """
    b, t = excitation.shape
    if t == 0:
        return excitation
    full = t // hop * hop
    x = excitation.float()
    parts = []
    if full:
        frames = x[:, :full].reshape(b, full // hop, hop)
        parts.append(_scale_to(frames, rms).reshape(b, full))
    if full < t:
        parts.append(_scale_to(x[:, None, full:], rms)[:, 0])
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    return out.to(excitation.dtype)


def _scale_to(frames: Tensor, rms: float) -> Tensor:
    power = frames.square().mean(dim=-1, keepdim=True)
    gain = torch.where(power > _SILENT_FRAME, rms / power.clamp_min(_SILENT_FRAME).sqrt(), 1.0)
    return frames * gain

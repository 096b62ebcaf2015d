"""Measured error of low-precision synthesis (bfloat16 / float16) against float32 with the same noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from waveflow_py.inference.core import DEFAULT_TEMPERATURE, draw_noise
from waveflow_py.inference.synthesis import batch_mels, synthesize

__all__ = ["precision_error"]


@torch.no_grad()
def precision_error(
    model: nn.Module,
    mel: Tensor,
    dtype: torch.dtype = torch.bfloat16,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    generator: torch.Generator | None = None,
    cached: bool = True,
) -> dict[str, float]:
    """Synthesise ``mel`` (``(B, n_mels, F)``) in float32 and with the networks in ``dtype`` from the same
    noise; return ``max_abs`` (largest sample difference), ``rms_ref`` (RMS of the float32 audio),
    ``rel_rms`` (RMS difference / ``rms_ref``) and ``snr_db`` (``-20 log10 rel_rms``)."""
    if dtype not in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        raise ValueError(f"dtype: expected a floating dtype such as torch.bfloat16, got {dtype}")
    mel, lengths = batch_mels(mel, None)
    hop = int(model.hop_length)
    z = draw_noise(model, lengths * hop, mel.shape[-1] * hop, temperature, generator)
    ref, _ = synthesize(model, mel, z=z, cached=cached)
    low, _ = synthesize(model, mel, z=z, cached=cached, dtype=dtype)
    diff = (low - ref).double()
    rms_ref = float(ref.double().pow(2).mean().sqrt())
    rms_err = float(diff.pow(2).mean().sqrt())
    rel = rms_err / rms_ref if rms_ref > 0 else math.inf
    return {
        "max_abs": float(diff.abs().max()),
        "rms_ref": rms_ref,
        "rel_rms": rel,
        "snr_db": -20 * math.log10(rel) if rel > 0 else math.inf,
    }

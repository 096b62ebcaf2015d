"""Mel upsampler: 2-D transposed convolutions over the (frequency x time) plane with leaky ReLU, as in
ClariNet (Ping, Peng & Chen 2019) and WaveFlow (Ping et al. 2020, Appendix): hop 256 = 16 x 16.

``(B, n_mels, F) -> (B, n_mels, F * hop)``. Each stage with stride ``s`` uses kernel ``(3, 2 s)``,
padding ``(1, s // 2)`` and produces exactly ``F * s`` frames for even ``s`` (``F * s + 1`` for odd
``s``; the extra frame is trimmed). Weight-normed; leaky ReLU slope 0.4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.nn.weight_norm import wn

__all__ = ["MelUpsampler", "TransposedConv1dUpsampler", "factor_hop"]


def factor_hop(hop_length: int) -> list[int]:
    """Split ``hop_length`` into two balanced factors (256 -> [16, 16], 200 -> [10, 20],
    275 -> [11, 25]); a prime hop stays one stage."""
    if hop_length < 1:
        raise ValueError(f"hop_length must be >= 1, got {hop_length}")
    best = 1
    for d in range(1, math.isqrt(hop_length) + 1):
        if hop_length % d == 0:
            best = d
    scales = [best, hop_length // best]
    return [s for s in scales if s > 1] or [1]


class MelUpsampler(nn.Module):
    """Upsample a mel spectrogram ``(B, n_mels, F)`` to the sample rate ``(B, n_mels, F * prod(scales))``.

    Args:
        scales: time strides of the stages; their product is the hop length.
        leaky_slope: slope of the leaky ReLU after every stage.
    """

    def __init__(self, scales: Sequence[int], leaky_slope: float = 0.4) -> None:
        super().__init__()
        scales = [int(s) for s in scales]
        if not scales or min(scales) < 1:
            raise ValueError(f"upsample scales must be positive integers, got {scales}")
        self.scales = scales
        self.hop_length = math.prod(scales)
        self.leaky_slope = leaky_slope
        self.stages = nn.ModuleList(
            wn(
                nn.ConvTranspose2d(1, 1, (3, 2 * s), stride=(1, s), padding=(1, s // 2)),
                math.sqrt(1.0 / (3 * 2 * s)),
            )
            for s in scales
        )

    def forward(self, mel: Tensor) -> Tensor:
        frames = mel.shape[-1]
        x = mel.unsqueeze(1)
        for s, stage in zip(self.scales, self.stages, strict=True):
            n = x.shape[-1]
            x = F.leaky_relu(stage(x)[..., : n * s], self.leaky_slope)
        return x.squeeze(1)[..., : frames * self.hop_length]


class TransposedConv1dUpsampler(nn.Module):
    """NVIDIA WaveGlow's upsampler (Prenger et al. 2019, ``glow.py``): one
    ``ConvTranspose1d(n_mels, n_mels, kernel, stride=hop)`` over time (kernel ``4 * hop`` = 1024 there),
    no activation, no weight norm. ``(B, n_mels, F) -> (B, n_mels, F * hop)``: the first ``F * hop`` of
    the ``(F - 1) * hop + kernel`` outputs (NVIDIA trims the last ``kernel - hop`` the same way).
    """

    def __init__(self, channels: int, hop_length: int, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel = 4 * hop_length if kernel_size is None else int(kernel_size)
        if hop_length < 1 or kernel < hop_length:
            raise ValueError(f"expected hop_length >= 1 and kernel_size >= hop, got {hop_length}, {kernel}")
        self.hop_length = hop_length
        self.conv = nn.ConvTranspose1d(channels, channels, kernel, stride=hop_length)

    def forward(self, mel: Tensor) -> Tensor:
        return self.conv(mel)[..., : mel.shape[-1] * self.hop_length]

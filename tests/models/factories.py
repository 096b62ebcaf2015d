"""Tiny model configurations for tests (seconds on one CPU core)."""

from __future__ import annotations

from waveflow_py.config import MelConfig, WaveFlowConfig, mel_preset

__all__ = ["tiny_mel_config", "tiny_waveflow_config"]


def tiny_mel_config(n_mels: int = 8, hop_length: int = 16) -> MelConfig:
    """A consistent small mel front end: 16 kHz, 64-point FFT, ``hop_length`` 16, 8 bands."""
    return mel_preset("16k", n_mels=n_mels, hop_length=hop_length, n_fft=64, win_length=64)


def tiny_waveflow_config(
    h: int = 8,
    *,
    n_flows: int = 2,
    n_layers: int = 2,
    residual_channels: int = 8,
    height_dilations: list[int] | None = None,
    permutation: str = "bipartition",
    n_mels: int = 8,
    hop_length: int = 16,
    sigma: float = 1.0,
) -> WaveFlowConfig:
    """A WaveFlow small enough for float64 Jacobians and O(h^2) reference inverses."""
    return WaveFlowConfig(
        n_group=h,
        n_flows=n_flows,
        n_layers=n_layers,
        residual_channels=residual_channels,
        height_dilations=height_dilations,
        permutation=permutation,
        mel=tiny_mel_config(n_mels, hop_length),
        sigma=sigma,
    )

"""Tiny random WaveFlow / WaveGlow models for the inference tests (end convs perturbed away from zero so
the flows are not the identity)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from waveflow_py.config import MelConfig, WaveFlowConfig, WaveGlowConfig
from waveflow_py.models.waveflow import WaveFlow
from waveflow_py.models.waveglow import WaveGlow

MEL = dict(sample_rate=8000, n_fft=64, win_length=64, hop_length=16, n_mels=6, fmax=4000.0)


def _perturb(model: nn.Module, std: float = 0.3) -> nn.Module:
    with torch.no_grad():
        for name, mod in model.named_modules():
            if name.endswith("end_conv"):
                mod.weight.normal_(0.0, std)
                mod.bias.normal_(0.0, 0.1)
    return model.eval()


def tiny_waveflow(**over: object) -> WaveFlow:
    cfg = dict(n_group=4, n_flows=2, n_layers=2, residual_channels=8, mel=MelConfig(**MEL))
    cfg.update(over)
    return _perturb(WaveFlow(WaveFlowConfig(**cfg)))  # type: ignore[arg-type,return-value]


def tiny_waveglow(**over: object) -> WaveGlow:
    cfg = dict(
        n_flows=3,
        n_group=4,
        n_early_every=2,
        n_early_size=1,
        n_layers=2,
        residual_channels=8,
        mel=MelConfig(**MEL),
    )
    cfg.update(over)
    return _perturb(WaveGlow(WaveGlowConfig(**cfg)))  # type: ignore[arg-type,return-value]


@pytest.fixture(params=["waveflow", "waveglow"])
def tiny_model(request: pytest.FixtureRequest) -> nn.Module:
    return tiny_waveflow() if request.param == "waveflow" else tiny_waveglow()


@pytest.fixture
def factories() -> tuple:
    """``(tiny_waveflow, tiny_waveglow)`` factory functions."""
    return tiny_waveflow, tiny_waveglow


def close_to_peak(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-6) -> None:
    """Equal up to float32 rounding, relative to ``b``'s peak (an LPC envelope has a large gain)."""
    torch.testing.assert_close(a, b, rtol=0, atol=rel * float(b.abs().max()) + 1e-6)


def mel_and_noise(model: torch.nn.Module, frames: int, batch: int = 2, seed: int = 0) -> tuple:
    """A random ``(batch, 6, frames)`` mel and ``(batch, frames * hop)`` noise from one seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, 6, frames, generator=gen)
    return mel, torch.randn(batch, frames * model.hop_length, generator=gen)

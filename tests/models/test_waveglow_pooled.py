"""WaveGlow with SqueezeWave-style pooled conditioning (``condition="pooled"``): exact inverse, a much
smaller conditioning, and the same cached inverse."""

from __future__ import annotations

import torch

from waveflow_py.config import MelConfig, WaveGlowConfig
from waveflow_py.models import WaveGlow

MEL = MelConfig(sample_rate=8000, n_fft=256, hop_length=64, win_length=256, n_mels=8, fmax=4000.0)


def _model(condition: str) -> WaveGlow:
    torch.manual_seed(0)
    cfg = WaveGlowConfig(
        n_flows=4,
        n_group=16,
        n_early_every=2,
        n_early_size=4,
        n_layers=2,
        residual_channels=8,
        mel=MEL,
        condition=condition,
    )
    return WaveGlow(cfg).eval()


def test_pooled_condition_is_invertible_and_smaller() -> None:
    pooled, squeezed = _model("pooled"), _model("squeeze")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(pooled) < n(squeezed)
    x = 0.1 * torch.randn(2, 640)
    mel = torch.randn(2, MEL.n_mels, 10)
    with torch.no_grad():
        z, ld = pooled(x, mel)
        back, ld_inv = pooled.inverse(z, mel)
        cached, _ = pooled.inverse(z, mel, cache=pooled.fast_cache())
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached, back, atol=1e-5, rtol=0)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-3, rtol=1e-5)
    # the context is the upsampled mel averaged over each group of n_group samples
    cond = pooled._condition(mel, 640)
    up = pooled.upsampler(mel)[..., :640]
    torch.testing.assert_close(cond, up.reshape(2, MEL.n_mels, 40, 16).mean(-1))

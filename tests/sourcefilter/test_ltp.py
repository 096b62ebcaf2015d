"""The pitch (long-term prediction) flow, waveflow_py.sourcefilter.ltp: numba inverse == torch inverse == the
recursion written out, exact inverse, log-det, chunks with state == one pass, clamping, errors; and the
mel-derived lag and gain of waveflow_py.sourcefilter.periodicity. The flow contract runs in
test_contract.py."""

from __future__ import annotations

import math

import pytest
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import mel_preset
from waveflow_py.sourcefilter.base import numba_available
from waveflow_py.sourcefilter.ltp import LongTermPredictor, ltp_context
from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range

needs_numba = pytest.mark.skipif(not numba_available(), reason="numba not installed")

HOP, LO, HI = 8, 5, 30


def _problem(b: int = 2, t: int = 203, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    frames = -(-t // HOP)
    lag = torch.randint(LO, HI + 1, (b, frames), generator=gen).double()
    gain = 0.95 * torch.rand(b, frames, generator=gen, dtype=torch.float64)
    u = torch.randn(b, t, generator=gen, dtype=torch.float64)
    return u, ltp_context(lag, gain)


def reference_synthesis(u, ctx, taps, state=None):
    """The recursion one sample at a time (float64): e[n] = c u[n] + b sum_j h_j e[n - L + j - K]."""
    b, t = u.shape
    k = len(taps) // 2
    size = HI + k
    hist = torch.zeros(b, size + t, dtype=torch.float64)
    if state is not None:
        hist[:, :size] = state
    for n in range(t):
        f = n // HOP
        lag, g = ctx[:, f, 0].long(), ctx[:, f, 1]
        acc = torch.zeros(b, dtype=torch.float64)
        for j, h in enumerate(taps):
            acc = acc + h * hist[torch.arange(b), size + n - lag + j - k]
        hist[:, size + n] = torch.sqrt(1 - g * g) * u[:, n] + g * acc
    return hist[:, size:]


@pytest.mark.parametrize("taps", [(1.0,), (0.25, 0.5, 0.25), (0.1, 0.2, 0.4, 0.2, 0.1)])
@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
def test_synthesis_is_the_recursion_and_analysis_inverts_it(taps, backend) -> None:
    f = LongTermPredictor(HOP, LO, HI, taps=taps, backend=backend)
    u, ctx = _problem()
    with torch.no_grad():
        e, ld, state = f.synthesis(u, ctx)
    torch.testing.assert_close(e, reference_synthesis(u, ctx, taps), atol=1e-10, rtol=1e-10)
    u2, ld2, state2 = f.analysis(e, ctx)
    torch.testing.assert_close(u2, u, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ld + ld2, torch.zeros_like(ld), atol=1e-10, rtol=0)
    torch.testing.assert_close(state, e[:, -f.state_size :])
    torch.testing.assert_close(state2, state)
    # log|det de/du| = sum over samples of log sqrt(1 - b^2) of their segment
    g = ctx[..., 1].repeat_interleave(HOP, dim=1)[:, : u.shape[1]]
    torch.testing.assert_close(ld, (0.5 * torch.log1p(-g * g)).sum(1))


def test_logdet_matches_autograd_jacobian_and_torch_backend_differentiates() -> None:
    f = LongTermPredictor(HOP, LO, HI)
    u, ctx = _problem(b=1, t=70)
    x = u.clone().requires_grad_(True)
    e, ld, _ = f.synthesis(x, ctx)  # autograd: the torch backend
    e.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    jac = torch.autograd.functional.jacobian(lambda v: f.analysis(v.unsqueeze(0), ctx)[0][0], u[0])
    torch.testing.assert_close(f.analysis(u, ctx)[1][0], torch.linalg.slogdet(jac)[1], atol=1e-9, rtol=1e-9)
    assert bool(torch.all(torch.tril(jac, -1) == jac - torch.diag(torch.diagonal(jac))))  # lower-triangular


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
def test_chunks_with_state_equal_one_pass(backend) -> None:
    f = LongTermPredictor(HOP, LO, HI, backend=backend)
    u, ctx = _problem(t=240)
    with torch.no_grad():
        whole, ld, _ = f.synthesis(u, ctx)
        cut = 13 * HOP  # chunks start on a segment boundary; the second gets its own frames
        first, ld1, s1 = f.synthesis(u[:, :cut], ctx[:, :13])
        second, ld2, _ = f.synthesis(u[:, cut:], ctx[:, 13:], s1)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(ld1 + ld2, ld)
    a1, _, sa = f.analysis(whole[:, :cut], ctx[:, :13])
    a2, _, _ = f.analysis(whole[:, cut:], ctx[:, 13:], sa)
    torch.testing.assert_close(torch.cat([a1, a2], 1), u, atol=1e-10, rtol=1e-10)


def test_out_of_range_context_is_clamped_and_stays_invertible() -> None:
    f = LongTermPredictor(HOP, LO, HI)
    u, ctx = _problem()
    wild = ctx.clone()
    wild[:, ::2, 0] = 1000.0  # lags past max_lag
    wild[:, 1::2, 0] = -3.0  # and below min_lag
    wild[:, ::3, 1] = 7.0  # gains past 1
    wild[:, 1::3, 1] = -2.0
    with torch.no_grad():
        e, ld, _ = f.synthesis(u, wild)
    assert torch.isfinite(e).all() and torch.isfinite(ld).all()
    u2, ld2, _ = f.analysis(e, wild)
    torch.testing.assert_close(u2, u, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(ld + ld2, torch.zeros_like(ld), atol=1e-9, rtol=0)


def test_constructor_and_input_errors() -> None:
    for kwargs in ({"taps": (0.5, 0.5)}, {"taps": (0.3, 0.3, 0.3)}, {"backend": "cuda"}):
        with pytest.raises(ValueError):
            LongTermPredictor(HOP, LO, HI, **kwargs)
    with pytest.raises(ValueError, match="min_lag"):
        LongTermPredictor(HOP, 1, HI)  # taps reach one sample past the lag: the map would not be triangular
    f = LongTermPredictor(HOP, LO, HI)
    u, ctx = _problem()
    with pytest.raises(ValueError, match="state"):
        f.synthesis(u, ctx, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="cover"):
        f.analysis(u, ctx[:, :5])
    if numba_available():
        with pytest.raises(ValueError, match="autograd"):
            LongTermPredictor(HOP, LO, HI, backend="numba").synthesis(u.requires_grad_(True), ctx)


@pytest.mark.parametrize("taps", [(1.0,), (0.25, 0.5, 0.25)])
def test_ten_minutes_in_float32_stay_finite_and_invert(taps) -> None:
    f = LongTermPredictor(256, 40, 320, taps=taps)
    t = 600 * 16000
    gen = torch.Generator().manual_seed(3)
    frames = t // 256
    ctx = ltp_context(
        torch.randint(40, 321, (1, frames), generator=gen).float(), 0.95 * torch.ones(1, frames)
    )
    u = torch.randn(1, t, generator=gen)
    with torch.no_grad():
        e, _, _ = f.synthesis(u, ctx)
        u2, _, _ = f.analysis(e, ctx)
    assert torch.isfinite(e).all()
    assert float((u2 - u).abs().max()) < 1e-3
    power = float(e.square().mean())
    if len(taps) == 1:  # one tap: c = sqrt(1 - b^2) keeps the power of white input exactly (in expectation)
        assert power == pytest.approx(1.0, rel=0.1)
    else:  # the smoothing taps predict with less power: at b = 0.95 about a quarter (a flow learns the scale)
        assert 0.1 < power < 1.0


# ----------------------------------------------------------------------------- lag and gain from a mel
def test_lag_range_and_periodicity_errors() -> None:
    cfg = mel_preset("16k")
    assert lag_range(cfg) == (40, 320)
    assert lag_range(mel_preset("16k", n_fft=64, win_length=64)) == (31, 31)  # capped by the window
    with pytest.raises(ValueError, match="min_lag"):
        MelPeriodicity(cfg, 40, 600)
    with pytest.raises(ValueError, match="threshold"):
        MelPeriodicity(cfg, 40, 320, threshold=1.0)
    with pytest.raises(ValueError, match="NaN"):
        MelPeriodicity(cfg, 40, 320)(torch.full((1, 80, 4), float("nan")))


def test_periodicity_finds_the_period_of_a_pulse_train_and_not_of_noise() -> None:
    cfg = mel_preset("16k")
    sr, period = cfg.sample_rate, 128  # 125 Hz
    t = sr
    pulses = torch.zeros(1, t)
    pulses[0, ::period] = 1.0
    # a decaying resonance makes it speech-like (a formant near 700 Hz)
    n = torch.arange(400, dtype=torch.float32)
    ring = torch.exp(-n / 60.0) * torch.cos(2 * math.pi * 700 * n / sr)
    voiced = torch.nn.functional.conv1d(pulses[None], ring.flip(0)[None, None], padding=399)[0, :, :t]
    noise = torch.randn(1, t, generator=torch.Generator().manual_seed(0))
    mel = MelSpectrogram(cfg)(torch.cat([voiced / voiced.std(), noise]))
    per = MelPeriodicity(cfg, *lag_range(cfg), strength=1.0, threshold=0.3)
    lag, gain = per(mel, mel.shape[-1] - 1)
    mid = slice(5, -5)  # away from the edges of the signal
    assert torch.all((lag[0, mid] - period).abs() <= 2), lag[0, mid]
    assert float(gain[0, mid].mean()) > 0.5
    assert float(gain[1, mid].mean()) < 0.1

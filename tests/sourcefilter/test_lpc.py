"""Time-varying LPC flows (waveflow_py.sourcefilter.lpc): numba inverse == torch inverse == the recursion,
state carrying across chunks, pre-emphasis, fp32 on ten minutes of signal. The flow contract itself
runs in tests/sourcefilter/test_contract.py."""

from __future__ import annotations

import pytest
import scipy.signal
import torch

from waveflow_py.sourcefilter import base as base_mod
from waveflow_py.sourcefilter import lpc as lpc_mod
from waveflow_py.sourcefilter.base import numba_available
from waveflow_py.sourcefilter.lpc import (
    FrameGain,
    LPCFilter,
    PreEmphasis,
    lpc_context,
    lpc_synthesize,
    lpc_whiten,
)

needs_numba = pytest.mark.skipif(not numba_available(), reason="numba not installed")


def stable_coefficients(b: int, frames: int, p: int, kmax: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Random minimum-phase predictors ``(b, frames, p)`` from reflection coefficients (step-up) that
    drift slowly from frame to frame, as speech envelopes do (``|k| < kmax``). Switching every frame
    between unrelated resonant filters is not stable in general, whatever each frame's poles."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, frames, p, generator=gen, dtype=torch.float64).numpy()
    drift = scipy.signal.lfilter([0.1], [1.0, -0.995], noise, axis=1)  # slow AR(1) walk, std ~0.7
    u0 = torch.randn(b, 1, p, generator=gen, dtype=torch.float64)
    k = kmax * torch.tanh(u0 + torch.from_numpy(drift))
    a = torch.zeros(b, frames, 0, dtype=torch.float64)
    for i in range(p):
        ki = k[..., i : i + 1]
        a = torch.cat([a - ki * a.flip(-1), ki], dim=-1)
    return a


def reference_synthesis(e, a, log_gain, hop, state=None):
    """The all-pole recursion, one sample at a time (float64)."""
    b, t = e.shape
    p = a.shape[-1]
    hist = torch.zeros(b, p + t, dtype=torch.float64)
    if state is not None:
        hist[:, :p] = state.double()
    for n in range(t):
        f = n // hop
        acc = torch.exp(log_gain[:, f].double()) * e[:, n].double()
        for k in range(1, p + 1):
            acc = acc + a[:, f, k - 1].double() * hist[:, p + n - k]
        hist[:, p + n] = acc
    return hist[:, p:]


def _problem(b=2, t=203, hop=16, p=6, seed=0):
    frames = -(-t // hop)
    gen = torch.Generator().manual_seed(seed + 100)
    a = stable_coefficients(b, frames, p, seed=seed)
    log_gain = 0.5 * torch.randn(b, frames, generator=gen, dtype=torch.float64)
    e = torch.randn(b, t, generator=gen, dtype=torch.float64)
    state = torch.randn(b, p, generator=gen, dtype=torch.float64)
    return e, a, log_gain, state


@pytest.mark.parametrize("hop,p", [(16, 6), (4, 6), (64, 16), (200, 3)])  # hop < p and sub-blocks too
@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
def test_synthesis_backends_equal_the_recursion(hop: int, p: int, backend: str) -> None:
    e, a, lg, state = _problem(t=7 * hop + 3, hop=hop, p=p)
    want = reference_synthesis(e, a, lg, hop, state)
    x, ld, new_state = lpc_synthesize(e, a, lg, hop, state, backend=backend)
    torch.testing.assert_close(x, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(new_state, want[:, -p:])
    counts = torch.tensor([min(hop, e.shape[1] - f * hop) for f in range(lg.shape[1])], dtype=lg.dtype)
    torch.testing.assert_close(ld, (lg * counts).sum(1))
    # and the analysis undoes it, from the same state
    e_back, ld_back, st = lpc_whiten(x, a, lg, hop, state)
    torch.testing.assert_close(e_back, e, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ld_back, -ld)
    torch.testing.assert_close(st, x[:, -p:])


@needs_numba
def test_numba_equals_torch_in_float32() -> None:
    e, a, lg, state = _problem(b=3, t=4000, hop=160, p=16)
    args = (e.float(), a.float(), lg.float(), 160, state.float())
    x_numba = lpc_synthesize(*args, backend="numba")[0]
    x_torch = lpc_synthesize(*args, backend="torch")[0]
    want = lpc_synthesize(e, a, lg, 160, state, backend="numba")[0]
    assert x_numba.dtype == x_torch.dtype == torch.float32
    scale = want.abs().max()
    assert (x_numba.double() - want).abs().max() < 1e-5 * scale
    assert (x_torch.double() - want).abs().max() < 1e-4 * scale


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
def test_two_chunks_with_state_equal_one_pass(backend: str) -> None:
    hop, p = 16, 8
    e, a, lg, state = _problem(t=20 * hop, hop=hop, p=p)
    x, ld, s_end = lpc_synthesize(e, a, lg, hop, state, backend=backend)
    cut = 7 * hop  # chunks start on a segment boundary
    x1, ld1, s1 = lpc_synthesize(e[:, :cut], a[:, :7], lg[:, :7], hop, state, backend=backend)
    x2, ld2, s2 = lpc_synthesize(e[:, cut:], a[:, 7:], lg[:, 7:], hop, s1, backend=backend)
    torch.testing.assert_close(torch.cat([x1, x2], 1), x, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(ld1 + ld2, ld)
    torch.testing.assert_close(s2, s_end)
    # analysis carries its state the same way
    y, _, _ = lpc_whiten(x, a, lg, hop, state)
    y1, _, t1 = lpc_whiten(x[:, :cut], a[:, :7], lg[:, :7], hop, state)
    y2, _, _ = lpc_whiten(x[:, cut:], a[:, 7:], lg[:, 7:], hop, t1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)


def test_torch_backend_is_used_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    e, a, lg, state = _problem()
    called = []
    monkeypatch.setattr(base_mod, "numba_available", lambda: False)
    monkeypatch.setattr(lpc_mod, "run_compiled", lambda *args: called.append(1))
    x, _, _ = lpc_synthesize(e, a, lg, 16, state)
    assert not called
    torch.testing.assert_close(x, reference_synthesis(e, a, lg, 16, state))


def test_torch_backend_is_differentiable_and_numba_refuses_autograd() -> None:
    e, a, lg, _ = _problem(t=64)
    e.requires_grad_(True)
    x, _, _ = lpc_synthesize(e, a, lg, 16)  # auto: autograd needed -> torch
    x.square().sum().backward()
    assert e.grad is not None and bool(torch.isfinite(e.grad).all())
    with pytest.raises(ValueError, match="autograd"):
        lpc_synthesize(e, a, lg, 16, backend="numba")
    with pytest.raises(ValueError, match="backend"):
        lpc_synthesize(e, a, lg, 16, backend="cuda")


@pytest.mark.parametrize(
    "backend,minutes",
    [
        pytest.param("numba", 10, marks=needs_numba),
        ("torch", 1),
        pytest.param("torch", 10, marks=pytest.mark.slow),  # ~25 s on one CPU core
    ],
)
def test_ten_minutes_in_float32_do_not_blow_up(backend: str, minutes: int) -> None:
    """10 min at 16 kHz, p = 16, coefficients changing every hop: synthesis stays bounded and the
    analysis recovers the excitation."""
    hop, p = 256, 16
    t = 16000 * 60 * minutes
    frames = t // hop
    a = stable_coefficients(1, frames, p, kmax=0.7, seed=3).float()  # poles up to radius ~0.9999
    lg = torch.full((1, frames), -3.0)
    e = torch.randn(1, t, generator=torch.Generator().manual_seed(4))
    x, _, _ = lpc_synthesize(e, a, lg, hop, backend=backend)
    assert bool(torch.isfinite(x).all())
    assert float(x.abs().max()) < 1e3
    e_back, _, _ = lpc_whiten(x, a, lg, hop)
    err = (e_back - e).abs()
    # numba accumulates in float64 (measured max 2.4e-4 over 1 min); the torch path solves its sub-blocks
    # in float32 (max 1.0e-2 to 1.2e-2 over 1 min on an AVX2 CPU, under 1e-2 on an AVX-512 one; mean
    # 1.2e-5), and the whitening multiplies the synthesis rounding by 1/g = e^3
    assert float(err.max()) < (1e-3 if backend == "numba" else 3e-2)
    assert float(err.mean()) < 1e-4


def test_transform_context_and_state_checks() -> None:
    t = LPCFilter(3, 4)
    a, lg = stable_coefficients(2, 3, 3).float(), torch.zeros(2, 3)
    ctx = lpc_context(a, lg)
    assert ctx.shape == (2, 3, 4)
    x = torch.randn(2, 12)
    e, ld, state = t.analysis(x, ctx)
    assert state.shape == (2, 3)
    torch.testing.assert_close(t.synthesis(e, ctx)[0], x, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cover fewer"):
        t(torch.randn(2, 13), ctx)
    with pytest.raises(ValueError, match="size 4"):
        t(x, ctx[..., :3])
    with pytest.raises(ValueError, match="state"):
        t.analysis(x, ctx, torch.zeros(2, 2))
    with pytest.raises(ValueError):
        LPCFilter(-1, 4)
    g = FrameGain(4)
    y, ld = g(x, lg.unsqueeze(-1) + 1.0)
    torch.testing.assert_close(y, x / torch.e)
    torch.testing.assert_close(ld, torch.full((2,), -12.0))


def test_preemphasis_formula_inverse_and_state() -> None:
    pe = PreEmphasis(0.9, hop=8)
    x = torch.randn(2, 50, dtype=torch.float64)
    y, ld = pe(x)
    want = x.clone()
    want[:, 1:] -= 0.9 * x[:, :-1]
    torch.testing.assert_close(y, want)
    assert ld.shape == (2,) and not bool(ld.any())
    torch.testing.assert_close(pe.inverse(y)[0], x)
    x1, _, s1 = pe.synthesis(y[:, :21])
    x2, _, _ = pe.synthesis(y[:, 21:], state=s1)
    torch.testing.assert_close(torch.cat([x1, x2], 1), x)
    with pytest.raises(ValueError):
        PreEmphasis(1.0)
    with pytest.raises(ValueError):
        pe(x, torch.zeros(2, 3, dtype=torch.float64))  # takes no context
    with pytest.raises(ValueError):
        pe(x[0])  # rank 1
    with pytest.raises(ValueError):
        pe(x.clone().fill_(float("nan")))

"""Time-varying linear prediction as an exact flow: whitening (analysis) and all-pole synthesis.

A signal ``x (B, T)`` is cut into segments of ``hop`` samples; segment ``f`` (samples
``f*hop .. (f+1)*hop - 1``) has predictor coefficients ``a[:, f] (p,)`` and a log-gain ``log g[:, f]``:

* analysis (``forward``, used in training, parallel over time):
  ``e[n] = (x[n] - sum_{k=1..p} a_k x[n-k]) / g``;
* synthesis (``inverse``): the all-pole recursion ``x[n] = g e[n] + sum_k a_k x[n-k]``;
* ``log|det de/dx| = -sum_n log g`` (the map is triangular with diagonal ``1/g``).

Linear prediction as in Makhoul (1975), "Linear prediction: a tutorial review", Proc. IEEE 63(4).
Samples before the signal come from an optional ``state (B, p)`` (the last ``p`` samples of ``x``
before the segment, oldest first; zeros when ``None``); both directions return the final state, so a
long signal can be processed in chunks. The transform is audio-agnostic: the coefficients come in as
the context, packed by :func:`lpc_context` into ``(B, F, 1 + p)`` (``[..., 0]`` log-gain, ``[..., 1:]``
``a``), ``F * hop >= T``; extra frames are ignored.

Synthesis backends (:mod:`waveflow_py.sourcefilter.base`): ``"numba"`` (the per-sample loop) and
``"torch"`` (GPU-friendly and differentiable: per segment, one batched unit-triangular solve (in
sub-blocks of at most 64 samples) gives the zero-state response and the response to the incoming state;
the state is carried across sub-blocks by a parallel (Hillis-Steele) scan of the affine state maps in
float64, in blocks of segments so memory is bounded by a block). Both accumulate in at least float32
(numba: float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from waveflow_py.flows.base import check_tensor
from waveflow_py.sourcefilter.base import (
    FilterFlow,
    initial_state,
    pick_backend,
    run_compiled,
    segment_counts,
    work_dtype,
)

__all__ = [
    "LPCFilter",
    "FrameGain",
    "PreEmphasis",
    "lpc_context",
    "lpc_whiten",
    "lpc_synthesize",
]

_BLOCK_ELEMENTS = 1 << 22  # torch synthesis: matrix elements per block of segments (bounds memory)
_SUB_BLOCK = 64  # torch synthesis: segments are solved in sub-blocks of at most this many samples


def lpc_context(a: Tensor, log_gain: Tensor) -> Tensor:
    """Pack coefficients ``a (B, F, p)`` and log-gains ``(B, F)`` into one context ``(B, F, 1 + p)``."""
    check_tensor(a, name="a", ndims=(3,))
    check_tensor(log_gain, name="log_gain", ndims=(2,), dim_sizes={0: a.shape[0], 1: a.shape[1]})
    return torch.cat([log_gain.unsqueeze(-1), a.to(log_gain.dtype)], dim=-1)


# ----------------------------------------------------------------------------- analysis (whitening)
def lpc_whiten(
    x: Tensor, a: Tensor, log_gain: Tensor, hop: int, state: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Analysis ``x (B, T) -> (e (B, T), log|de/dx| (B,), state (B, p))``, parallel over time.

    Memory is ``O(T (hop + p) / hop)``: the signal is framed (``unfold``) into overlapping windows of
    ``hop + p`` samples, and each of the ``p`` lags is one shifted slice times a per-segment coefficient.
    """
    b, t = x.shape
    p = a.shape[-1]
    frames = -(-t // hop)
    work = work_dtype(x)
    xw = x.to(work)
    s0 = initial_state(state, xw, p)
    xp = torch.cat([s0, xw, xw.new_zeros(b, frames * hop - t)], dim=1)  # (B, p + F*hop)
    win = xp.unfold(1, hop + p, hop)  # (B, F, hop + p): window f = samples f*hop - p .. (f+1)*hop - 1
    coef = a[:, :frames].to(work)
    res = win[:, :, p:]
    for k in range(1, p + 1):
        res = res - coef[:, :, k - 1 : k] * win[:, :, p - k : p - k + hop]
    lg = log_gain[:, :frames].to(work)
    e = (res * torch.exp(-lg).unsqueeze(-1)).reshape(b, frames * hop)[:, :t]
    logdet = -(lg * segment_counts(t, frames, hop, lg)).sum(dim=1)
    new_state = xp[:, t : t + p]
    return e.to(x.dtype), logdet.to(x.dtype), new_state.to(x.dtype)


# ----------------------------------------------------------------------------- synthesis: torch form
def _affine_scan(m: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Inclusive scan of affine maps ``s -> M_f s + c_f`` along dim 1 (Hillis & Steele 1986).

    ``m (B, F, p, p)``, ``c (B, F, p)`` -> the compositions of maps ``0..f`` (same shapes).
    """
    d, frames = 1, m.shape[1]
    while d < frames:
        m_new = m[:, d:] @ m[:, :-d]
        c_new = (m[:, d:] @ c[:, :-d].unsqueeze(-1)).squeeze(-1) + c[:, d:]
        m = torch.cat([m[:, :d], m_new], dim=1)
        c = torch.cat([c[:, :d], c_new], dim=1)
        d *= 2
    return m, c


def _synth_block(e: Tensor, a: Tensor, gain: Tensor, s0: Tensor, hop: int) -> tuple[Tensor, Tensor]:
    """All-pole synthesis of whole segments: ``e (B, F*hop), a (B, F, p), gain (B, F), s0 (B, p)``.

    Returns ``x (B, F*hop)`` and the state ``(B, p)`` after the block.
    """
    b, frames, p = a.shape
    n = b * frames
    dev, dt = e.device, e.dtype
    # D (n, hop, p + hop) on [state; x] of the segment: D[i, p + i - k] = -a_k (k >= 1), D[i, p + i] = 1
    lag = p + torch.arange(hop, device=dev)[:, None] - torch.arange(p + hop, device=dev)[None, :]
    valid = (lag >= 0) & (lag <= p)
    coefs = torch.cat([a.new_ones(b, frames, 1), -a], dim=-1).reshape(n, p + 1)
    d = coefs[:, lag.clamp(0, p)] * valid.to(dt)
    rhs = torch.cat([(gain.unsqueeze(-1) * e.reshape(b, frames, hop)).reshape(n, hop, 1), -d[:, :, :p]], -1)
    sol = torch.linalg.solve_triangular(d[:, :, p:], rhs, upper=False, unitriangular=True)
    y0 = sol[..., 0].reshape(b, frames, hop)  # zero-state response
    h = sol[..., 1:].reshape(b, frames, hop, p)  # response to the incoming state
    eye = torch.eye(p, device=dev, dtype=dt).expand(b, frames, p, p)
    m = torch.cat([eye, h], dim=2)[:, :, -p:]  # state map: s_f = m_f s_{f-1} + c_f
    c = torch.cat([y0.new_zeros(b, frames, p), y0], dim=2)[:, :, -p:]
    # the scan composes up to thousands of near-unit-norm state maps: float64 keeps it exact enough
    m_all, c_all = _affine_scan(m.double(), c.double())
    s = (m_all @ s0.double()[:, None, :, None]).squeeze(-1) + c_all  # (B, F, p): state after each segment
    s_prev = torch.cat([s0.double().unsqueeze(1), s[:, :-1]], dim=1)
    x = y0 + (h.double() @ s_prev.unsqueeze(-1)).squeeze(-1).to(dt)
    return x.reshape(b, frames * hop), s[:, -1].to(dt)


def _sub_block(hop: int) -> int:
    """The largest divisor of ``hop`` that is at most :data:`_SUB_BLOCK` (solve size vs scan length)."""
    return max(d for d in range(1, min(hop, _SUB_BLOCK) + 1) if hop % d == 0)


def _synthesize_torch(e: Tensor, a: Tensor, gain: Tensor, s0: Tensor, hop: int) -> Tensor:
    """``x (B, T)`` by blocks of segments (memory bounded by :data:`_BLOCK_ELEMENTS`); each segment is
    solved in sub-blocks of :func:`_sub_block` samples (the same coefficients)."""
    b, t = e.shape
    p = a.shape[-1]
    frames = -(-t // hop)
    ep = torch.cat([e, e.new_zeros(b, frames * hop - t)], dim=1)
    if p == 0:
        return (ep.reshape(b, frames, hop) * gain[:, :frames, None]).reshape(b, -1)[:, :t]
    sub = _sub_block(hop)
    if sub < hop:
        a, gain = a.repeat_interleave(hop // sub, dim=1), gain.repeat_interleave(hop // sub, dim=1)
        frames, hop = frames * (hop // sub), sub
    per_block = max(1, _BLOCK_ELEMENTS // (b * hop * (hop + 2 * p + 1)))
    out, s = [], s0
    for f0 in range(0, frames, per_block):
        f1 = min(frames, f0 + per_block)
        x, s = _synth_block(ep[:, f0 * hop : f1 * hop], a[:, f0:f1], gain[:, f0:f1], s, hop)
        out.append(x)
    return torch.cat(out, dim=1)[:, :t]


# ----------------------------------------------------------------------------- synthesis: numba loop
def _allpole_loop(e: Any, a: Any, gain: Any, hop: int, state: Any, out: Any) -> None:  # pragma: no cover
    """Reference recursion (compiled by numba): ``out[b, n] = g e[b, n] + sum_k a_k out[b, n - k]``.

    ``state (B, p)`` float64 holds the samples before the signal on entry and after it on return.
    """
    nb, t = e.shape
    p = a.shape[2]
    hist = np.empty(p + t, dtype=np.float64)
    for bi in range(nb):
        for j in range(p):
            hist[j] = state[bi, j]
        for n in range(t):
            f = n // hop
            acc = gain[bi, f] * e[bi, n]
            for k in range(1, p + 1):
                acc += a[bi, f, k - 1] * hist[p + n - k]
            hist[p + n] = acc
            out[bi, n] = acc
        for j in range(p):
            state[bi, j] = hist[t + j]


def lpc_synthesize(
    e: Tensor,
    a: Tensor,
    log_gain: Tensor,
    hop: int,
    state: Tensor | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Synthesis ``e (B, T) -> (x (B, T), log|dx/de| (B,), state (B, p))``, the inverse of
    :func:`lpc_whiten`. ``backend``: ``"auto"``, ``"numba"`` (CPU, no autograd) or ``"torch"``."""
    b, t = e.shape
    p = a.shape[-1]
    frames = -(-t // hop)
    work = work_dtype(e)
    ew = e.to(work)
    lg = log_gain[:, :frames].to(work)
    coef = a[:, :frames].to(work)
    s0 = initial_state(state, ew, p)
    if pick_backend(backend, ew, (e, a, log_gain, s0)) == "numba":
        x, _ = run_compiled(_allpole_loop, ew, s0, coef, torch.exp(lg), int(hop))
    else:
        x = _synthesize_torch(ew, coef, torch.exp(lg), s0, hop)
    logdet = (lg * segment_counts(t, frames, hop, lg)).sum(dim=1)
    new_state = torch.cat([s0, x], dim=1)[:, t:]
    return x.to(e.dtype), logdet.to(e.dtype), new_state.to(e.dtype)


# ----------------------------------------------------------------------------- transforms
class LPCFilter(FilterFlow):
    """Time-varying LPC whitening ``x (B, T) -> e (B, T)`` conditioned on per-segment coefficients.

    Args:
        order: prediction order ``p`` (``0``: a per-segment gain only, see :class:`FrameGain`).
        hop: samples per segment (the mel hop).
        backend: synthesis backend (``"auto"``, ``"numba"``, ``"torch"``).

    Context: ``(B, F, 1 + p)`` from :func:`lpc_context` (log-gain, then ``a_1..a_p``), ``F * hop >= T``.
    ``forward``/``inverse`` follow the flow contract (zero initial state); :meth:`analysis` and
    :meth:`synthesis` also take and return the filter ``state (B, p)`` for chunked processing.
    """

    def __init__(self, order: int, hop: int, backend: str = "auto") -> None:
        if order < 0 or hop < 1:
            raise ValueError(f"LPCFilter: expected order >= 0 and hop >= 1, got {order}, {hop}")
        super().__init__(hop, backend, context_width=1 + order)
        self.order = order

    @property
    def state_size(self) -> int:
        return self.order

    def extra_repr(self) -> str:
        return f"order={self.order}, hop={self.hop}, backend={self.backend!r}"

    def analysis(
        self, x: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, T) -> (e (B, T), log|de/dx| (B,), state (B, p))``."""
        ctx = self._check(x, context, state, "x")
        assert ctx is not None
        return lpc_whiten(x, ctx[..., 1:], ctx[..., 0], self.hop, state)

    def synthesis(
        self, e: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``e (B, T) -> (x (B, T), log|dx/de| (B,), state (B, p))``."""
        ctx = self._check(e, context, state, "e")
        assert ctx is not None
        return lpc_synthesize(e, ctx[..., 1:], ctx[..., 0], self.hop, state, self.backend)


class FrameGain(LPCFilter):
    """Per-segment gain only: ``e[n] = x[n] / g`` (:class:`LPCFilter` of order 0, context ``(B, F, 1)``)."""

    def __init__(self, hop: int) -> None:
        super().__init__(0, hop)


class PreEmphasis(FilterFlow):
    """Pre-emphasis ``y[n] = x[n] - alpha x[n-1]`` (``log|det| = 0``); inverse: de-emphasis.

    ``x (B, T) <-> y (B, T)``; no context. :meth:`analysis` / :meth:`synthesis` take and return the
    ``state (B, 1)`` (the last sample of ``x`` before the chunk). De-emphasis runs through the same
    all-pole synthesis as :class:`LPCFilter` (order 1, unit gain).
    """

    def __init__(self, alpha: float, hop: int = 256, backend: str = "auto") -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"PreEmphasis: expected 0 <= alpha < 1, got {alpha}")
        super().__init__(hop, backend)
        self.alpha = float(alpha)

    @property
    def state_size(self) -> int:
        return 1

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def _coefs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        frames = -(-x.shape[1] // self.hop)
        work = work_dtype(x)
        a = torch.full((1, 1, 1), self.alpha, device=x.device, dtype=work).expand(x.shape[0], frames, 1)
        return a, torch.zeros((1, 1), device=x.device, dtype=work).expand(x.shape[0], frames)

    def analysis(
        self, x: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, T) -> (y (B, T), zeros (B,), state (B, 1))``."""
        self._check(x, context, state, "x")
        a, lg = self._coefs(x)
        return lpc_whiten(x, a, lg, self.hop, state)

    def synthesis(
        self, y: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``y (B, T) -> (x (B, T), zeros (B,), state (B, 1))``."""
        self._check(y, context, state, "y")
        a, lg = self._coefs(y)
        return lpc_synthesize(y, a, lg, self.hop, state, self.backend)

"""Time-varying long-term (pitch) prediction as an exact flow: whitening and its recursive inverse.

A signal ``e (B, T)`` (e.g. an LPC excitation) is cut into segments of ``hop`` samples; segment ``f``
has a lag ``L_f`` (samples, ``min_lag <= L_f <= max_lag``) and a gain ``0 <= b_f < 1``. With the
smoothing taps ``h_{-K..K}`` (``sum h = 1``; a short symmetric low-pass, so a lag one or two samples
off still predicts the low harmonics, as in the multi-tap pitch predictors of CELP coders):

* analysis (``forward``, parallel over time): ``u[n] = (e[n] - b sum_j h_j e[n - L + j]) / c``,
  ``c = sqrt(1 - b^2)`` (with one tap, synthesis from white ``u`` keeps its power; the smoothing taps
  predict with less, so at ``b = 0.95`` the default taps give about a quarter of it: a flow trained on
  ``u`` learns that scale);
* synthesis (``inverse``): ``e[n] = c u[n] + b sum_j h_j e[n - L + j]``, a recursion over the signal;
* ``log|det du/de| = -sum_n log c`` (triangular: ``L - K >= 1``, so ``u[n]`` depends on ``e[n]``
  with weight ``1/c`` and otherwise only on the past).

Long-term prediction as in Atal & Schroeder (1979), "Predictive coding of speech signals and subjective
error criteria", and the multi-tap pitch predictors of CELP coders (Kroon & Atal 1990, "Pitch
predictors with high temporal resolution"). The context is ``(B, F, 2)``:
``[..., 0]`` the lag (a float holding an integer), ``[..., 1]`` the gain; ``F * hop >= T``. Samples
before the signal come from ``state (B, max_lag + K)`` (the last samples of ``e``, oldest first; zeros
when ``None``); both directions return the state after the signal, so chunks chain exactly.

Synthesis backends (:mod:`waveflow_py.sourcefilter.base`): ``"numba"`` (the per-sample loop) and
``"torch"`` (differentiable, GPU-friendly: blocks of ``min_lag - K`` samples at once, since every sample
of a block depends only on samples before it).
"""

from __future__ import annotations

from collections.abc import Sequence
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

__all__ = ["LongTermPredictor", "ltp_context", "DEFAULT_TAPS"]

DEFAULT_TAPS = (0.25, 0.5, 0.25)


def ltp_context(lag: Tensor, gain: Tensor) -> Tensor:
    """Pack per-segment lags ``(B, F)`` and gains ``(B, F)`` into one context ``(B, F, 2)``."""
    check_tensor(gain, name="gain", ndims=(2,))
    check_tensor(lag, name="lag", ndims=(2,), dim_sizes={0: gain.shape[0], 1: gain.shape[1]})
    return torch.stack([lag.to(gain.dtype), gain], dim=-1)


def _per_sample(v: Tensor, t: int, hop: int) -> Tensor:
    """Per-segment values ``(B, F)`` -> per-sample ``(B, t)``."""
    return v.repeat_interleave(hop, dim=1)[:, :t]


def _ltp_loop(  # pragma: no cover
    u: Any, lag: Any, gain: Any, taps: Any, hop: int, state: Any, out: Any
) -> None:
    """Reference recursion (compiled by numba): ``out[b, n] = c u[b, n] + b sum_j h_j out[b, n - L + j]``.

    ``state (B, S)`` float64 holds the ``S`` samples before the signal on entry and after it on return.
    """
    nb, t = u.shape
    s = state.shape[1]
    nt = taps.shape[0]
    k = nt // 2
    hist = np.empty(s + t, dtype=np.float64)
    for bi in range(nb):
        for j in range(s):
            hist[j] = state[bi, j]
        for n in range(t):
            f = n // hop
            g = gain[bi, f]
            base = s + n - int(lag[bi, f]) - k
            acc = 0.0
            for j in range(nt):
                acc += taps[j] * hist[base + j]
            v = np.sqrt(1.0 - g * g) * u[bi, n] + g * acc
            hist[s + n] = v
            out[bi, n] = v
        for j in range(s):
            state[bi, j] = hist[t + j]


class LongTermPredictor(FilterFlow):
    """Time-varying long-term (pitch) prediction ``e (B, T) -> u (B, T)`` (see the module docstring).

    Args:
        hop: samples per segment.
        min_lag, max_lag: the lag range (``min_lag > K``, the half-length of ``taps``).
        taps: the smoothing taps (odd length, symmetric or not, summing to 1).
        backend: synthesis backend (``"auto"``, ``"numba"``, ``"torch"``).

    Context ``(B, F, 2)`` from :func:`ltp_context`. Lags are clamped to ``[min_lag, max_lag]`` and gains
    to ``[0, 0.999]``, so any context gives an invertible map with a finite log-det.
    """

    def __init__(
        self,
        hop: int,
        min_lag: int,
        max_lag: int,
        taps: Sequence[float] = DEFAULT_TAPS,
        backend: str = "auto",
    ) -> None:
        taps = [float(v) for v in taps]
        k = len(taps) // 2
        if hop < 1 or len(taps) % 2 != 1 or min_lag <= k or max_lag < min_lag:
            raise ValueError(
                f"LongTermPredictor: expected hop >= 1, an odd number of taps and "
                f"{k} < min_lag <= max_lag, got hop {hop}, {len(taps)} taps, lags {min_lag}..{max_lag}"
            )
        if abs(sum(taps) - 1.0) > 1e-6:
            raise ValueError(f"LongTermPredictor: taps must sum to 1, got {taps} (sum {sum(taps)})")
        super().__init__(hop, backend, context_width=2)
        self.min_lag, self.max_lag, self.taps, self.half = min_lag, max_lag, taps, k

    @property
    def state_size(self) -> int:
        """Samples of history the filter reads: ``max_lag + K``."""
        return self.max_lag + self.half

    def extra_repr(self) -> str:
        return f"hop={self.hop}, lags={self.min_lag}..{self.max_lag}, taps={self.taps}"

    # ------------------------------------------------------------------ helpers
    def _prepare(
        self, x: Tensor, context: Tensor | None, state: Tensor | None, what: str
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Checked ``(context, x in the work dtype, lag (B, F) long, gain (B, F), state)`` for either
        direction; lags and gains clamped to their ranges, the state zeros when ``None``."""
        ctx = self._check(x, context, state, what)
        assert ctx is not None
        work = work_dtype(x)
        xw = x.to(work)
        frames = -(-x.shape[1] // self.hop)
        lag = ctx[:, :frames, 0].round().clamp(self.min_lag, self.max_lag).long()
        gain = ctx[:, :frames, 1].to(work).clamp(0.0, 0.999)
        return ctx, xw, lag, gain, initial_state(state, xw, self.state_size)

    def _logdet(self, gain: Tensor, t: int) -> Tensor:
        """``sum_n log c`` over the ``t`` samples (per segment: ``log c`` times its sample count)."""
        counts = segment_counts(t, gain.shape[1], self.hop, gain)
        return (0.5 * torch.log1p(-gain.square()) * counts).sum(dim=1)

    def _prediction(self, hist: Tensor, lag: Tensor, offset: Tensor) -> Tensor:
        """``sum_j h_j hist[offset - L + j - K]`` (``offset``, ``lag``: per-sample ``(B, n)``)."""
        idx = offset - lag - self.half
        pred = None
        for j, h in enumerate(self.taps):
            term = h * torch.gather(hist, 1, idx + j)
            pred = term if pred is None else pred + term
        assert pred is not None
        return pred

    # ------------------------------------------------------------------ the two directions
    def analysis(
        self, e: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``e (B, T) -> (u (B, T), log|du/de| (B,), state (B, max_lag + K))``, parallel over time."""
        ctx, ew, lag, gain, s0 = self._prepare(e, context, state, "e")
        b, t = e.shape
        hist = torch.cat([s0, ew], dim=1)
        offset = torch.arange(t, device=e.device).expand(b, t) + self.state_size
        g = _per_sample(gain, t, self.hop)
        pred = self._prediction(hist, _per_sample(lag, t, self.hop), offset)
        u = (ew - g * pred) * torch.rsqrt(1.0 - g.square())
        new_state = hist[:, t:]
        return u.to(e.dtype), (-self._logdet(gain, t)).to(e.dtype), new_state.to(e.dtype)

    def synthesis(
        self, u: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``u (B, T) -> (e (B, T), log|de/du| (B,), state (B, max_lag + K))``: the recursion."""
        ctx, uw, lag, gain, s0 = self._prepare(u, context, state, "u")
        t = u.shape[1]
        if pick_backend(self.backend, uw, (u, ctx, s0)) == "numba":
            taps = np.asarray(self.taps, dtype=np.float64)
            e, new_state = run_compiled(_ltp_loop, uw, s0, lag, gain, taps, self.hop)
        else:
            e, new_state = self._synthesize_torch(uw, lag, gain, s0)
        return e.to(u.dtype), self._logdet(gain, t).to(u.dtype), new_state.to(u.dtype)

    def _synthesize_torch(self, u: Tensor, lag: Tensor, gain: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
        """Blocks of ``min_lag - K`` samples: each reads only the history before the block."""
        b, t = u.shape
        size = self.state_size
        block = self.min_lag - self.half
        lag_n = _per_sample(lag, t, self.hop)
        g = _per_sample(gain, t, self.hop)
        c = torch.sqrt(1.0 - g.square())
        tail, out = s0, []
        for n0 in range(0, t, block):
            n1 = min(t, n0 + block)
            # position of sample n within `tail` (the last `size` samples before the block) is size + n - n0
            offset = torch.arange(n0, n1, device=u.device).expand(b, n1 - n0) - n0 + size
            pred = self._prediction(tail, lag_n[:, n0:n1], offset)
            x = c[:, n0:n1] * u[:, n0:n1] + g[:, n0:n1] * pred
            out.append(x)
            tail = torch.cat([tail, x], dim=1)[:, -size:]
        e = torch.cat(out, dim=1) if out else u
        return e, tail

"""Explicit Runge-Kutta ODE solvers for continuous flows, differentiable by backpropagation.

``odeint(func, y0, t0, t1)`` integrates ``dy/dt = func(t, y)`` where ``y`` is a tuple of tensors
(e.g. the state ``z`` and the accumulated log-determinant of a CNF). Two methods:

- ``"dopri5"`` (default): Dormand-Prince 5(4) with adaptive step size (Dormand & Prince 1980;
  Hairer, Norsett & Wanner, *Solving ODEs I*, sec. II.4). The error of the 4th-order embedded
  solution is measured in the RMS norm of ``err / (atol + rtol * max(|y0|, |y1|))`` over all
  elements of all state tensors; a step is accepted when that norm is <= 1. The starting step
  follows Hairer's algorithm (II.4, "starting step size"). First-same-as-last is used.
- ``"rk4"``: classic fixed-step Runge-Kutta with ``num_steps`` equal steps (cheap, for training
  toy models where a fixed discretisation is acceptable).

Gradients flow through every accepted step (discretise-then-optimise, as in Chen et al. 2018's
"direct backpropagation" baseline); the step-size control works on detached values, so the
chosen grid is a piecewise-constant function of the inputs. ``t1 < t0`` integrates backwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["odeint", "ODEStats", "ODESolverError", "METHODS"]

State = tuple[Tensor, ...]
Dynamics = Callable[[float, State], State]

METHODS = ("dopri5", "rk4")

# Dormand-Prince 5(4) tableau.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4, strict=True))


class ODESolverError(RuntimeError):
    """The adaptive solver could not reach the end point (too many steps or step-size underflow)."""


@dataclass
class ODEStats:
    """Counters of one solve: function evaluations, accepted and rejected steps."""

    nfe: int = 0
    accepted: int = 0
    rejected: int = 0


def _axpy(y: State, h: float, coeffs: tuple[float, ...], ks: list[State]) -> State:
    """``y + h * sum_j coeffs[j] * ks[j]`` for each tensor of the state (zero coefficients skipped)."""
    out = []
    for i, yi in enumerate(y):
        acc = yi
        for c, k in zip(coeffs, ks, strict=False):
            if c != 0.0:
                acc = acc + (h * c) * k[i]
        out.append(acc)
    return tuple(out)


def _rms_scaled(x: State, y0: State, y1: State, rtol: float, atol: float) -> float:
    """RMS over all elements of ``x / (atol + rtol * max(|y0|, |y1|))`` (detached, as a float)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for xi, a, b in zip(x, y0, y1, strict=True):
            scale = atol + rtol * torch.maximum(a.abs(), b.abs())
            total += float((xi / scale).pow(2).sum())
            count += xi.numel()
    return math.sqrt(total / max(count, 1))


def _initial_step(
    func: Dynamics,
    t0: float,
    y0: State,
    f0: State,
    direction: float,
    rtol: float,
    atol: float,
    stats: ODEStats,
) -> float:
    """Hairer's starting step for an order-5 method (one extra function evaluation)."""
    d0 = _rms_scaled(y0, y0, y0, rtol, atol)
    d1 = _rms_scaled(f0, y0, y0, rtol, atol)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    with torch.no_grad():
        y1 = tuple(a + direction * h0 * b for a, b in zip(y0, f0, strict=True))
        f1 = func(t0 + direction * h0, tuple(a.detach() for a in y1))
    stats.nfe += 1
    d2 = _rms_scaled(tuple(a - b for a, b in zip(f1, f0, strict=True)), y0, y0, rtol, atol) / h0
    dmax = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if dmax <= 1e-15 else (0.01 / dmax) ** (1 / 5)
    return min(100 * h0, h1)


def _dopri5(
    func: Dynamics,
    y0: State,
    t0: float,
    t1: float,
    rtol: float,
    atol: float,
    max_steps: int,
    stats: ODEStats,
) -> State:
    direction = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    f0 = func(t0, y0)
    stats.nfe += 1
    h = min(_initial_step(func, t0, y0, f0, direction, rtol, atol, stats), span)
    t, y, done = t0, y0, 0.0
    safety, min_factor, max_factor = 0.9, 0.2, 10.0
    while span - done > 1e-12 * max(1.0, span):
        if stats.accepted + stats.rejected >= max_steps:
            raise ODESolverError(
                f"dopri5: no solution within max_steps={max_steps} (reached t={t:.6g} of {t1:.6g}); "
                "loosen rtol/atol or raise max_steps"
            )
        h = min(h, span - done)
        if h < 1e-12 * max(1.0, span):
            raise ODESolverError(f"dopri5: step size underflow at t={t:.6g}")
        hs = direction * h
        ks: list[State] = [f0]
        for i in range(1, 7):
            ks.append(func(t + _C[i] * hs, _axpy(y, hs, _A[i], ks)))
        stats.nfe += 6
        y_new = _axpy(y, hs, _B5, ks)
        err = tuple(
            sum((hs * e) * k[i] for e, k in zip(_E, ks, strict=True) if e != 0.0) for i in range(len(y))
        )
        err_norm = _rms_scaled(err, y, y_new, rtol, atol)
        if not math.isfinite(err_norm):
            raise ODESolverError(f"dopri5: non-finite state at t={t:.6g} (the dynamics diverged)")
        if err_norm <= 1.0:
            stats.accepted += 1
            t, y, f0 = t + hs, y_new, ks[6]  # first same as last
            done += h
        else:
            stats.rejected += 1
        factor = max_factor if err_norm == 0.0 else safety * err_norm ** (-1 / 5)
        h = h * min(max_factor, max(min_factor, factor))
    return y


def _rk4(func: Dynamics, y0: State, t0: float, t1: float, num_steps: int, stats: ODEStats) -> State:
    h = (t1 - t0) / num_steps
    y = y0
    for n in range(num_steps):
        t = t0 + n * h
        k1 = func(t, y)
        k2 = func(t + h / 2, _axpy(y, h, (0.5,), [k1]))
        k3 = func(t + h / 2, _axpy(y, h, (0.0, 0.5), [k1, k2]))
        k4 = func(t + h, _axpy(y, h, (0.0, 0.0, 1.0), [k1, k2, k3]))
        y = _axpy(y, h, (1 / 6, 1 / 3, 1 / 3, 1 / 6), [k1, k2, k3, k4])
        stats.nfe += 4
        stats.accepted += 1
    return y


def odeint(
    func: Dynamics,
    y0: State,
    t0: float,
    t1: float,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    num_steps: int = 10,
    max_steps: int = 10_000,
) -> tuple[State, ODEStats]:
    """Solve ``dy/dt = func(t, y)`` from ``t0`` to ``t1``; return ``(y(t1), stats)``.

    ``y0`` is a tuple of tensors and ``func(t, y)`` returns a tuple of the same shapes.
    ``rtol``/``atol`` control ``"dopri5"``; ``num_steps`` sets the grid of ``"rk4"``.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    if method == "rk4" and num_steps < 1:
        raise ValueError(f"num_steps: expected >= 1, got {num_steps}")
    stats = ODEStats()
    if t0 == t1:
        return tuple(y0), stats
    if method == "rk4":
        return _rk4(func, tuple(y0), float(t0), float(t1), num_steps, stats), stats
    return _dopri5(func, tuple(y0), float(t0), float(t1), rtol, atol, max_steps, stats), stats

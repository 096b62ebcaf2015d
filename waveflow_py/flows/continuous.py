"""Continuous normalizing flow (FFJORD; Grathwohl et al. 2019, after Neural ODEs, Chen et al. 2018).

The transform is the solution map of ``dz/dt = f(z, t[, context])`` from ``t = 0`` (data) to
``t = T`` (base). By the instantaneous change of variables,
``d log|det dz(t)/dz(0)| / dt = tr(df/dz)``, so the log-determinant is integrated alongside the
state (equivalently ``d log p(z(t)) / dt = -tr(df/dz)``). The trace is computed either exactly (one
backward pass per dimension; for small dimensions) or with Hutchinson's estimator
``E[e^T (df/dz) e]`` with Rademacher or Gaussian noise ``e`` drawn once per solve (FFJORD).
Integration uses this package's own Dormand-Prince solver (:mod:`waveflow_py.flows.ode`) and
gradients are obtained by backpropagating through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from waveflow_py.flows.base import Transform, check_context, check_tensor
from waveflow_py.flows.ode import METHODS, ODEStats, odeint

__all__ = ["CNF", "ODENet", "TRACE_MODES", "NOISE_TYPES"]

TRACE_MODES = ("exact", "hutchinson", "auto")
NOISE_TYPES = ("rademacher", "gaussian")
_TIME_CONDITIONING = ("concatsquash", "concat")
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class _ConcatSquashLinear(nn.Module):
    """``W h * sigmoid(G c + g) + B c`` with ``c = [t, context]`` (FFJORD's ConcatSquash layer)."""

    def __init__(self, in_features: int, out_features: int, cond_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(cond_features, out_features)
        self.hyper_bias = nn.Linear(cond_features, out_features, bias=False)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return self.linear(h) * torch.sigmoid(self.gate(c)) + self.hyper_bias(c)


class _ConcatLinear(nn.Module):
    """``W [h, c] + b`` with ``c = [t, context]`` (time as an extra input of every layer)."""

    def __init__(self, in_features: int, out_features: int, cond_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features + cond_features, out_features)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return self.linear(torch.cat([h, c], dim=1))


class ODENet(nn.Module):
    """Default CNF dynamics ``f(z, t[, context])``: an MLP whose every layer sees ``t`` (and context).

    Shapes: ``z (B, features)``, ``t`` a scalar tensor, ``context (B, context_features)`` ->
    ``(B, features)``. ``time_conditioning="concatsquash"`` gates each layer by ``t`` (FFJORD);
    ``"concat"`` appends ``t`` to each layer's input. Use a smooth ``activation`` (the ODE needs a
    Lipschitz, differentiable ``f``).
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_layers: int = 3,
        *,
        context_features: int | None = None,
        time_conditioning: str = "concatsquash",
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        if features < 1 or hidden_features < 1 or num_layers < 1:
            raise ValueError(
                "ODENet: features, hidden_features and num_layers must be >= 1, got "
                f"{features}, {hidden_features}, {num_layers}"
            )
        if time_conditioning not in _TIME_CONDITIONING:
            raise ValueError(
                f"time_conditioning: expected one of {_TIME_CONDITIONING}, got {time_conditioning!r}"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {tuple(_ACTIVATIONS)}, got {activation!r}")
        layer = _ConcatSquashLinear if time_conditioning == "concatsquash" else _ConcatLinear
        cond = 1 + (context_features or 0)
        sizes = [features] + [hidden_features] * num_layers + [features]
        self.layers = nn.ModuleList(layer(a, b, cond) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, t: Tensor, z: Tensor, context: Tensor | None = None) -> Tensor:
        c = t.reshape(1, 1).expand(z.shape[0], 1).to(z)
        if context is not None:
            c = torch.cat([c, context.reshape(context.shape[0], -1).to(z)], dim=1)
        h = z
        for i, layer in enumerate(self.layers):
            h = layer(h, c)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return h


class CNF(Transform):
    """Continuous normalizing flow on ``(B, features)`` (FFJORD, Grathwohl et al. 2019).

    ``forward(x)`` integrates ``0 -> T`` (data -> base) and returns ``(z, log|det dz/dx|)``;
    ``inverse(z)`` integrates ``T -> 0``. Both log-determinants have shape ``(B,)`` and cancel.

    Args:
        features: event size ``D``.
        hidden_features, num_layers, time_conditioning, activation: the default :class:`ODENet`.
        context_features: size of a context vector (conditional CNF); ``None`` for none.
        dynamics: a module ``f(t, z, context) -> dz/dt`` replacing the default net (then ``x`` may
            have any shape ``(B, ...)`` with ``D`` elements per row).
        integration_time: ``T``.
        method: ``"dopri5"`` (adaptive, ``rtol``/``atol``) or ``"rk4"`` (``num_steps`` fixed steps).
        trace: ``"exact"`` (``D`` backward passes per evaluation), ``"hutchinson"`` (one, unbiased
            but noisy) or ``"auto"`` (exact when ``D <= exact_trace_max_features``).
        noise: Hutchinson probe distribution, ``"rademacher"`` or ``"gaussian"``.

    After a call, ``last_stats`` holds the solver counters (function evaluations, steps).
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_layers: int = 3,
        *,
        context_features: int | None = None,
        time_conditioning: str = "concatsquash",
        activation: str = "tanh",
        dynamics: nn.Module | None = None,
        integration_time: float = 1.0,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        num_steps: int = 10,
        max_steps: int = 10_000,
        trace: str = "auto",
        noise: str = "rademacher",
        exact_trace_max_features: int = 8,
    ) -> None:
        super().__init__()
        if features < 1:
            raise ValueError(f"features: expected >= 1, got {features}")
        if context_features is not None and context_features < 1:
            raise ValueError(f"context_features: expected None or >= 1, got {context_features}")
        if trace not in TRACE_MODES:
            raise ValueError(f"trace: expected one of {TRACE_MODES}, got {trace!r}")
        if noise not in NOISE_TYPES:
            raise ValueError(f"noise: expected one of {NOISE_TYPES}, got {noise!r}")
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if not (integration_time > 0 and math.isfinite(integration_time)):
            raise ValueError(f"integration_time: expected a positive number, got {integration_time}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
        if num_steps < 1 or max_steps < 1:
            raise ValueError(f"num_steps and max_steps must be >= 1, got {num_steps}, {max_steps}")
        self.features = int(features)
        self.context_features = context_features
        self.custom_dynamics = dynamics is not None
        self.dynamics = (
            dynamics
            if dynamics is not None
            else ODENet(
                features,
                hidden_features,
                num_layers,
                context_features=context_features,
                time_conditioning=time_conditioning,
                activation=activation,
            )
        )
        self.integration_time = float(integration_time)
        self.method = method
        self.rtol, self.atol = float(rtol), float(atol)
        self.num_steps, self.max_steps = int(num_steps), int(max_steps)
        self.trace = trace
        self.noise = noise
        self.exact_trace_max_features = int(exact_trace_max_features)
        self.last_stats = ODEStats()

    @property
    def accepts_context(self) -> bool:  # type: ignore[override]
        """Whether this CNF is conditional (a :class:`Composite` passes the context on only then)."""
        return self.context_features is not None

    @property
    def trace_mode(self) -> str:
        """The trace estimator in use: ``"exact"`` or ``"hutchinson"`` (``"auto"`` resolved)."""
        if self.trace != "auto":
            return self.trace
        return "exact" if self.features <= self.exact_trace_max_features else "hutchinson"

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data -> base: ``x (B, D)`` -> ``(z (B, D), log|det dz/dx| (B,))``."""
        self._check(x, context, "x")
        return self._solve(x, context, 0.0, self.integration_time)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Base -> data: ``z (B, D)`` -> ``(x (B, D), log|det dx/dz| (B,))``."""
        self._check(y, context, "y")
        return self._solve(y, context, self.integration_time, 0.0)

    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        if self.custom_dynamics:
            check_tensor(x, name=name)
            if x.dim() < 2 or x[0].numel() != self.features:
                raise ValueError(
                    f"{name}: expected shape (B, ...) with {self.features} elements per row, "
                    f"got shape {tuple(x.shape)}"
                )
        else:
            check_tensor(x, name=name, ndims=(2,), dim_sizes={1: self.features})
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        check_context(context, expected=self.context_features is not None, batch=x.shape[0])

    def _solve(
        self, x: Tensor, context: Tensor | None, t_start: float, t_end: float
    ) -> tuple[Tensor, Tensor]:
        # Build a differentiable graph only when someone can ask for a gradient.
        needs_graph = torch.is_grad_enabled() and (
            x.requires_grad
            or (context is not None and context.requires_grad)
            or any(p.requires_grad for p in self.parameters())
        )
        exact = self.trace_mode == "exact"
        probe = None if exact else self._probe(x)

        def func(t: float, state: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
            z = state[0]
            with torch.enable_grad():
                if not z.requires_grad:
                    z = z.detach().requires_grad_(True)
                tt = torch.tensor(t, dtype=z.dtype, device=z.device)
                dz = self.dynamics(tt, z, context)
                if dz.shape != z.shape:
                    raise ValueError(
                        f"dynamics: expected output shape {tuple(z.shape)}, got {tuple(dz.shape)}"
                    )
                if exact:
                    tr = _exact_trace(dz, z, needs_graph)
                else:
                    tr = _hutchinson_trace(dz, z, probe, needs_graph)
            if not needs_graph:
                dz, tr = dz.detach(), tr.detach()
            return dz, tr

        y0 = (x, x.new_zeros(x.shape[0]))
        (y, logabsdet), stats = odeint(
            func,
            y0,
            t_start,
            t_end,
            method=self.method,
            rtol=self.rtol,
            atol=self.atol,
            num_steps=self.num_steps,
            max_steps=self.max_steps,
        )
        self.last_stats = stats
        return y, logabsdet

    def _probe(self, x: Tensor) -> Tensor:
        if self.noise == "gaussian":
            return torch.randn_like(x)
        return torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, context_features={self.context_features}, "
            f"T={self.integration_time}, method={self.method}, rtol={self.rtol}, atol={self.atol}, "
            f"trace={self.trace}"
        )


def _grad(out: Tensor, z: Tensor, create_graph: bool) -> Tensor:
    (g,) = torch.autograd.grad(out, z, create_graph=create_graph, retain_graph=True, allow_unused=True)
    return torch.zeros_like(z) if g is None else g


def _exact_trace(dz: Tensor, z: Tensor, create_graph: bool) -> Tensor:
    """``tr(d dz / dz)`` per row, one backward pass per dimension: ``(B,)``."""
    flat = dz.reshape(dz.shape[0], -1)
    total = dz.new_zeros(dz.shape[0])
    for i in range(flat.shape[1]):
        total = total + _grad(flat[:, i].sum(), z, create_graph).reshape(z.shape[0], -1)[:, i]
    return total


def _hutchinson_trace(dz: Tensor, z: Tensor, probe: Tensor | None, create_graph: bool) -> Tensor:
    """Unbiased ``e^T (d dz / dz) e`` per row with the solve's fixed probe ``e``: ``(B,)``."""
    assert probe is not None
    vjp = _grad((dz * probe).sum(), z, create_graph)
    return (vjp * probe).reshape(z.shape[0], -1).sum(dim=1)

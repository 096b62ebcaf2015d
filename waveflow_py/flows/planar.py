"""Planar flow (Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows", Sec. 4.1).

``f(x) = x + u_hat * tanh(w^T x + b)`` on vectors ``(B, D)``. With ``u_hat`` reparametrised so that
``w^T u_hat > -1`` (appendix A of the paper) the map is invertible: along ``w`` it is the strictly
increasing scalar map ``alpha -> alpha + c * tanh(alpha + b)`` (``alpha = w^T x``,
``c = w^T u_hat``), and orthogonal to ``w`` it is a shift.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.flows.base import Transform, check_context, check_tensor

__all__ = ["Planar"]


class Planar(Transform):
    """Planar transform ``y = x + u_hat * tanh(w^T x + b)`` on ``(B, features)``.

    ``u_hat = u + (m(w^T u) - w^T u) * w / |w|^2`` with ``m(a) = -1 + softplus(a)`` so
    ``w^T u_hat > -1`` whatever the raw parameters; ``logabsdet = log(1 + (1 - tanh^2) w^T u_hat)``.

    The inverse has no closed form and is solved numerically: the scalar equation
    ``alpha + c * tanh(alpha + b) = w^T y`` for ``alpha = w^T x`` is monotone, its root lies in
    ``[w^T y - |c|, w^T y + |c|]``, and it is bracketed by bisection in float64 to ``tol`` (absolute,
    default 1e-10, so the float32 result is exact to rounding), then one Newton step is taken with
    autograd on so gradients through the inverse follow the implicit function theorem. Then
    ``x = y - u_hat * tanh(alpha + b)`` and the inverse's logabsdet is minus the forward one at ``x``.
    """

    accepts_context = False

    def __init__(self, features: int, *, tol: float = 1e-10, max_iter: int = 200) -> None:
        super().__init__()
        if features < 1:
            raise ValueError(f"features must be positive, got {features}")
        if tol <= 0:
            raise ValueError(f"tol must be positive, got {tol}")
        self.features = features
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        bound = 1.0 / math.sqrt(features)
        self.w = nn.Parameter(torch.empty(features).uniform_(-bound, bound))
        self.u = nn.Parameter(torch.empty(features).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(1))

    def u_hat(self) -> Tensor:
        """The constrained ``u`` (``w^T u_hat > -1``)."""
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1.0 - wu) * self.w / (self.w @ self.w).clamp_min(1e-12)

    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        check_tensor(x, name=name, ndims=(2,), dim_sizes={1: self.features})
        check_context(context, expected=False, batch=x.shape[0])

    def _logdet(self, h: Tensor, c: Tensor) -> Tensor:
        return torch.log1p((1.0 - h**2) * c)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, context, "input")
        u_hat = self.u_hat()
        h = torch.tanh(x @ self.w + self.b)
        return x + h[:, None] * u_hat, self._logdet(h, self.w @ u_hat)

    @torch.no_grad()
    def _bisect(self, target: Tensor, c: Tensor, b: Tensor) -> Tensor:
        """Root of ``alpha + c tanh(alpha + b) = target`` (float64, to ``self.tol``)."""
        target, c, b = target.double(), c.double(), b.double()
        lo, hi = target - c.abs(), target + c.abs()
        width = float(2 * c.abs())
        steps = 0 if width <= self.tol else min(self.max_iter, math.ceil(math.log2(width / self.tol)) + 1)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            above = mid + c * torch.tanh(mid + b) > target
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return 0.5 * (lo + hi)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y, context, "inverse input")
        u_hat = self.u_hat()
        c = self.w @ u_hat
        target = y @ self.w
        alpha = self._bisect(target, c, self.b).to(y.dtype)
        # One differentiable Newton step: exact at the root, carries the implicit gradient.
        h = torch.tanh(alpha + self.b)
        alpha = alpha - (alpha + c * h - target) / (1.0 + c * (1.0 - h**2))
        h = torch.tanh(alpha + self.b)
        return y - h[:, None] * u_hat, -self._logdet(h, c)

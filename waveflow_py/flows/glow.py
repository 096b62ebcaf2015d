"""Glow's per-channel layers: ActNorm and the LU-parametrised invertible 1x1 convolution.

Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions". Both act on
dimension 1 (channels) of ``(B, C)``, ``(B, C, T)`` or ``(B, C, H, W)`` inputs and count every
position (``T`` or ``H * W``) in the log-determinant.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from waveflow_py.flows.base import Transform, check_context, check_tensor

__all__ = ["ActNorm", "InvConv1x1"]

logger = logging.getLogger(__name__)


def _per_channel(p: Tensor, x: Tensor) -> Tensor:
    """Reshape a ``(C,)`` parameter to broadcast over ``(B, C, ...)``."""
    return p.reshape(1, -1, *([1] * (x.dim() - 2)))


class ActNorm(Transform):
    """Per-channel affine normalisation ``y = (x - loc) * exp(log_scale)`` (Glow, Sec. 3.1).

    Inputs ``(B, C)``, ``(B, C, T)``, ``(B, C, H, W)`` with ``C = num_features``. On the first
    ``forward`` (train or eval mode) before initialisation, ``loc`` and ``log_scale`` are set from
    the batch so the output has zero mean and unit variance per channel (data-dependent init); the
    ``initialized`` buffer records this and travels with ``state_dict``. ``inverse`` never
    initialises. ``logabsdet = sum(log_scale) * positions``.
    """

    accepts_context = False

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be positive, got {num_features}")
        self.num_features = num_features
        self.eps = float(eps)
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))

    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        check_tensor(x, name=name, ndims=(2, 3, 4), dim_sizes={1: self.num_features})
        check_context(context, expected=False, batch=x.shape[0])

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent initialisation from a batch ``x`` of shape ``(B, C, ...)``."""
        flat = x.transpose(0, 1).reshape(self.num_features, -1)
        if flat.shape[1] < 2:
            logger.warning("ActNorm initialised from a single value per channel; scale set to 1/eps")
        mean = flat.mean(dim=1)
        std = flat.std(dim=1, unbiased=False) if flat.shape[1] > 1 else torch.zeros_like(mean)
        self.loc.copy_(mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, context, "input")
        if not bool(self.initialized):
            self.initialize(x)
        y = (x - _per_channel(self.loc, x)) * torch.exp(_per_channel(self.log_scale, x))
        return y, self.log_scale.sum() * x[0, 0].numel() * x.new_ones(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y, context, "inverse input")
        x = y * torch.exp(-_per_channel(self.log_scale, y)) + _per_channel(self.loc, y)
        return x, -self.log_scale.sum() * y[0, 0].numel() * y.new_ones(y.shape[0])


class InvConv1x1(Transform):
    """Invertible 1x1 convolution ``y[:, i] = sum_j W[i, j] x[:, j]`` with ``W = P L (U + diag(s))``.

    LU parametrisation (Glow, Sec. 3.2): ``P`` is a fixed permutation (buffer), ``L`` unit lower
    triangular, ``U`` strictly upper triangular, ``s = sign_s * exp(log_s)`` with ``sign_s`` a fixed
    buffer and ``log_s`` learned, so ``log|det W| = sum(log_s)``. Initialised from a random rotation
    (``seed`` makes it reproducible). Inputs ``(B, C)``, ``(B, C, T)``, ``(B, C, H, W)``. The inverse
    is computed from the current parameters on every call by two triangular solves, so it can never
    go stale while training continues.
    """

    accepts_context = False

    def __init__(self, num_channels: int, seed: int | None = None) -> None:
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"num_channels must be positive, got {num_channels}")
        self.num_channels = num_channels
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        w = torch.linalg.qr(torch.randn(num_channels, num_channels, generator=gen, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("perm", p.to(dtype))
        self.register_buffer("sign_s", torch.sign(s).to(dtype))
        self.register_buffer("lower_mask", torch.tril(torch.ones(num_channels, num_channels), -1).to(dtype))
        self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
        self.log_s = nn.Parameter(torch.log(s.abs()).to(dtype))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.num_channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> Tensor:
        """The current ``(C, C)`` matrix ``W = P L U``."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        check_tensor(x, name=name, ndims=(2, 3, 4), dim_sizes={1: self.num_channels})
        check_context(context, expected=False, batch=x.shape[0])

    def _logdet(self, x: Tensor) -> Tensor:
        return self.log_s.sum() * x[0, 0].numel() * x.new_ones(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, context, "input")
        y = torch.matmul(x.movedim(1, -1), self.weight().T).movedim(-1, 1)
        return y, self._logdet(x)

    def inverse_weight(self, dtype: torch.dtype | None = None) -> Tensor:
        """``W^-1`` ``(C, C)`` from the current parameters (computed in float64, returned in ``dtype``,
        default the parameters'). No host-side check, so a cached inverse that holds it can be captured
        in a CUDA graph; recompute it after the parameters change (it is not stored here)."""
        w = self.weight().double()
        return torch.linalg.inv_ex(w)[0].to(self.lower.dtype if dtype is None else dtype)

    def inverse_with(self, y: Tensor, w_inv: Tensor) -> tuple[Tensor, Tensor]:
        """The inverse through a precomputed ``w_inv = self.inverse_weight()`` (a fast path: one matmul
        instead of two triangular solves); same result as :meth:`inverse` up to float rounding."""
        self._check(y, None, "inverse input")
        x = torch.matmul(y.movedim(1, -1), w_inv.T).movedim(-1, 1)
        return x, -self._logdet(y)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y, context, "inverse input")
        lower, upper = self._factors()
        moved = y.movedim(1, -1)
        rhs = self.perm.T @ moved.reshape(-1, self.num_channels).T  # (C, N): P^T y (P orthogonal)
        z = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper, z, upper=True)
        return x.T.reshape(moved.shape).movedim(-1, 1), -self._logdet(y)

"""Affine autoregressive transform along the height of ``(B, C, H, W)`` (WaveFlow's flow step: Ping,
Peng, Zhao & Song 2020, Sec. 3; the 1-D special case is the MAF/IAF of Papamakarios et al. 2017 and
Kingma et al. 2016).

``forward`` (data -> latent, parallel over all rows)::

    (s, t) = conditioner(shift_down(x), context)     # row i of (s, t) sees only rows < i of x
    y = x * exp(s) + t,   logabsdet = sum(s)

``inverse`` (latent -> data) is sequential over the ``H`` rows: ``x_i = (y_i - t_i) * exp(-s_i)``.
It has one code path and two ways of evaluating the conditioner:

* ``cache=None`` (the reference): for row ``i`` the full conditioner is re-run on rows ``0..i``
  generated so far. Simple, differentiable, ``O(H^2)`` rows of work.
* ``cache=RowCache(...)`` (fast inference): the conditioner's incremental protocol computes each row
  once (``start`` then ``step`` per row). Runs under ``no_grad``. A test keeps both equal.

**Conditioner protocol** (:class:`CausalConditioner`): ``conditioner(x, context) -> (B, 2C, H, W)``
must be *causal-inclusive* along the height (output row ``i`` depends on input rows ``<= i``); this
transform shifts its input down one row so that the parameters of row ``i`` depend only on rows ``< i``
(row 0 sees zeros and the context). For the cached inverse it also has
``start(context, *, batch, width, dtype, reuse) -> state`` (``reuse``: a finished state whose buffers
may be recycled, or ``None``) and ``step(row (B, C, W), state) -> (B, 2C, W)``.

**Context** is either ``None`` or row-aligned, ``(B, C_ctx, H, W)``: the reference inverse gives the
conditioner rows ``0..i`` of it together with rows ``0..i`` of the (shifted) input.

**Stable scale** (:func:`~waveflow_py.flows.coupling.log_scale_from_raw`): ``s = b * tanh(raw / b)``
with ``b = scale_bound`` (default 8): the identity near 0,
smoothly bounded so that ``exp(+-s)`` can never overflow; ``scale_bound=None`` uses ``raw`` unbounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.flows.base import Transform, check_tensor, sum_except_batch
from waveflow_py.flows.coupling import log_scale_from_raw

__all__ = ["AffineAutoregressive", "CausalConditioner", "RowCache"]


@runtime_checkable
class CausalConditioner(Protocol):
    """A network, causal-inclusive along the height, with a parallel and an incremental interface."""

    def __call__(self, x: Tensor, context: Tensor | None) -> Tensor: ...

    def start(
        self, context: Tensor | None, *, batch: int, width: int, dtype: torch.dtype | None, reuse: Any
    ) -> Any: ...

    def step(self, row: Tensor, state: Any) -> Tensor: ...


@dataclass
class RowCache:
    """The explicit cache object of the fast inverse: pass it as ``inverse(..., cache=RowCache())``.

    ``dtype``: compute dtype of the conditioner (e.g. ``torch.bfloat16``; ``None`` = its parameters'
    dtype). The rows themselves are always solved in the dtype of ``y``. ``state`` holds the
    conditioner's incremental state of the latest inverse (rebuilt by every call, so new weights are
    always read; its buffers are recycled by the next inverse that gets this cache, e.g. the next flow
    of a model). One cache serves one inverse at a time.
    """

    dtype: torch.dtype | None = None
    state: Any = None


class AffineAutoregressive(Transform):
    """Affine autoregressive transform of ``(B, C, H, W)`` along ``H`` (see the module docstring).

    Args:
        conditioner: a :class:`CausalConditioner` mapping ``(B, C, H, W)`` (+ context) to ``(B, 2C, H, W)``:
            channels ``[:C]`` are the raw log-scales, ``[C:]`` the shifts.
        channels: ``C``.
        scale_bound: soft bound ``b`` of the log-scale (``None``: unbounded).
        identity_first_row: copy row 0 unchanged and condition row ``i > 0`` on the conditioner's
            output at position ``i - 1`` for input rows ``0 .. i - 1`` and context rows ``1 .. i``
            (Parakeet's WaveFlow, Ping et al.'s release); ``False``: row 0 is transformed too, from a
            zero input row and context row 0.
    """

    def __init__(
        self,
        conditioner: nn.Module,
        channels: int,
        scale_bound: float | None = 8.0,
        identity_first_row: bool = False,
    ) -> None:
        super().__init__()
        self.identity_first_row = bool(identity_first_row)
        if scale_bound is not None and scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive or None, got {scale_bound}")
        self.conditioner = conditioner
        self.channels = channels
        self.scale_bound = scale_bound

    # ------------------------------------------------------------------ helpers
    def _check(self, x: Tensor, context: Tensor | None, name: str, finite_context: bool = True) -> None:
        # check_tensor skips its finiteness scan by itself while a CUDA graph is being captured
        check_tensor(x, name=name, ndims=(4,), dim_sizes={1: self.channels})
        if context is not None:
            check_tensor(context, name="context", ndims=(4,), finite=finite_context)
            if context.shape[0] != x.shape[0] or context.shape[2] != x.shape[2]:
                raise ValueError(
                    f"context: expected a row-aligned tensor (B={x.shape[0]}, C, H={x.shape[2]}, W), "
                    f"got shape {tuple(context.shape)}"
                )

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        raw, shift = params.split(self.channels, dim=1)
        if self.scale_bound is None:
            return log_scale_from_raw(raw, "exp"), shift
        return log_scale_from_raw(raw, "tanh", self.scale_bound), shift

    # ------------------------------------------------------------------ contract
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (B, C, H, W) -> (y, log|det dy/dx| (B,))``, parallel over rows."""
        self._check(x, context, "x")
        if self.identity_first_row:
            return self._forward_identity_first(x, context)
        params = self.conditioner(F.pad(x[:, :, :-1], (0, 0, 1, 0)), context)
        expected = (x.shape[0], 2 * self.channels, *x.shape[2:])
        if tuple(params.shape) != expected:
            raise ValueError(f"conditioner: expected output of shape {expected}, got {tuple(params.shape)}")
        log_s, shift = self._split(params)
        # the log-det sums T terms: accumulate it in float32 (at least) even under bf16/fp16 autocast
        acc = torch.promote_types(log_s.dtype, torch.float32)
        return x * torch.exp(log_s) + shift, sum_except_batch(log_s.to(acc))

    def _forward_identity_first(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        params = self.conditioner(x[:, :, :-1], None if context is None else context[:, :, 1:])
        log_s, shift = self._split(params)
        acc = torch.promote_types(log_s.dtype, torch.float32)
        y = torch.cat([x[:, :, :1], x[:, :, 1:] * torch.exp(log_s) + shift], dim=2)
        return y, sum_except_batch(log_s.to(acc))

    def inverse(
        self, y: Tensor, context: Tensor | None = None, cache: RowCache | None = None
    ) -> tuple[Tensor, Tensor]:
        """``y (B, C, H, W) -> (x, log|det dx/dy| (B,))``, row by row.

        ``cache=None``: the reference (re-runs the conditioner on the rows so far; differentiable).
        ``cache=RowCache(dtype=...)``: each row computed once through the conditioner's incremental
        state (no autograd). Both give the same result up to the compute dtype's rounding.
        """
        # the cached (synthesis) path skips the O(context) finiteness scan: its callers check their inputs
        self._check(y, context, "y", finite_context=cache is None)
        if cache is not None and not isinstance(cache, RowCache):
            raise ValueError(f"cache: expected None or a RowCache, got {type(cache).__name__}")
        if cache is None:
            return self._solve_rows(y, self._reference_rows(context))
        with torch.no_grad():
            return self._solve_rows(y, self._cached_rows(y, context, cache))

    def _solve_rows(self, y: Tensor, row_params: Callable[[int, Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """The one row loop of the inverse: ``x_i = (y_i - t_i) * exp(-s_i)`` for ``i = 0 .. H - 1``, where
        ``row_params(i, x)`` gives ``(B, 2C, W)`` for row ``i`` from the rows ``< i`` of ``x`` solved so
        far (rows ``>= i`` of ``x`` are still zero). Rows are written into one preallocated tensor."""
        x = torch.zeros_like(y)
        log_s_rows = torch.zeros_like(y)
        first = int(self.identity_first_row)
        if first:
            x[:, :, 0] = y[:, :, 0]
        for i in range(first, y.shape[2]):
            log_s, shift = self._split(row_params(i, x).to(y.dtype))
            x[:, :, i] = (y[:, :, i] - shift) * torch.exp(-log_s)
            log_s_rows[:, :, i] = log_s
        return x, -sum_except_batch(log_s_rows)

    def _reference_rows(self, context: Tensor | None) -> Callable[[int, Tensor], Tensor]:
        """Row ``i``'s parameters by re-running the full conditioner on rows ``0 .. i`` (differentiable)."""

        def params(i: int, x: Tensor) -> Tensor:
            if self.identity_first_row:  # rows 0 .. i-1 with context rows 1 .. i; i >= 1
                ctx = None if context is None else context[:, :, 1 : i + 1]
                # a copy: x is written in place row by row (F.pad copies in the other branch)
                return self.conditioner(x[:, :, :i].clone(), ctx)[:, :, i - 1]
            ctx = None if context is None else context[:, :, : i + 1]
            return self.conditioner(F.pad(x[:, :, :i], (0, 0, 1, 0)), ctx)[:, :, i]

        return params

    def _cached_rows(
        self, y: Tensor, context: Tensor | None, cache: RowCache
    ) -> Callable[[int, Tensor], Tensor]:
        """Row ``i``'s parameters from the conditioner's incremental state: one ``step`` per row."""
        b, _, _, width = y.shape
        if self.identity_first_row and context is not None:
            context = context[:, :, 1:]
        state = self.conditioner.start(context, batch=b, width=width, dtype=cache.dtype, reuse=cache.state)
        cache.state = state
        zero_row = y.new_zeros(b, self.channels, width)

        def params(i: int, x: Tensor) -> Tensor:
            return self.conditioner.step(zero_row if i == 0 else x[:, :, i - 1], state)

        return params

"""The shared base of the source-filter flows: hop segments, checks, and one numba/torch dispatch.

Every filter here (:class:`~waveflow_py.sourcefilter.lpc.LPCFilter`, :class:`~.lpc.PreEmphasis`,
:class:`~waveflow_py.sourcefilter.ltp.LongTermPredictor`) maps a signal ``x (B, T)`` cut into segments of
``hop`` samples, each with its own coefficients (the context ``(B, F, width)``, ``F * hop >= T``), and
carries a filter state ``(B, S)`` (the last samples before the signal, oldest first; zeros when
``None``) so a long signal can be processed in chunks. Analysis is parallel over time; synthesis is a
recursion over samples, written twice per filter:

* ``"numba"``: a per-sample reference loop compiled by numba on first use (``cache=True`` keeps the
  machine code on disk; nothing is compiled at import), float64 accumulation, CPU, no autograd;
* ``"torch"``: a differentiable, GPU-friendly form (each filter's own blocking);
* ``"auto"``: numba for CPU tensors without autograd (when numba is installed), else torch.

This module holds what the filters share: :class:`FilterFlow` (hop, backend, context and state checks,
the flow contract's ``forward``/``inverse`` as zero-state analysis/synthesis), the backend rule
(:func:`check_backend`, :func:`pick_backend`) and the call of a compiled loop on CPU copies of torch
tensors (:func:`run_compiled`).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from waveflow_py.flows.base import Transform, check_context, check_tensor

__all__ = [
    "BACKENDS",
    "FilterFlow",
    "check_backend",
    "compiled",
    "initial_state",
    "numba_available",
    "pick_backend",
    "run_compiled",
    "segment_counts",
    "work_dtype",
]

BACKENDS = ("auto", "numba", "torch")


def numba_available() -> bool:
    """Whether the compiled CPU synthesis loops can be used (numba importable)."""
    return importlib.util.find_spec("numba") is not None


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else ``ValueError``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    return backend


def pick_backend(backend: str, like: Tensor, inputs: tuple[Tensor, ...]) -> str:
    """``"numba"`` or ``"torch"`` for a synthesis of ``like`` (the signal in its work dtype) from
    ``inputs`` (every tensor it depends on): ``"auto"`` is numba for CPU tensors without autograd when
    numba is installed, else torch; ``"numba"`` where autograd is needed is an error."""
    check_backend(backend)
    needs_grad = torch.is_grad_enabled() and any(v.requires_grad for v in inputs)
    if backend == "auto":
        on_cpu = like.device.type == "cpu" and not needs_grad and numba_available()
        return "numba" if on_cpu else "torch"
    if backend == "numba" and needs_grad:
        raise ValueError("backend 'numba' does not support autograd; use 'torch' or torch.no_grad()")
    return backend


@functools.cache
def compiled(loop: Callable[..., None]) -> Callable[..., None]:
    """``loop`` compiled by numba, once per process (lazily, on first use; cached on disk)."""
    import numba

    return numba.njit(cache=True, nogil=True, fastmath=False)(loop)


def _as_numpy(v: Tensor | np.ndarray | int) -> np.ndarray | int:
    """A C-contiguous CPU array for a compiled loop: float tensors as float64, integer ones as int64."""
    if isinstance(v, Tensor):
        v = v.detach().cpu()
        v = v.double() if v.is_floating_point() else v.long()
        return np.ascontiguousarray(v.numpy())
    return v


def run_compiled(
    loop: Callable[..., None], signal: Tensor, state: Tensor, *tables: Tensor | np.ndarray | int
) -> tuple[Tensor, Tensor]:
    """Run ``compiled(loop)(signal, *tables, state, out)`` on CPU copies of the tensors.

    ``signal (B, T)`` keeps its dtype; ``tables`` are per-segment coefficients (float tensors in float64,
    integer ones in int64) or plain numbers; ``state (B, S)`` goes in as a float64 copy that the loop
    overwrites with the state after the signal. Returns ``(out (B, T), state (B, S))`` on the signal's
    device, both in its dtype.
    """
    sig = signal.detach().cpu().contiguous().numpy()
    mem = np.array(state.detach().cpu().double().numpy(), dtype=np.float64, order="C")  # a copy: written to
    out = np.empty_like(sig)
    compiled(loop)(sig, *(_as_numpy(v) for v in tables), mem, out)
    new_state = torch.from_numpy(mem).to(device=signal.device, dtype=signal.dtype)
    return torch.from_numpy(out).to(signal.device), new_state


def work_dtype(x: Tensor) -> torch.dtype:
    """Compute dtype: at least float32 (a recursion in bf16/fp16 would lose the envelope)."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def initial_state(state: Tensor | None, like: Tensor, size: int) -> Tensor:
    """``state`` in ``like``'s dtype, or zeros ``(B, size)`` at the start of a signal."""
    if state is None:
        return like.new_zeros(like.shape[0], size)
    return state.to(like.dtype)


def segment_counts(t: int, frames: int, hop: int, like: Tensor) -> Tensor:
    """Samples of a length-``t`` signal falling in each of ``frames`` segments ``(frames,)``."""
    start = torch.arange(frames, device=like.device, dtype=like.dtype) * hop
    return (t - start).clamp(0, hop)


class FilterFlow(Transform):
    """Base of the source-filter flows: ``x (B, T) <-> y (B, T)`` over segments of ``hop`` samples.

    Args:
        hop: samples per segment.
        backend: synthesis backend (``"auto"``, ``"numba"``, ``"torch"``).
        context_width: features per segment of the context ``(B, F, width)`` (``None``: no context).

    Subclasses define :attr:`state_size` and implement ``analysis`` and ``synthesis``, both
    ``(x, context, state) -> (y, log|det| (B,), state (B, state_size))``. The flow contract's
    ``forward``/``inverse`` are those with zero initial state.
    """

    def __init__(self, hop: int, backend: str = "auto", context_width: int | None = None) -> None:
        super().__init__()
        self.hop, self.backend, self.context_width = int(hop), check_backend(backend), context_width
        self.accepts_context = context_width is not None
        # mel frames either side of a segment that its context reads (0: its own frames only); a stage
        # that reads more needs that much mel before a chunk (``SourceFilter.synthesis``'s mel_offset)
        self.mel_context = 0

    @property
    def state_size(self) -> int:
        """Samples of history the filter reads (the width of its state)."""
        raise NotImplementedError

    def _check(self, x: Tensor, context: Tensor | None, state: Tensor | None, what: str) -> Tensor | None:
        """Check ``x (B, T)``, the context (covering ``T`` samples) and the state; return the context."""
        check_tensor(x, name=what, ndims=(2,))
        width = self.context_width
        check_context(context, expected=width is not None, batch=x.shape[0])
        if context is not None and width is not None:
            check_tensor(context, name="context", ndims=(3,), dim_sizes={2: width})
            if context.shape[1] * self.hop < x.shape[1]:
                raise ValueError(
                    f"context: {context.shape[1]} frames x hop {self.hop} cover fewer than the "
                    f"{x.shape[1]} samples of {what}"
                )
        if state is not None:
            check_tensor(state, name="state", ndims=(2,), dim_sizes={0: x.shape[0], 1: self.state_size})
        return context

    def analysis(
        self, x: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def synthesis(
        self, y: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet, _ = self.analysis(x, context)
        return y, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, logdet, _ = self.synthesis(y, context)
        return x, logdet

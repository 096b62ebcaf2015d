"""The flow contract: `Transform`, `Composite`, `Inverse` and `Flow`.

Every transform maps ``x -> y`` with ``forward(x, context=None) -> (y, logabsdet)`` and back with
``inverse(y, context=None) -> (x, logabsdet)``. ``logabsdet`` always has shape ``(batch,)``: it is
``log|det dy/dx|`` for ``forward`` and ``log|det dx/dy|`` for ``inverse``, so the two cancel.
Shapes ``(B, D)``, ``(B, C, T)`` and ``(B, C, H, W)`` are all first class.

The design follows nflows / zuko (Durkan et al. 2019; Rozet 2022), extended to audio shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "Transform",
    "Composite",
    "Inverse",
    "Flow",
    "InverseNotAvailable",
    "NonFiniteError",
    "check_tensor",
    "check_context",
    "sum_except_batch",
    "cuda_graph_capturing",
]


class InverseNotAvailable(NotImplementedError):
    """Raised by a transform that has no analytic (or numerical) inverse in the asked direction."""


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def cuda_graph_capturing() -> bool:
    """Whether a CUDA graph is being captured on the current stream (never true on CPU-only machines)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


class NonFiniteError(ValueError):
    """A tensor holds NaN or inf (:func:`check_tensor`): a bad input where a caller passed it, or a
    numerical overflow where a flow produced it (training skips such a step like a non-finite loss)."""


def check_tensor(
    x: Tensor,
    *,
    name: str = "x",
    ndims: Sequence[int] | None = None,
    dim_sizes: dict[int, int] | None = None,
    finite: bool = True,
) -> None:
    """Raise ``ValueError`` naming what was expected and what came.

    ``ndims``: allowed ranks; ``dim_sizes``: ``{dim: size}`` that must match (negative dims allowed);
    ``finite``: reject NaN / inf with a :class:`NonFiniteError` (skipped while a CUDA graph is being
    captured: the scan would synchronise with the host, which capture forbids).
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if ndims is not None and x.dim() not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name}: expected a tensor of rank {want}, got shape {tuple(x.shape)}")
    for dim, size in (dim_sizes or {}).items():
        if x.dim() <= (dim if dim >= 0 else -dim - 1) or x.shape[dim] != size:
            raise ValueError(f"{name}: expected size {size} in dimension {dim}, got shape {tuple(x.shape)}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch, got shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and not cuda_graph_capturing() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"{name}: contains {bad} non-finite value(s) (NaN or inf)")


def check_context(context: Tensor | None, *, expected: bool, batch: int, name: str = "context") -> None:
    """Check that a context is given exactly when one is expected, with a matching batch size."""
    if context is None:
        if expected:
            raise ValueError(f"{name}: this transform is conditional and expects a context, got None")
        return
    if not expected:
        raise ValueError(
            f"{name}: this transform takes no context, got a tensor of shape {tuple(context.shape)}"
        )
    check_tensor(context, name=name)
    if context.shape[0] != batch:
        raise ValueError(f"{name}: expected batch size {batch}, got shape {tuple(context.shape)}")


class Transform(nn.Module):
    """Base class of every invertible transform.

    Subclasses implement ``forward`` and (where possible) ``inverse``; a transform without an inverse
    raises :class:`InverseNotAvailable`.

    ``accepts_context`` tells :class:`Composite` whether to pass the context on: a transform that never
    takes one (a permutation, ActNorm, ...) sets it to ``False`` and rejects a context given directly.
    """

    accepts_context: bool = True

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: D401
        raise NotImplementedError

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise InverseNotAvailable(f"{type(self).__name__} has no inverse")


class Composite(Transform):
    """Apply ``transforms`` in order; the inverse applies their inverses in reverse order.

    The context goes only to the members whose ``accepts_context`` is true, so conditional couplings
    can be mixed with permutations or ActNorm; a context given to a composite of which no member
    takes one is an error.
    """

    def __init__(self, transforms: Iterable[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    @property
    def accepts_context(self) -> bool:  # type: ignore[override]
        return any(getattr(t, "accepts_context", True) for t in self.transforms)

    def _check(self, x: Tensor, context: Tensor | None) -> None:
        check_tensor(x, name="input", finite=False)
        if context is not None and not self.accepts_context:
            check_context(context, expected=False, batch=x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, context)
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ld = t(x, context if getattr(t, "accepts_context", True) else None)
            total = total + ld
        return x, total

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y, context)
        total = y.new_zeros(y.shape[0])
        for t in reversed(self.transforms):
            y, ld = t.inverse(y, context if getattr(t, "accepts_context", True) else None)
            total = total + ld
        return y, total


class Inverse(Transform):
    """The inverse of a transform as a transform of its own (e.g. IAF = ``Inverse(MAF-style)``)."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.base_transform = transform

    @property
    def accepts_context(self) -> bool:  # type: ignore[override]
        return getattr(self.base_transform, "accepts_context", True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.base_transform.inverse(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.base_transform(y, context)


class Flow(nn.Module):
    """A normalizing flow: ``transform`` maps data to the space of the ``base`` distribution.

    ``log_prob(x) = base.log_prob(f(x)) + log|det df/dx|``; ``sample`` draws from the base and runs
    the inverse. ``base`` is a :class:`~waveflow_py.flows.distributions.StandardNormal` or any module
    with ``log_prob(z)``, ``sample(n, context)`` and ``shape``.
    """

    def __init__(self, transform: Transform, base: nn.Module) -> None:
        super().__init__()
        self.transform = transform
        self.base = base

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Log density of ``x`` (shape ``(B, ...)``) in nats, shape ``(B,)``."""
        z, logabsdet = self.transform(x, context)
        return self.base.log_prob(z) + logabsdet

    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """Draw ``n`` samples (with a context: ``n`` per context row, returned as ``(B*n, ...)``)."""
        x, _ = self.sample_and_log_prob(n, context)
        return x

    def sample_and_log_prob(self, n: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Samples and their log density, computed in one inverse pass."""
        if context is not None:
            context = context.repeat_interleave(n, dim=0)
            n = context.shape[0]
        z = self.base.sample(n, device=self._device(context), dtype=self._dtype())
        log_base = self.base.log_prob(z)
        x, logabsdet = self.transform.inverse(z, context)
        return x, log_base - logabsdet

    def _device(self, context: Tensor | None) -> torch.device:
        if context is not None:
            return context.device
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def _dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

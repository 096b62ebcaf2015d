"""Input checks of the WaveNet gate operations, shared by every implementation.

:mod:`waveflow_py.inference.ops` (the interface, the plain PyTorch version and the selector) and
:mod:`waveflow_py.inference.triton_kernels` (the fused version, which ``ops`` imports when it selects
it) both check their inputs with these, so the two modules depend one way only.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_gate_input", "check_residual_skip"]


def check_gate_input(h: Tensor) -> None:
    """``h`` is ``(B, 2C, ...)``: the input of ``GateOps.gate``."""
    if h.dim() < 2 or h.shape[1] % 2:
        raise ValueError(f"gate: expected (B, 2C, ...) with an even channel count, got {tuple(h.shape)}")


def check_residual_skip(x: Tensor, o: Tensor, skip: Tensor | None) -> None:
    """``o`` is ``(B, >= C + C_skip, ...)`` and ``skip`` matches ``x`` (``GateOps.residual_skip``)."""
    c = x.shape[1]
    c_skip = 0 if skip is None else skip.shape[1]
    if o.shape[0] != x.shape[0] or o.shape[2:] != x.shape[2:] or o.shape[1] < c + c_skip:
        raise ValueError(
            f"residual_skip: o must be (B, C + C_skip, ...) = ({x.shape[0]}, >= {c + c_skip}, "
            f"{', '.join(str(s) for s in x.shape[2:])}), got {tuple(o.shape)}"
        )
    if skip is not None and (skip.shape[0] != x.shape[0] or skip.shape[2:] != x.shape[2:]):
        raise ValueError(f"residual_skip: skip {tuple(skip.shape)} does not match x {tuple(x.shape)}")

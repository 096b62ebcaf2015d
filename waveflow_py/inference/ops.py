"""Per-layer WaveNet element-wise work behind one small interface, with a plain PyTorch version.

Every WaveNet-style residual layer (van den Oord et al. 2016, as used by WaveGlow and WaveFlow) does,
after its dilated convolution and conditioning add, the same element-wise work::

    g = tanh(h[:, :C]) * sigmoid(h[:, C:])           # gate            h: (B, 2C, *S) -> g: (B, C, *S)
    o = W_res_skip @ g                                # 1x1 conv (a GEMM, done by the caller)
    x = (x + o[:, :C]) * scale                        # residual add    scale = sqrt(0.5) or 1
    skip = skip + o[:, C:C + C_skip]                  # skip accumulate

:class:`GateOps` names the two element-wise steps; :class:`TorchGateOps` is the reference that works
on every device and dtype. :func:`select_gate_ops` returns the fused Triton version
(:mod:`waveflow_py.inference.triton_kernels`) on CUDA when Triton is importable and the plain one
otherwise, so callers never depend on Triton.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Protocol

import torch
from torch import Tensor

from waveflow_py.inference.gate_checks import check_gate_input, check_residual_skip

__all__ = ["GateOps", "TorchGateOps", "select_gate_ops", "triton_available"]

log = logging.getLogger(__name__)


class GateOps(Protocol):
    """The element-wise steps of a WaveNet residual layer (shapes in the module docstring)."""

    name: str

    def gate(self, h: Tensor, out: Tensor | None = None) -> Tensor:
        """``(B, 2C, *S) -> (B, C, *S)``: ``tanh(first half) * sigmoid(second half)`` (into ``out`` if given,
        a contiguous tensor of the result's shape, e.g. a preallocated row buffer)."""
        ...

    def residual_skip(
        self, x: Tensor, o: Tensor, skip: Tensor | None, scale: float, inplace: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``x = (x + o[:, :C]) * scale``; ``skip = skip + o[:, C:C + C_skip]`` (``skip`` None: none).
        ``inplace``: update ``x`` and ``skip`` themselves (contiguous) and return them."""
        ...


class TorchGateOps:
    """Reference implementation in plain PyTorch: any device, any floating dtype."""

    name = "torch"

    def gate(self, h: Tensor, out: Tensor | None = None) -> Tensor:
        check_gate_input(h)
        a, b = h.chunk(2, dim=1)
        if out is None:
            return torch.tanh(a) * torch.sigmoid(b)
        torch.tanh(a, out=out)
        return out.mul_(torch.sigmoid(b))

    def residual_skip(
        self, x: Tensor, o: Tensor, skip: Tensor | None, scale: float, inplace: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        check_residual_skip(x, o, skip)
        c = x.shape[1]
        res = o[:, :c]
        sk = None if skip is None else o[:, c : c + skip.shape[1]]
        if inplace:
            x.add_(res)
            if scale != 1.0:
                x.mul_(scale)
            if skip is not None:
                skip.add_(sk)
            return x, skip
        x = x + res
        if scale != 1.0:
            x = x * scale
        if skip is not None:
            skip = skip + sk
        return x, skip


def triton_available() -> bool:
    """True when the ``triton`` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


def select_gate_ops(device: torch.device | str, prefer: str | None = None) -> GateOps:
    """Pick the fastest working implementation for ``device``.

    ``prefer``: ``"torch"`` forces the plain version, ``"triton"`` asks for the fused one (ValueError
    when it cannot run here), ``None`` auto-selects: CUDA + Triton importable -> fused, else plain.
    The environment variable ``WAVEFLOW_FUSED=0`` turns auto-selection of the fused path off.
    """
    device = torch.device(device)
    if prefer not in (None, "torch", "triton"):
        raise ValueError(f"prefer: expected None, 'torch' or 'triton', got {prefer!r}")
    if prefer == "torch":
        return TorchGateOps()
    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    usable = triton_available() and (device.type == "cuda" or interpret)
    if prefer == "triton":
        if not usable:
            raise ValueError(
                f"prefer='triton': needs the triton package and a CUDA device (or TRITON_INTERPRET=1); "
                f"got device {device}, triton {'present' if triton_available() else 'absent'}"
            )
        from waveflow_py.inference.triton_kernels import TritonGateOps

        return TritonGateOps()
    if usable and device.type == "cuda" and os.environ.get("WAVEFLOW_FUSED", "1") != "0":
        from waveflow_py.inference.triton_kernels import TritonGateOps

        log.debug("using fused Triton gate kernels on %s", device)
        return TritonGateOps()
    return TorchGateOps()

"""Fused Triton kernels for the per-row element-wise work of a WaveNet layer (GPU fast path).

Two kernels replace six PyTorch launches per layer and row (see :mod:`waveflow_py.inference.ops`):

* ``gate``: ``g = tanh(a) * sigmoid(b)`` reading both halves of ``h`` (B, 2C, *S) in one pass;
* ``residual_skip``: ``x = (x + o[:, :C]) * scale`` and ``skip = skip + o[:, C:C + C_skip]``.

Each element is read and written by the same program, so ``out`` may alias an input (``inplace``).
Arithmetic is float32 inside the kernel whatever the storage dtype (fp32 / bf16 / fp16). Only ``tl.exp``
is used (tanh = 2 sigmoid(2a) - 1) so the kernels also run under Triton's CPU interpreter
(``TRITON_INTERPRET=1``), which the tests use. Nothing is compiled at import: ``triton`` is imported and
the kernels are defined on first use, and cached per interpreter mode.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import Tensor

from waveflow_py.inference.gate_checks import check_gate_input, check_residual_skip

__all__ = ["TritonGateOps"]

_BLOCK = 1024


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> dict[str, Any]:
    """Define (and let Triton JIT) the kernels; ``interpret`` only keys the cache."""
    import triton
    import triton.language as tl

    @triton.jit
    def gate_kernel(h_ptr, out_ptr, total, cn, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        idx = pid * BLOCK + tl.arange(0, BLOCK)
        mask = idx < total
        b = idx // cn
        r = idx - b * cn
        a_off = b * (2 * cn) + r
        a = tl.load(h_ptr + a_off, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(h_ptr + a_off + cn, mask=mask, other=0.0).to(tl.float32)
        tanh_a = 2.0 / (1.0 + tl.exp(-2.0 * a)) - 1.0
        sig_g = 1.0 / (1.0 + tl.exp(-g))
        tl.store(out_ptr + idx, (tanh_a * sig_g).to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def add_slice_kernel(dst_ptr, o_ptr, out_ptr, total, cn, o_cn, o_off, scale, BLOCK: tl.constexpr):
        # out[b, c, n] = (dst[b, c, n] + o[b, o_off_channels + c, n]) * scale
        pid = tl.program_id(0)
        idx = pid * BLOCK + tl.arange(0, BLOCK)
        mask = idx < total
        b = idx // cn
        r = idx - b * cn
        d = tl.load(dst_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        o = tl.load(o_ptr + b * o_cn + o_off + r, mask=mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + idx, ((d + o) * scale).to(out_ptr.dtype.element_ty), mask=mask)

    return {"gate": gate_kernel, "add_slice": add_slice_kernel}


def _get() -> dict[str, Any]:
    return _kernels(os.environ.get("TRITON_INTERPRET") == "1")


def _grid(total: int) -> tuple[int]:
    return ((total + _BLOCK - 1) // _BLOCK,)


class TritonGateOps:
    """Fused Triton implementation of :class:`~waveflow_py.inference.ops.GateOps` (same results as
    :class:`~waveflow_py.inference.ops.TorchGateOps` up to float rounding). Inputs may be any float dtype;
    non-contiguous inputs are made contiguous first."""

    name = "triton"

    def gate(self, h: Tensor, out: Tensor | None = None) -> Tensor:
        check_gate_input(h)
        h = h.contiguous()
        c = h.shape[1] // 2
        shape = (h.shape[0], c, *h.shape[2:])
        if out is None:
            out = torch.empty(shape, device=h.device, dtype=h.dtype)
        elif tuple(out.shape) != shape or not out.is_contiguous():
            raise ValueError(f"gate: out must be contiguous, of shape {shape}, got {tuple(out.shape)}")
        cn = out[0].numel()
        total = out.numel()
        if total:
            _get()["gate"][_grid(total)](h, out, total, cn, BLOCK=_BLOCK)
        return out

    def residual_skip(
        self, x: Tensor, o: Tensor, skip: Tensor | None, scale: float, inplace: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        check_residual_skip(x, o, skip)
        if inplace and not (x.is_contiguous() and (skip is None or skip.is_contiguous())):
            raise ValueError("residual_skip(inplace=True): x and skip must be contiguous")
        x, o = x.contiguous(), o.contiguous()
        n = x[0, 0].numel()
        o_cn = o.shape[1] * n
        kern = _get()["add_slice"]
        x_out = x if inplace else torch.empty_like(x)
        total = x.numel()
        if total:
            kern[_grid(total)](x, o, x_out, total, x.shape[1] * n, o_cn, 0, float(scale), BLOCK=_BLOCK)
        skip_out = None
        if skip is not None:
            skip = skip.contiguous()
            skip_out = skip if inplace else torch.empty_like(skip)
            total = skip.numel()
            if total:
                kern[_grid(total)](
                    skip, o, skip_out, total, skip.shape[1] * n, o_cn, x.shape[1] * n, 1.0, BLOCK=_BLOCK
                )
        return x_out, skip_out

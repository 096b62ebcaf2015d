"""Fused gate/residual/skip kernels: the Triton kernels (run by Triton's CPU interpreter) match the
plain PyTorch reference; auto-selection falls back to PyTorch without CUDA."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from waveflow_py.inference.ops import TorchGateOps, select_gate_ops

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(
    not HAS_TRITON, reason="triton is not installed: the fused kernels cannot be checked here"
)


def test_torch_ops_reference_maths() -> None:
    ops = TorchGateOps()
    h = torch.randn(2, 8, 3, 5)
    g = ops.gate(h)
    assert torch.equal(g, torch.tanh(h[:, :4]) * torch.sigmoid(h[:, 4:]))
    x, o, skip = torch.randn(2, 4, 7), torch.randn(2, 10, 7), torch.randn(2, 6, 7)
    x2, s2 = ops.residual_skip(x, o, skip, math.sqrt(0.5))
    torch.testing.assert_close(x2, (x + o[:, :4]) * math.sqrt(0.5))
    torch.testing.assert_close(s2, skip + o[:, 4:])


def test_bad_shapes_raise() -> None:
    ops = TorchGateOps()
    with pytest.raises(ValueError, match="even channel"):
        ops.gate(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="residual_skip"):
        ops.residual_skip(torch.randn(2, 4, 7), torch.randn(2, 5, 7), torch.randn(2, 4, 7), 1.0)


def test_auto_select_is_plain_on_cpu() -> None:
    assert select_gate_ops("cpu").name == "torch"
    with pytest.raises(ValueError, match="prefer"):
        select_gate_ops("cpu", prefer="cuda-please")


@needs_triton
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_triton_kernels_match_torch_under_interpreter(monkeypatch, dtype, tol) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    ops = select_gate_ops("cpu", prefer="triton")
    assert ops.name == "triton"
    ref = TorchGateOps()
    # sizes that do not divide the block, large |h| to exercise the saturating tanh/sigmoid
    h = (torch.randn(3, 2 * 5, 1, 333) * 6).to(dtype)
    torch.testing.assert_close(ops.gate(h).float(), ref.gate(h.float()), atol=tol, rtol=tol)
    x, o, skip = (
        torch.randn(3, 5, 1, 333).to(dtype),
        torch.randn(3, 12, 1, 333).to(dtype),
        torch.randn(3, 7, 1, 333).to(dtype),
    )
    for s in (skip, None):
        x2, s2 = ops.residual_skip(x, o, s, math.sqrt(0.5))
        rx, rs = ref.residual_skip(x.float(), o.float(), None if s is None else s.float(), math.sqrt(0.5))
        torch.testing.assert_close(x2.float(), rx, atol=tol, rtol=tol)
        if s is None:
            assert s2 is None
        else:
            torch.testing.assert_close(s2.float(), rs, atol=tol, rtol=tol)


@needs_triton
def test_triton_in_place_row_layout_matches_torch(monkeypatch) -> None:
    """The (rows, channels) layout of the cached WaveFlow row step: pre (M, 2C) -> gate buffer (M, C),
    h += rs[:, :C], skip += rs[:, C:] in place."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    ops, ref = select_gate_ops("cpu", prefer="triton"), TorchGateOps()
    pre, rs = torch.randn(37, 16), torch.randn(37, 16)
    out_t, out_r = torch.empty(37, 8), torch.empty(37, 8)
    assert ops.gate(pre, out=out_t) is out_t
    ref.gate(pre, out=out_r)
    torch.testing.assert_close(out_t, out_r)
    h, skip = torch.randn(37, 8), torch.randn(37, 8)
    h2, s2 = h.clone(), skip.clone()
    x_t, s_t = ops.residual_skip(h, rs, skip, 1.0, inplace=True)
    ref.residual_skip(h2, rs, s2, 1.0, inplace=True)
    assert x_t is h and s_t is skip
    torch.testing.assert_close(h, h2)
    torch.testing.assert_close(skip, s2)

"""AffineAutoregressive with ``identity_first_row=True`` (Parakeet's / L0SG's WaveFlow flow step): the
flow contract, row 0 copied, and the cached inverse equal to the reference."""

from __future__ import annotations

import torch

from tests.flows.contract import (
    check_gradients,
    check_invertible,
    check_logdet_jacobian,
    check_state_dict_roundtrip,
    perturb_parameters,
)
from waveflow_py.flows.causal import AffineAutoregressive, RowCache
from waveflow_py.nn.wavenet2d import WaveNet2D


def make() -> AffineAutoregressive:
    torch.manual_seed(3)
    net = WaveNet2D(1, 6, 3, 2, 2, (3, 3), [1, 2])
    return AffineAutoregressive(net, channels=1, scale_bound=None, identity_first_row=True)


def test_contract_and_first_row() -> None:
    t = make().double()
    perturb_parameters(t, std=0.3)
    x, ctx = torch.randn(2, 1, 6, 3, dtype=torch.float64), torch.randn(2, 3, 6, 3, dtype=torch.float64)
    check_invertible(t, x, ctx, atol=1e-10)
    check_logdet_jacobian(t, x[:, :, :4, :2], ctx[:, :, :4, :2], atol=1e-8)
    check_gradients(t, x, ctx)
    check_state_dict_roundtrip(make, t, x, ctx)
    y, _ = t(x, ctx)
    assert torch.equal(y[:, :, 0], x[:, :, 0]) and not torch.allclose(y[:, :, 1:], x[:, :, 1:])
    ref, ld_ref = t.inverse(y, ctx)
    fast, ld_fast = t.inverse(y, ctx, cache=RowCache())
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld_fast, ld_ref, atol=1e-10, rtol=0)

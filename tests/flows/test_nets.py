"""Conditioner nets: zero-initialised outputs, context handling."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.flows import MLP, ConvNet1d, ConvNet2d, ResidualMLP


def test_zero_init_outputs_zero_and_can_be_turned_off() -> None:
    x = torch.randn(3, 4)
    for net in (MLP(4, 6), ResidualMLP(4, 6)):
        assert torch.equal(net(x), torch.zeros(3, 6))
    assert not torch.equal(MLP(4, 6, zero_init=False)(x), torch.zeros(3, 6))
    assert torch.equal(ConvNet1d(2, 3)(torch.randn(2, 2, 7)), torch.zeros(2, 3, 7))


def test_conv_nets_take_map_or_vector_context() -> None:
    net = ConvNet2d(2, 4, 8, context_channels=3, zero_init=False)
    x = torch.randn(2, 2, 3, 5)
    vec = torch.randn(2, 3)
    as_map = vec[:, :, None, None].expand(-1, -1, 3, 5)
    torch.testing.assert_close(net(x, vec), net(x, as_map))
    assert net(x, vec).shape == (2, 4, 3, 5)
    with pytest.raises(ValueError, match="context positions"):
        net(x, torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="expects a context"):
        net(x)


def test_mlp_context_checks() -> None:
    net = MLP(2, 2, context_features=3, zero_init=False)
    x = torch.randn(4, 2)
    c = torch.randn(4, 3)
    assert not torch.allclose(net(x, c), net(x, c + 1))
    with pytest.raises(ValueError, match=r"expected a context of shape \(4, 3, \.\.\.\)"):
        net(x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="built without context"):
        MLP(2, 2)(x, c)
    with pytest.raises(ValueError, match="odd"):
        ConvNet1d(2, 2, kernel_size=4)

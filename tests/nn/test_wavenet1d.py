"""1-D WaveNet (WaveGlow's conditioner): shapes, identity start, gradients, bad arguments."""

from __future__ import annotations

import pytest
import torch

from tests.flows.contract import perturb_parameters
from waveflow_py.nn.gated import gated_tanh, split_residual_skip
from waveflow_py.nn.wavenet1d import WaveNet1D


def test_shapes_and_zero_start() -> None:
    net = WaveNet1D(4, 16, 12, 8, 10, layers=3, kernel_size=3, dilation_cycle=[1, 2])
    assert net.dilations == [1, 2, 1]
    out = net(torch.randn(2, 4, 50), torch.randn(2, 10, 50))
    assert out.shape == (2, 8, 50)
    assert torch.all(out == 0)  # zero-initialised end conv: the coupling starts as the identity


def test_gradients_reach_every_parameter() -> None:
    net = WaveNet1D(2, 8, 8, 4, 3, layers=2)
    perturb_parameters(net)
    net(torch.randn(1, 2, 20), torch.randn(1, 3, 20)).pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_non_causal_receptive_field() -> None:
    net = WaveNet1D(1, 8, 8, 2, 3, layers=2, kernel_size=3, dilation_cycle=[1, 2])
    perturb_parameters(net)
    x, aux = torch.randn(1, 1, 30), torch.randn(1, 3, 30)
    ref = net(x, aux)
    x2 = x.clone()
    x2[..., 15] += 1.0
    diff = (net(x2, aux) - ref).abs().sum(dim=1)[0]
    changed = torch.nonzero(diff > 0).flatten().tolist()
    assert changed == list(range(15 - 3, 15 + 4))  # receptive field 1 + 2 * (1 + 2), both sides


def test_gated_pieces_and_bad_arguments() -> None:
    pre = torch.randn(2, 6, 5)
    torch.testing.assert_close(gated_tanh(pre), torch.tanh(pre[:, :3]) * torch.sigmoid(pre[:, 3:]))
    res, skip = split_residual_skip(torch.randn(2, 7, 5), skip_channels=3)
    assert res is not None and res.shape[1] == 4 and skip.shape[1] == 3
    res, skip = split_residual_skip(torch.randn(2, 3, 5), skip_channels=3)
    assert res is None
    with pytest.raises(ValueError):
        gated_tanh(torch.randn(2, 5, 3))
    with pytest.raises(ValueError):
        WaveNet1D(1, 8, 8, 2, 3, layers=2, kernel_size=4)

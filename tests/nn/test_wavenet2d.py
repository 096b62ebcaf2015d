"""2-D WaveNet (WaveFlow's conditioner): causality along the height, the row cache, folding."""

from __future__ import annotations

import pytest
import torch

from tests.flows.contract import perturb_parameters
from waveflow_py.nn.wavenet2d import WaveNet2D
from waveflow_py.nn.weight_norm import folded_weight


def make_net(
    height_dilations: list[int], kernel_size: tuple[int, int] = (3, 3), channels: int = 8
) -> WaveNet2D:
    net = WaveNet2D(1, channels, 5, 2, len(height_dilations), kernel_size, height_dilations).double()
    perturb_parameters(net, std=0.3)
    return net


CASES = [
    ([1, 1, 1], (3, 3)),
    ([1, 2, 4], (3, 3)),
    ([4, 1, 8], (2, 5)),
    ([2, 3], (4, 3)),
    ([16], (3, 3)),
    ([1, 2], (3, 4)),
]


@pytest.mark.parametrize(("dilations", "kernel"), CASES)
def test_causal_inclusive_along_height(dilations: list[int], kernel: tuple[int, int]) -> None:
    net = make_net(dilations, kernel)
    x = torch.randn(2, 1, 12, 6, dtype=torch.float64)
    aux = torch.randn(2, 5, 12, 6, dtype=torch.float64)
    ref = net(x, aux)
    for i in (0, 5, 11):
        x2 = x.clone()
        x2[:, :, i] += 1.0
        out = net(x2, aux)
        torch.testing.assert_close(out[:, :, :i], ref[:, :, :i], rtol=0, atol=0)
        assert not torch.allclose(out[:, :, i], ref[:, :, i])


@pytest.mark.parametrize(("dilations", "kernel"), CASES)
def test_row_steps_equal_parallel_pass(dilations: list[int], kernel: tuple[int, int]) -> None:
    net = make_net(dilations, kernel)
    x = torch.randn(2, 1, 20, 7, dtype=torch.float64)
    aux = torch.randn(2, 5, 20, 7, dtype=torch.float64)
    ref = net(x, aux)
    state = net.start(aux, batch=2, width=7)
    rows = torch.stack([net.step(x[:, :, i], state).clone() for i in range(20)], dim=2)
    torch.testing.assert_close(rows, ref.detach(), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="covers 20 rows"):
        net.step(x[:, :, 0], state)


def test_row_steps_in_bfloat16_are_close() -> None:
    net = make_net([1, 2], channels=16).float()
    x = torch.randn(1, 1, 8, 9)
    aux = torch.randn(1, 5, 8, 9)
    ref = net(x, aux).detach()
    state = net.start(aux, batch=1, width=9, dtype=torch.bfloat16)
    rows = torch.stack([net.step(x[:, :, i], state).float() for i in range(8)], dim=2)
    assert (rows - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-3


def test_start_folds_current_weights_without_mutating_the_module() -> None:
    net = make_net([1, 2])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(1, 1, 6, 5, dtype=torch.float64)
    aux = torch.randn(1, 5, 6, 5, dtype=torch.float64)
    net.start(aux, batch=1, width=5)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    # change the weights (as training does): a new start reads them, nothing is stale
    perturb_parameters(net, std=0.3, seed=7)
    state = net.start(aux, batch=1, width=5)
    rows = torch.stack([net.step(x[:, :, i], state).clone() for i in range(6)], dim=2)
    torch.testing.assert_close(rows, net(x, aux).detach(), rtol=0, atol=1e-10)
    layer = net.layers[0].conv
    torch.testing.assert_close(folded_weight(layer), layer.weight.detach())


def test_bad_inputs() -> None:
    net = make_net([1])
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="aux"):
        net(x, torch.randn(1, 4, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="aux"):
        net(x, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aux"):
        net.start(torch.randn(1, 5, 4, 6, dtype=torch.float64), batch=1, width=5)
    with pytest.raises(ValueError, match="dilations"):
        WaveNet2D(1, 4, 5, 2, 2, (3, 3), [1])


def test_start_recycles_a_finished_state() -> None:
    net = make_net([1, 2])
    x = torch.randn(1, 1, 6, 5, dtype=torch.float64)
    aux = torch.randn(1, 5, 6, 5, dtype=torch.float64)
    ref = net(x, aux).detach()
    old = net.start(aux, batch=1, width=5)
    for _ in range(6):  # leave garbage in every buffer
        net.step(torch.randn(1, 1, 5, dtype=torch.float64), old)
    state = net.start(aux, batch=1, width=5, reuse=old)
    assert state.layers[0].ring.data_ptr() in {p.ring.data_ptr() for p in old.layers}
    rows = torch.stack([net.step(x[:, :, i], state).clone() for i in range(6)], dim=2)
    torch.testing.assert_close(rows, ref, rtol=0, atol=1e-10)
    # a state of another shape or dtype is simply not recycled
    other = net.start(torch.randn(2, 5, 6, 3, dtype=torch.float64), batch=2, width=3, reuse=state)
    assert other.layers[0].ring.shape[-1] == 6

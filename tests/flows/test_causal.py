"""AffineAutoregressive (WaveFlow's flow step along the height): the flow contract, strict causality,
cached inverse == reference inverse, the stable scale."""

from __future__ import annotations

import pytest
import torch

from tests.flows.contract import (
    check_bad_inputs,
    check_gradients,
    check_invertible,
    check_logdet_jacobian,
    check_state_dict_roundtrip,
    perturb_parameters,
)
from waveflow_py.flows.causal import AffineAutoregressive, CausalConditioner, RowCache
from waveflow_py.nn.wavenet2d import WaveNet2D


def make(
    channels: int = 1, dilations: tuple[int, ...] = (1, 2), scale_bound: float | None = 8.0
) -> AffineAutoregressive:
    torch.manual_seed(3)
    net = WaveNet2D(channels, 6, 3, 2 * channels, len(dilations), (3, 3), list(dilations))
    return AffineAutoregressive(net, channels=channels, scale_bound=scale_bound)


def data(batch: int = 2, channels: int = 1, h: int = 5, w: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, channels, h, w), torch.randn(batch, 3, h, w)


def test_wavenet2d_follows_the_protocol() -> None:
    assert isinstance(make().conditioner, CausalConditioner)


@pytest.mark.parametrize("channels", [1, 2])
def test_contract(channels: int) -> None:
    t = make(channels).double()
    perturb_parameters(t, std=0.3)
    x, ctx = (a.double() for a in data(channels=channels))
    check_invertible(t, x, ctx, atol=1e-10)
    check_logdet_jacobian(t, x[:, :, :4, :2], ctx[:, :, :4, :2], atol=1e-8)
    check_gradients(t, x, ctx)
    check_state_dict_roundtrip(lambda: make(channels), t, x, ctx)
    check_bad_inputs(t, x, ctx)


def test_identity_at_initialisation() -> None:
    t = make()
    x, ctx = data()
    y, ld = t(x, ctx)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ld, torch.zeros(2))


def test_strictly_causal_along_height() -> None:
    t = make(dilations=(1, 3)).double()
    perturb_parameters(t, std=0.3)
    x, ctx = (a.double() for a in data(h=9))
    y, _ = t(x, ctx)
    for i in range(9):
        x2 = x.clone()
        x2[:, :, i] += 0.7
        y2, _ = t(x2, ctx)
        torch.testing.assert_close(y2[:, :, :i], y[:, :, :i], rtol=0, atol=0)  # rows above: untouched
        # row i itself changes only through x_i (its scale and shift see rows < i only)
        scale = (y2[:, :, i] - y[:, :, i]) / 0.7
        params = t.conditioner(torch.nn.functional.pad(x[:, :, :-1], (0, 0, 1, 0)), ctx)
        torch.testing.assert_close(scale, torch.exp(t._split(params)[0][:, :, i]))


@pytest.mark.parametrize("dilations", [(1, 1), (1, 2, 4), (3,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cached_inverse_equals_reference(dilations: tuple[int, ...], dtype: torch.dtype) -> None:
    t = make(dilations=dilations).to(dtype)
    perturb_parameters(t, std=0.3)
    y, ctx = (a.to(dtype) for a in data(h=10, w=4))
    x_ref, ld_ref = t.inverse(y, ctx)
    cache = RowCache()
    x_fast, ld_fast = t.inverse(y, ctx, cache=cache)
    assert cache.state is not None and cache.state.row == 10
    atol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(x_fast, x_ref.detach(), rtol=0, atol=atol)
    torch.testing.assert_close(ld_fast, ld_ref.detach(), rtol=0, atol=atol * 10)


def test_scale_is_bounded() -> None:
    t = make(scale_bound=2.0)
    with torch.no_grad():
        t.conditioner.end_conv.bias.fill_(100.0)  # huge raw log-scale
    x, ctx = data()
    y, ld = t(x, ctx)
    assert torch.isfinite(y).all()
    assert float(ld.detach().max()) <= 2.0 * x[0].numel() + 1e-4
    x_back, _ = t.inverse(y, ctx, cache=RowCache())
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=1e-4)


def test_bad_cache_and_scale_bound() -> None:
    t = make()
    x, ctx = data()
    with pytest.raises(ValueError, match="RowCache"):
        t.inverse(x, ctx, cache="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="row-aligned"):
        t(x, ctx[:, :, :3])
    with pytest.raises(ValueError):
        make(scale_bound=0.0)

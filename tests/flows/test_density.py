"""``Flow`` densities: they integrate to one, and sampling agrees with ``log_prob``."""

from __future__ import annotations

import pytest
import torch

from tests.flows.contract import perturb_parameters
from waveflow_py.flows import (
    MAF,
    ActNorm,
    AffineCoupling,
    Composite,
    ConvNet1d,
    DiagonalScaling,
    Flow,
    InvConv1x1,
    Planar,
    ReversePermutation,
    StandardNormal,
)


def _tame_planar(transform: torch.nn.Module) -> None:
    """Give Planar layers |w| ~ 1: with a tiny w the u-hat fix makes u_hat (a shift) huge."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in transform.modules():
            if isinstance(m, Planar):
                sign = torch.where(torch.rand(m.w.shape, generator=gen) < 0.5, -1.0, 1.0).double()
                m.w.copy_(sign * (0.8 + 0.4 * torch.rand(m.w.shape, generator=gen).double()))
                m.u.copy_(torch.randn(m.u.shape, generator=gen).double())
                m.b.fill_(0.3)


def _trapezoid_weights(n: int, h: float) -> torch.Tensor:
    w = torch.full((n,), h, dtype=torch.float64)
    w[0] = w[-1] = h / 2
    return w


def test_one_dimensional_flow_integrates_to_one() -> None:
    transform = Composite([Planar(1), DiagonalScaling(1), MAF(1, 8), Planar(1), ActNorm(1)]).double()
    with torch.no_grad():
        transform(torch.randn(64, 1, dtype=torch.float64) * 1.5 + 0.3)  # ActNorm init
    perturb_parameters(transform, std=0.3)
    _tame_planar(transform)
    flow = Flow(transform, StandardNormal(1))
    grid = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    with torch.no_grad():
        density = flow.log_prob(grid[:, None]).exp()
    mass = float((density * _trapezoid_weights(grid.numel(), float(grid[1] - grid[0]))).sum())
    assert abs(mass - 1.0) < 1e-2, mass
    assert float(density.max()) > 1.05 * float(density.min()) + 1e-3  # not a flat density


def test_two_dimensional_flow_integrates_to_one() -> None:
    transform = Composite(
        [
            AffineCoupling(2, hidden_features=16),
            ReversePermutation(2),
            AffineCoupling(2, hidden_features=16),
            InvConv1x1(2, seed=0),
            MAF(2, 16),
            Planar(2),
        ]
    ).double()
    perturb_parameters(transform, std=0.15)  # keeps (almost) all mass inside [-8, 8]^2
    _tame_planar(transform)
    flow = Flow(transform, StandardNormal(2))
    g = torch.linspace(-8, 8, 321, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        density = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], dim=1)).exp().reshape(321, 321)
    w = _trapezoid_weights(321, float(g[1] - g[0]))
    mass = float(w @ density @ w)
    assert abs(mass - 1.0) < 1e-2, mass
    # the flow changed the density: it is not the standard normal any more
    points = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    base = StandardNormal(2).log_prob(points).exp().reshape(321, 321)
    assert float((density - base).abs().max()) > 1e-2


def test_sample_and_log_prob_agree_with_log_prob_conditional() -> None:
    net = ConvNet1d(2, 4, 8, context_channels=3)
    transform = Composite(
        [
            ActNorm(4),
            InvConv1x1(4),
            AffineCoupling(4, net, mask="half", conditional=True),
            ReversePermutation(4),
        ]
    ).double()
    with torch.no_grad():
        transform(torch.randn(4, 4, 6, dtype=torch.float64), torch.randn(4, 3, 6, dtype=torch.float64))
    perturb_parameters(transform)
    flow = Flow(transform, StandardNormal((4, 6)))
    ctx = torch.randn(2, 3, 6, dtype=torch.float64)
    x, lp = flow.sample_and_log_prob(3, ctx)
    assert x.shape == (6, 4, 6) and lp.shape == (6,)
    torch.testing.assert_close(flow.log_prob(x, ctx.repeat_interleave(3, dim=0)), lp)


def test_composite_rejects_context_when_no_member_takes_one() -> None:
    t = Composite([ActNorm(2), ReversePermutation(2)])
    with pytest.raises(ValueError, match="takes no context"):
        t(torch.randn(3, 2), torch.randn(3, 1))

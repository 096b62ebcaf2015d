"""Planar flow: the u-hat constraint and the numerical inverse."""

from __future__ import annotations

import torch

from tests.flows.contract import check_invertible
from waveflow_py.flows import Planar


def test_u_hat_keeps_the_map_invertible_for_adversarial_u() -> None:
    t = Planar(3).double()
    with torch.no_grad():
        t.w.copy_(torch.tensor([1.0, -2.0, 0.5]))
        t.u.copy_(-10.0 * t.w / (t.w @ t.w))  # raw w^T u = -10: not invertible without the fix
        t.b.fill_(0.3)
    c = t.w @ t.u_hat()
    assert float(c.detach()) > -1.0
    # strictly increasing along w, finite logdet everywhere
    alphas = torch.linspace(-20, 20, 2001, dtype=torch.float64)
    x = alphas[:, None] * t.w.detach() / (t.w @ t.w).detach()
    y, ld = t(x)
    assert torch.all((y @ t.w).diff() > 0) and torch.isfinite(ld).all()
    check_invertible(t, x, atol=1e-8)


def test_inverse_solves_to_tolerance_in_float64() -> None:
    t = Planar(4).double()
    with torch.no_grad():
        t.u.mul_(5.0)
        t.b.fill_(-0.7)
    x = 3.0 * torch.randn(50, 4, dtype=torch.float64)
    y, _ = t(x)
    x_back, _ = t.inverse(y)
    assert float((x_back - x).detach().abs().max()) < 1e-9


def test_gradient_through_numerical_inverse_is_correct() -> None:
    t = Planar(2).double()
    with torch.no_grad():
        t.u.mul_(3.0)
    y = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    # d inverse / d y against finite differences (the Newton step carries the implicit gradient)
    assert torch.autograd.gradcheck(lambda a: t.inverse(a)[0], (y,))
    # d loss / d parameters against central finite differences
    r = torch.randn(3, 2, dtype=torch.float64)

    def loss() -> torch.Tensor:
        x, ld = t.inverse(y.detach())
        return (x * r).sum() + ld.sum()

    t.zero_grad()
    loss().backward()
    eps = 1e-6
    for p in t.parameters():
        numeric = torch.zeros_like(p)
        for k in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[k] += eps
                up = loss()
                p.view(-1)[k] -= 2 * eps
                down = loss()
                p.view(-1)[k] += eps
            numeric.view(-1)[k] = (up - down) / (2 * eps)
        torch.testing.assert_close(p.grad, numeric, atol=1e-6, rtol=1e-5)

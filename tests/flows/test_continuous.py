"""Continuous normalizing flow (FFJORD) and its Dormand-Prince solver.

Tolerances: solves run in float64 with rtol = atol = 1e-8 unless stated, so inversion and the
log-determinant are checked to ~1e-6 (the solver's global error, not float round-off).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.flows.contract import (
    check_bad_inputs,
    check_gradients,
    check_invertible,
    check_logdet_jacobian,
    check_state_dict_roundtrip,
)
from waveflow_py.flows import CNF, Composite, Flow, StandardNormal
from waveflow_py.flows.ode import ODESolverError, odeint

TOL = 1e-8


def _cnf(features: int = 2, **kw: object) -> CNF:
    kw.setdefault("rtol", TOL)
    kw.setdefault("atol", TOL)
    return CNF(features, hidden_features=8, num_layers=2, **kw).double()  # type: ignore[arg-type]


def _jacobian_logdets(fn, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """log|det| of each row's Jacobian of a batched map (B, D) -> (B, D), by autograd."""
    jac = torch.autograd.functional.jacobian(fn, x)  # (B, D, B, D)
    blocks = torch.stack([jac[b, :, b, :] for b in range(x.shape[0])])
    return torch.linalg.slogdet(blocks)[1]


# ------------------------------------------------------------------------------------------ solver


def test_dopri5_matches_exponential_both_directions() -> None:
    y0 = (torch.tensor([1.0, 2.0], dtype=torch.float64),)
    (y,), stats = odeint(lambda t, y: (-y[0],), y0, 0.0, 2.0, rtol=1e-9, atol=1e-9)
    assert torch.allclose(y, y0[0] * math.exp(-2.0), rtol=1e-7, atol=0)
    assert stats.accepted > 0 and stats.nfe >= 6 * stats.accepted
    (back,), _ = odeint(lambda t, y: (-y[0],), (y,), 2.0, 0.0, rtol=1e-9, atol=1e-9)
    assert torch.allclose(back, y0[0], rtol=1e-7, atol=0)


def test_dopri5_time_dependent_and_tolerance_controls_error() -> None:
    # dy/dt = cos(t) y  ->  y(t) = exp(sin t)
    def f(t: float, y: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (math.cos(t) * y[0],)

    exact = math.exp(math.sin(5.0))
    errs = []
    for tol in (1e-3, 1e-6, 1e-9):
        (y,), _ = odeint(f, (torch.ones(1, dtype=torch.float64),), 0.0, 5.0, rtol=tol, atol=tol)
        errs.append(abs(float(y) - exact))
    assert errs[2] < errs[0] and errs[2] < 1e-6


def test_solver_backprop_gives_analytic_gradient() -> None:
    k = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (y,), _ = odeint(
        lambda t, y: (-k * y[0],), (torch.ones((), dtype=torch.float64),), 0.0, 1.5, rtol=1e-10, atol=1e-10
    )
    y.backward()
    assert k.grad is not None
    assert math.isclose(float(k.grad), -1.5 * math.exp(-0.7 * 1.5), rel_tol=1e-6)


def test_rk4_fixed_steps_and_solver_errors() -> None:
    (y,), stats = odeint(
        lambda t, y: (-y[0],), (torch.ones(1, dtype=torch.float64),), 0.0, 1.0, method="rk4", num_steps=20
    )
    assert stats.nfe == 80 and abs(float(y) - math.exp(-1)) < 1e-6
    with pytest.raises(ValueError, match="method"):
        odeint(lambda t, y: y, (torch.ones(1),), 0.0, 1.0, method="euler")
    with pytest.raises(ODESolverError, match="max_steps"):
        odeint(
            lambda t, y: (50 * torch.cos(50 * t * y[0]),),
            (torch.ones(1, dtype=torch.float64),),
            0.0,
            10.0,
            rtol=1e-10,
            atol=1e-10,
            max_steps=5,
        )


# --------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("context_features", [None, 2])
def test_shared_contract_suite(context_features: int | None) -> None:
    """The shared contract helpers (tests/flows/contract.py), float64, solver tolerance 1e-8."""

    def factory() -> CNF:
        return _cnf(3, context_features=context_features)

    torch.manual_seed(0)
    cnf = factory()
    x = torch.randn(3, 3, dtype=torch.float64)
    ctx = None if context_features is None else torch.randn(3, context_features, dtype=torch.float64)
    check_invertible(cnf, x, ctx, atol=1e-6)
    check_logdet_jacobian(cnf, x, ctx, atol=1e-6)
    check_gradients(cnf, x, ctx)
    check_state_dict_roundtrip(factory, cnf, x, ctx)
    check_bad_inputs(cnf, x, ctx, vector_only=True)


def test_inverse_of_forward_is_identity() -> None:
    cnf = _cnf(3)
    x = torch.randn(5, 3, dtype=torch.float64)
    z, _ = cnf(x)
    assert not torch.allclose(z, x, atol=1e-3)  # the flow does something
    x_back, _ = cnf.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-6)


def test_logabsdet_equals_autograd_jacobian_and_cancels() -> None:
    cnf = _cnf(2, trace="exact")
    x = torch.randn(3, 2, dtype=torch.float64)
    z, ld = cnf(x)
    assert ld.shape == (3,)
    expected = _jacobian_logdets(lambda a: cnf(a)[0], x)
    assert torch.allclose(ld, expected, atol=1e-6)
    _, ld_inv = cnf.inverse(z)
    assert torch.allclose(ld + ld_inv, torch.zeros(3, dtype=torch.float64), atol=1e-6)


def test_custom_dynamics_on_audio_shaped_input() -> None:
    class ConvDynamics(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, padding=1)

        def forward(self, t: torch.Tensor, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
            return torch.tanh(self.conv(z)) * (1 + t)

    cnf = CNF(6, dynamics=ConvDynamics(), trace="exact", rtol=TOL, atol=TOL).double()
    x = torch.randn(2, 2, 3, dtype=torch.float64)
    z, ld = cnf(x)
    assert z.shape == x.shape and ld.shape == (2,)
    expected = _jacobian_logdets(lambda a: cnf(a.reshape(2, 2, 3))[0].reshape(2, 6), x.reshape(2, 6))
    assert torch.allclose(ld, expected, atol=1e-6)
    assert torch.allclose(cnf.inverse(z)[0], x, atol=1e-6)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(noise: str) -> None:
    cnf = _cnf(3, noise=noise, rtol=1e-6, atol=1e-6)
    x = torch.randn(1, 3, dtype=torch.float64)
    with torch.no_grad():
        cnf.trace = "exact"
        _, exact = cnf(x)
        cnf.trace = "hutchinson"
        n = 4000
        _, est = cnf(x.expand(n, 3).contiguous())  # one independent probe per row
    assert est.std() > 0  # really stochastic
    stderr = float(est.std()) / math.sqrt(n)
    assert abs(float(est.mean()) - float(exact)) < 4 * stderr + 1e-5


def test_hutchinson_rademacher_is_exact_in_one_dimension() -> None:
    cnf = _cnf(1, trace="hutchinson")  # e^2 = 1 for Rademacher probes
    x = torch.randn(4, 1, dtype=torch.float64)
    _, ld_h = cnf(x)
    cnf.trace = "exact"
    _, ld_e = cnf(x)
    assert torch.allclose(ld_h, ld_e, atol=1e-7)


def test_auto_trace_resolves_by_dimension() -> None:
    assert CNF(2).trace_mode == "exact"
    assert CNF(20).trace_mode == "hutchinson"
    assert CNF(20, exact_trace_max_features=32).trace_mode == "exact"


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_gradients_reach_every_parameter(trace: str) -> None:
    cnf = CNF(2, hidden_features=8, num_layers=2, context_features=3, trace=trace, rtol=1e-4, atol=1e-4)
    flow = Flow(cnf, StandardNormal(2))
    x, ctx = torch.randn(6, 2), torch.randn(6, 3)
    loss = -flow.log_prob(x, ctx).mean()
    loss.backward()
    for name, p in cnf.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_conditional_cnf_uses_context_and_inverts() -> None:
    cnf = _cnf(2, context_features=2)
    x = torch.randn(4, 2, dtype=torch.float64)
    c1, c2 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    z1, ld1 = cnf(x, c1)
    z2, _ = cnf(x, c2)
    assert not torch.allclose(z1, z2, atol=1e-4)
    x_back, ld_back = cnf.inverse(z1, c1)
    assert torch.allclose(x_back, x, atol=1e-6)
    assert torch.allclose(ld1 + ld_back, torch.zeros(4).double(), atol=1e-6)
    assert cnf.accepts_context and not CNF(2).accepts_context


@pytest.mark.parametrize("conditioning", ["concatsquash", "concat"])
def test_time_conditioning_variants_and_rk4(conditioning: str) -> None:
    cnf = _cnf(2, time_conditioning=conditioning, method="rk4", num_steps=40)
    x = torch.randn(3, 2, dtype=torch.float64)
    z, ld = cnf(x)
    assert cnf.last_stats.nfe == 160
    x_back, ld_back = cnf.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-5)
    assert torch.allclose(ld + ld_back, torch.zeros(3).double(), atol=1e-5)


def test_no_grad_solve_builds_no_graph_and_sampling_works() -> None:
    flow = Flow(CNF(2, hidden_features=8, num_layers=2, rtol=1e-4, atol=1e-4), StandardNormal(2))
    with torch.no_grad():
        x, logp = flow.sample_and_log_prob(5)
        assert x.grad_fn is None and logp.grad_fn is None
        assert torch.allclose(flow.log_prob(x), logp, atol=1e-3)


def test_state_dict_round_trip() -> None:
    a = _cnf(2)
    b = _cnf(2)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 2, dtype=torch.float64)
    za, lda = a(x)
    zb, ldb = b(x)
    assert torch.equal(za, zb) and torch.equal(lda, ldb)


def test_bad_input_raises_value_error() -> None:
    cnf = CNF(2)
    with pytest.raises(ValueError, match="rank"):
        cnf(torch.randn(4))
    with pytest.raises(ValueError, match="dimension 1"):
        cnf(torch.randn(4, 3))
    with pytest.raises(ValueError, match="non-finite"):
        cnf(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="floating"):
        cnf(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="takes no context"):
        cnf(torch.randn(4, 2), torch.randn(4, 1))
    with pytest.raises(ValueError, match="expects a context"):
        CNF(2, context_features=1).inverse(torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch size"):
        CNF(2, context_features=1)(torch.randn(4, 2), torch.randn(3, 1))
    for kw in (
        {"trace": "bogus"},
        {"noise": "uniform"},
        {"method": "euler"},
        {"rtol": 0.0},
        {"integration_time": -1.0},
        {"time_conditioning": "film"},
        {"activation": "relu6"},
    ):
        with pytest.raises(ValueError):
            CNF(2, **kw)  # type: ignore[arg-type]


def test_inside_a_composite() -> None:
    flow = Composite([_cnf(2), _cnf(2)])
    x = torch.randn(3, 2, dtype=torch.float64)
    z, ld = flow(x)
    x_back, ld_back = flow.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-6)
    assert torch.allclose(ld + ld_back, torch.zeros(3).double(), atol=1e-6)

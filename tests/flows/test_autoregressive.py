"""MADE's autoregressive masks, MAF (parallel density, sequential sampling) and IAF (the reverse)."""

from __future__ import annotations

import pytest
import torch

from tests.flows.contract import check_invertible, perturb_parameters
from waveflow_py.flows import IAF, MADE, MAF, Inverse


def _dependency(made: MADE, context: torch.Tensor | None = None) -> torch.Tensor:
    """(multiplier, D, D) boolean: does output block k, feature i depend on input j?"""
    d = made.features
    x = torch.randn(1, d, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda a: made(a, context), x)  # (1, k*D, 1, D)
    return (jac[0, :, 0, :] != 0).reshape(made.output_multiplier, d, d)


@pytest.mark.parametrize("order", ["sequential", "reverse", "random", [3, 1, 4, 2]])
def test_made_is_autoregressive_in_its_order(order: object) -> None:
    made = MADE(4, 32, 3, output_multiplier=2, order=order, seed=0).double()  # type: ignore[arg-type]
    perturb_parameters(made)
    deg = made.degrees
    allowed = deg[None, :] < deg[:, None]  # (i, j): input j may feed output i
    dep = _dependency(made)
    for k in range(2):
        assert not torch.any(dep[k] & ~allowed), f"block {k} depends on a later input"
    # with 32 hidden units everything allowed is actually connected
    assert torch.equal(dep[0], allowed)
    if isinstance(order, list):
        assert deg.tolist() == order


def test_made_orders_differ_and_random_is_seeded() -> None:
    assert MADE(5, 8, order="reverse").degrees.tolist() == [5, 4, 3, 2, 1]
    assert torch.equal(MADE(5, 8, order="random", seed=3).degrees, MADE(5, 8, order="random", seed=3).degrees)
    with pytest.raises(ValueError, match="permutation of 1..3"):
        MADE(3, 8, order=[1, 1, 2])
    with pytest.raises(ValueError, match="order"):
        MADE(3, 8, order="zigzag")


def test_made_context_feeds_every_output() -> None:
    made = MADE(3, 16, context_features=2).double()
    perturb_parameters(made)
    x = torch.randn(2, 3, dtype=torch.float64)
    ctx = torch.randn(2, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda c: made(x, c), ctx)  # (2, 3, 2, 2)
    assert torch.all(jac[0, :, 0, :].abs().sum(dim=1) > 0)
    assert torch.equal(_dependency(made, ctx[:1]), _dependency(made, ctx[1:]))  # masks unchanged
    with pytest.raises(ValueError, match="expects a context"):
        made(x)


def test_made_single_feature_depends_only_on_context() -> None:
    made = MADE(1, 8, output_multiplier=2, context_features=2).double()
    perturb_parameters(made)
    assert not torch.any(_dependency(made, torch.randn(1, 2, dtype=torch.float64)))


class _CallCounter:
    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        module.register_forward_hook(self._hook)

    def _hook(self, *_: object) -> None:
        self.calls += 1


def test_maf_density_is_one_pass_sampling_is_d_passes() -> None:
    maf = MAF(5, 16, order="random", seed=2)
    perturb_parameters(maf)
    counter = _CallCounter(maf.made)
    x = torch.randn(3, 5)
    y, _ = maf(x)
    assert counter.calls == 1
    check_invertible(maf, x, atol=1e-5)
    counter.calls = 0
    maf.inverse(y)
    assert counter.calls == 5


def test_iaf_is_inverse_of_maf_sampling_is_one_pass() -> None:
    iaf = IAF(4, 16, context_features=3)
    assert isinstance(iaf, Inverse) and isinstance(iaf.base_transform, MAF)
    perturb_parameters(iaf)
    counter = _CallCounter(iaf.base_transform.made)
    z, ctx = torch.randn(6, 4), torch.randn(6, 3)
    x, ld_sample = iaf.inverse(z, ctx)  # noise -> data: parallel
    assert counter.calls == 1
    counter.calls = 0
    z_back, ld_density = iaf(x, ctx)  # data -> noise: sequential
    assert counter.calls == 4
    torch.testing.assert_close(z_back, z, atol=1e-5, rtol=0)
    torch.testing.assert_close(ld_sample + ld_density, torch.zeros(6), atol=1e-5, rtol=0)
    # the same weights read the other way round are exactly MAF's maps
    torch.testing.assert_close(iaf.base_transform(z, ctx)[0], x)


def test_maf_starts_at_identity() -> None:
    x = torch.randn(3, 4)
    y, ld = MAF(4)(x)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(3))

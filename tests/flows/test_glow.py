"""Glow layers (ActNorm, LU 1x1 conv) and permutations."""

from __future__ import annotations

import pytest
import torch

from tests.flows.contract import check_invertible
from waveflow_py.flows import ActNorm, InvConv1x1, Permutation, RandomPermutation, ReversePermutation


@pytest.mark.parametrize("shape", [(64, 3), (8, 3, 20), (4, 3, 5, 6)])
def test_actnorm_data_dependent_init_normalises_each_channel(shape: tuple[int, ...]) -> None:
    t = ActNorm(3)
    x = 2.0 + 3.0 * torch.randn(shape, dtype=torch.float64) * torch.tensor([1.0, 0.1, 5.0]).double().reshape(
        1, 3, *([1] * (len(shape) - 2))
    )
    assert not bool(t.initialized)
    y, ld = t.double()(x)
    assert bool(t.initialized)
    dims = [0, *range(2, len(shape))]
    torch.testing.assert_close(y.mean(dim=dims), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(y.std(dim=dims, unbiased=False), torch.ones(3).double(), atol=1e-5, rtol=0)
    positions = x[0, 0].numel()
    torch.testing.assert_close(ld, t.log_scale.sum().detach() * positions * torch.ones(shape[0]).double())
    # a second batch does not re-initialise
    before = t.loc.detach().clone()
    t(x + 10.0)
    assert torch.equal(t.loc.detach(), before)


def test_actnorm_init_flag_survives_state_dict() -> None:
    t = ActNorm(2)
    t(torch.randn(16, 2, 4) * 3 + 1)
    assert "initialized" in t.state_dict()
    fresh = ActNorm(2)
    fresh.load_state_dict(t.state_dict())
    assert bool(fresh.initialized)
    x = torch.randn(4, 2, 4)
    torch.testing.assert_close(fresh(x)[0], t(x)[0])  # no re-initialisation from this batch


def test_actnorm_inverse_does_not_initialise() -> None:
    t = ActNorm(2)
    y = torch.randn(3, 2)
    x, ld = t.inverse(y)
    assert not bool(t.initialized) and torch.equal(x, y) and torch.equal(ld, torch.zeros(3))


def test_invconv_weight_and_logdet() -> None:
    t = InvConv1x1(4, seed=0).double()
    with torch.no_grad():
        t.log_s.add_(0.3)
        t.lower.add_(0.1)
    w = t.weight()
    assert torch.allclose(torch.linalg.slogdet(w)[1], t.log_s.sum())
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    y, ld = t(x)
    torch.testing.assert_close(y, torch.einsum("ij,bjt->bit", w, x))
    torch.testing.assert_close(ld, 3 * t.log_s.sum().detach() * torch.ones(2, dtype=torch.float64))


def test_invconv_starts_orthogonal_and_seed_is_reproducible() -> None:
    a, b = InvConv1x1(5, seed=4), InvConv1x1(5, seed=4)
    torch.testing.assert_close(a.weight(), b.weight())
    w = a.weight().detach().double()
    torch.testing.assert_close(w @ w.T, torch.eye(5, dtype=torch.float64), atol=1e-6, rtol=0)
    assert not torch.allclose(InvConv1x1(5, seed=5).weight(), a.weight())


def test_invconv_inverse_tracks_training_no_stale_cache() -> None:
    t = InvConv1x1(3, seed=1)
    x = torch.randn(8, 3, 5)
    check_invertible(t, x, atol=1e-5)
    opt = torch.optim.SGD(t.parameters(), lr=0.05)
    for _ in range(3):
        y, ld = t(x)
        loss = (y**2).mean() - ld.mean() + (y[:, 0] * 3).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    y, _ = t(x)
    torch.testing.assert_close(t.inverse(y)[0], x, atol=1e-5, rtol=0)


def test_permutations() -> None:
    x = torch.arange(12.0).reshape(1, 3, 4)
    y, ld = ReversePermutation(4, dim=2)(x)
    assert torch.equal(y, x.flip(2)) and torch.equal(ld, torch.zeros(1))
    y, _ = ReversePermutation(3)(x)
    assert torch.equal(y, x.flip(1))
    a, b = RandomPermutation(10, seed=2), RandomPermutation(10, seed=2)
    assert torch.equal(a.permutation, b.permutation)
    assert not torch.equal(a.permutation, torch.arange(10))
    assert "permutation" in a.state_dict()
    v = torch.randn(2, 10)
    assert torch.equal(a.inverse(a(v)[0])[0], v)


def test_invalid_permutation() -> None:
    with pytest.raises(ValueError, match="permutation of 0..n-1"):
        Permutation(torch.tensor([0, 0, 2]))
    with pytest.raises(ValueError, match="dim"):
        Permutation(torch.tensor([1, 0]), dim=0)
    with pytest.raises(ValueError, match="expected size 4 in dimension 2"):
        ReversePermutation(4, dim=2)(torch.randn(2, 4, 3))


def test_invconv_inverse_weight_path_equals_the_inverse() -> None:
    """The fast path WaveGlow's cache uses (a precomputed W^-1) inverts exactly like ``inverse``."""
    conv = InvConv1x1(6, seed=1)
    with torch.no_grad():
        conv.log_s.add_(0.3)
        conv.lower.add_(0.1 * torch.randn(6, 6))
    y = torch.randn(2, 6, 11)
    x, ld = conv.inverse(y)
    x_fast, ld_fast = conv.inverse_with(y, conv.inverse_weight())
    torch.testing.assert_close(x_fast, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ld_fast, ld)
    torch.testing.assert_close(conv(x_fast)[0], y, atol=1e-5, rtol=1e-5)
    assert conv.inverse_weight(torch.bfloat16).dtype == torch.bfloat16

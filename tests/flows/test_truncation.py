"""Truncated sampling of the prior: bounds, the truncated law's moments, reproducibility, validation."""

from __future__ import annotations

import math

import pytest
import torch

from waveflow_py.flows import StandardNormal
from waveflow_py.flows.distributions import check_truncation, truncated_std


def test_untruncated_draws_are_the_generators_normal_draws() -> None:
    """``truncation=None`` keeps the old noise exactly: the same numbers as ``torch.randn``."""
    prior = StandardNormal((1,), sigma=0.5)
    got = prior.sample(2, shape=(1000,), temperature=0.8, generator=torch.Generator().manual_seed(3))
    want = 0.4 * torch.randn(2, 1000, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("c", [1.0, 2.5])
def test_truncated_draws_follow_the_truncated_normal_at_unit_variance(c: float) -> None:
    prior = StandardNormal((1,), truncation=c)
    s = truncated_std(c)
    z = prior.sample(1, shape=(400_000,), generator=torch.Generator().manual_seed(0))[0].double()
    assert z.abs().max() <= c / s + 1e-5  # the bound, after the rescaling to unit variance
    assert abs(z.mean()) < 0.01
    assert abs(float(z.std()) - 1.0) < 0.005  # the temperature alone sets the loudness
    # the law's CDF at c/2, not a clamp: no mass piles up at the bounds
    inside = float((z.abs() * s <= c / 2).double().mean())
    want = math.erf(c / 2 / math.sqrt(2)) / math.erf(c / math.sqrt(2))
    assert abs(inside - want) < 0.005
    assert float((z.abs() * s > c - 1e-3).double().mean()) < 1e-3


def test_truncation_scales_with_temperature_and_sigma_and_is_reproducible() -> None:
    prior = StandardNormal((1,), sigma=2.0, truncation=2.0)
    a = prior.sample(1, shape=(50_000,), temperature=0.5, generator=torch.Generator().manual_seed(1))
    b = prior.sample(1, shape=(50_000,), temperature=0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.abs().max() <= 2.0 * 0.5 * 2.0 / truncated_std(2.0) + 1e-5  # sigma * temperature * c / std
    assert abs(float(a.std()) - 2.0 * 0.5) < 0.02
    out = torch.empty(1, 50_000)
    prior.sample_into(out, 0.5, torch.Generator().manual_seed(1))  # sample_into draws the same numbers
    torch.testing.assert_close(out, a, rtol=0, atol=0)


def test_truncated_std_matches_known_values() -> None:
    assert truncated_std(None) == 1.0
    # var = 1 - 2 c phi(c) / (2 Phi(c) - 1): c=1: 1 - 2(0.241971)/0.682689 = 0.291125; c=2.5: 0.911257
    assert truncated_std(1.0) == pytest.approx(math.sqrt(0.291125), abs=1e-5)
    assert truncated_std(2.5) == pytest.approx(math.sqrt(0.911257), abs=1e-5)
    assert truncated_std(8.0) == pytest.approx(1.0, abs=1e-9)


def test_log_prob_ignores_truncation() -> None:
    z = torch.randn(3, 10)
    truncated, plain = StandardNormal((10,), truncation=1.5), StandardNormal((10,))
    torch.testing.assert_close(truncated.log_prob(z), plain.log_prob(z))


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "x", True])
def test_bad_truncation_is_named(bad) -> None:
    with pytest.raises(ValueError, match="truncation"):
        check_truncation(bad)
    with pytest.raises(ValueError, match="truncation"):
        StandardNormal((1,), truncation=bad)
    assert check_truncation("2.5") == 2.5 and check_truncation(None) is None


def test_truncation_squeezes_the_same_draws() -> None:
    """A truncation is a monotone map of the plain draws (paired comparisons; a wide one gives them back)."""

    def draw(c: float | None) -> torch.Tensor:
        prior = StandardNormal((1,), truncation=c)
        return prior.sample(1, shape=(20_000,), generator=torch.Generator().manual_seed(5))[0]

    plain = draw(None)
    order = plain.argsort()
    for c in (1.5, 3.0):
        assert bool((draw(c)[order].diff() >= 0).all())  # the same ranks
    # float32 erf near |z| = 4 keeps ~5 digits
    torch.testing.assert_close(draw(7.0), plain, atol=1e-3, rtol=1e-4)

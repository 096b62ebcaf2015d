"""Coupling layers (NICE / RealNVP): masks, identity start, the identity part, scale functions."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.flows import (
    MLP,
    AdditiveCoupling,
    AffineCoupling,
    ConvNet1d,
    DiagonalScaling,
    checkerboard_mask,
    feature_mask,
    log_scale_from_raw,
)
from waveflow_py.flows.nets import ConvNet2d


def test_feature_masks() -> None:
    assert feature_mask(5, "alternating").tolist() == [True, False, True, False, True]
    assert feature_mask(5, "half").tolist() == [True, True, False, False, False]
    assert feature_mask(4, "half", parity=True).tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="alternating"):
        feature_mask(4, "stripes")


def test_checkerboard_mask() -> None:
    m = checkerboard_mask(3, 4)
    assert m.shape == (3, 4) and m[0, 0] and not m[0, 1] and not m[1, 0] and m[1, 1]
    assert torch.equal(checkerboard_mask(3, 4, parity=True), ~m)
    assert int(m.sum()) == 6


def test_default_conditioner_starts_at_identity() -> None:
    x = torch.randn(5, 6)
    for t in (AffineCoupling(6), AdditiveCoupling(6), AffineCoupling(2, mask="checkerboard")):
        inp = x if t.features == 6 else torch.randn(2, 2, 4, 4)
        y, ld = t(inp)
        assert torch.equal(y, inp) and torch.equal(ld, torch.zeros(inp.shape[0]))


@pytest.mark.parametrize("mask", ["alternating", "half", torch.tensor([0, 1, 1, 0, 1], dtype=torch.bool)])
def test_identity_part_is_copied(mask: object) -> None:
    t = AffineCoupling(5, mask=mask)  # type: ignore[arg-type]
    torch.nn.init.normal_(t.conditioner.out.weight)
    x = torch.randn(4, 5)
    y, _ = t(x)
    ident = t.identity_idx
    assert torch.equal(y[:, ident], x[:, ident])
    assert not torch.allclose(y[:, t.transformed_idx], x[:, t.transformed_idx])
    # the transformed part depends on the identity part only through the conditioner
    x2 = x.clone()
    x2[:, t.transformed_idx] += 1.0
    y2, _ = t(x2)
    assert torch.equal(y2[:, ident], y[:, ident])


@pytest.mark.parametrize("parity", [False, True])
def test_contiguous_half_split_matches_the_general_gather(parity: bool) -> None:
    fast = AffineCoupling(
        5, ConvNet1d(2 if not parity else 3, 6 if not parity else 4, 8), mask="half", parity=parity
    )
    assert fast._block == ("suffix" if parity else "prefix")
    torch.nn.init.normal_(fast.conditioner.out.weight, std=0.3)
    slow = AffineCoupling(5, fast.conditioner, mask=feature_mask(5, "half", parity))
    slow._block = None  # force the index_select path
    x = torch.randn(2, 5, 7)
    for a, b in zip(fast(x), slow(x), strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(fast.inverse(x), slow.inverse(x), strict=True):
        torch.testing.assert_close(a, b)


def test_checkerboard_keeps_masked_positions_and_conditioner_sees_only_them() -> None:
    t = AffineCoupling(2, mask="checkerboard", hidden_features=8)
    torch.nn.init.normal_(t.conditioner.out.weight, std=0.1)
    x = torch.randn(2, 2, 4, 4)
    y, _ = t(x)
    keep = checkerboard_mask(4, 4)
    assert torch.equal(y[..., keep], x[..., keep])
    # changing a transformed position changes nothing else
    x2 = x.clone()
    x2[0, 0, 0, 1] += 1.0
    y2, _ = t(x2)
    diff = (y2 != y).nonzero().tolist()
    assert diff == [[0, 0, 0, 1]]


def test_channel_half_coupling_with_context_like_waveglow() -> None:
    net = ConvNet1d(3, 6, 8, context_channels=4)
    torch.nn.init.normal_(net.out.weight, std=0.1)
    t = AffineCoupling(6, net, mask="half", conditional=True, scale="exp")
    x, mel = torch.randn(2, 6, 10), torch.randn(2, 4, 10)
    y, ld = t(x, mel)
    assert torch.equal(y[:, :3], x[:, :3])
    y_other, _ = t(x, mel + 1.0)
    assert not torch.allclose(y_other[:, 3:], y[:, 3:])  # the context matters
    x_back, ld_inv = t.inverse(y, mel)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros(2), atol=1e-5, rtol=0)


def test_conditioner_output_shape_is_checked() -> None:
    t = AffineCoupling(4, MLP(2, 3))  # should output 2 * 2 = 4 features
    with pytest.raises(ValueError, match=r"conditioner output: expected shape \(3, 4\), got \(3, 3\)"):
        t(torch.randn(3, 4))


def test_invalid_construction() -> None:
    with pytest.raises(ValueError, match="both parts non-empty"):
        AffineCoupling(1)
    with pytest.raises(ValueError, match="expected shape"):
        AffineCoupling(4, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="scale"):
        AffineCoupling(4, scale="softplus")
    with pytest.raises(ValueError, match="features"):
        AffineCoupling(0)


def test_fixed_spatial_mask_must_match_input() -> None:
    t = AffineCoupling(2, ConvNet2d(2, 4, 4), mask=checkerboard_mask(3, 3))
    t(torch.randn(1, 2, 3, 3))
    with pytest.raises(ValueError, match="spatial size"):
        t(torch.randn(1, 2, 4, 4))


def test_default_mlp_conditioner_takes_vectors_only() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        AffineCoupling(4)(torch.randn(2, 4, 3))


def test_log_scale_functions() -> None:
    raw = torch.linspace(-50, 50, 101)
    tanh = log_scale_from_raw(raw, "tanh", 3.0)
    assert tanh.abs().max() <= 3.0 and torch.all(tanh.diff() >= 0)
    assert abs(float(log_scale_from_raw(torch.tensor(1e-4), "tanh")) - 1e-4) < 1e-10
    assert torch.equal(log_scale_from_raw(raw, "exp"), raw)
    sig = log_scale_from_raw(raw, "sigmoid")
    assert torch.all(sig < 0) and torch.isfinite(sig).all()
    torch.testing.assert_close(sig[50], torch.log(torch.sigmoid(torch.tensor(2.0))))


def test_diagonal_scaling_counts_positions() -> None:
    t = DiagonalScaling(2)
    with torch.no_grad():
        t.log_scale.copy_(torch.tensor([0.5, -0.2]))
    x = torch.randn(3, 2, 7)
    y, ld = t(x)
    torch.testing.assert_close(y[:, 0], x[:, 0] * torch.exp(torch.tensor(0.5)))
    torch.testing.assert_close(ld, torch.full((3,), 0.3 * 7))

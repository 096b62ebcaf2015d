"""The shared flow contract, run over every classic transform and several shapes.

Each case builds a transform (float32), warms it up on the batch (ActNorm's data-dependent init) and
perturbs every parameter so zero-initialised output layers do not make it the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from tests.flows.contract import (
    check_bad_inputs,
    check_gradients,
    check_invertible,
    check_logdet_jacobian,
    check_state_dict_roundtrip,
    perturb_parameters,
    to_double,
)
from waveflow_py.flows import (
    IAF,
    MAF,
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    Composite,
    ConvNet1d,
    ConvNet2d,
    DiagonalScaling,
    FrameGain,
    InvConv1x1,
    Inverse,
    LongTermPredictor,
    LPCFilter,
    Planar,
    PreEmphasis,
    RandomPermutation,
    ResidualMLP,
    ReversePermutation,
)


@dataclass(frozen=True)
class Case:
    factory: Callable[[], nn.Module]
    shape: tuple[int, ...]
    context: tuple[int, ...] | None = None
    feature_dim: int = 1
    vector_only: bool = False
    context_scale: float = 1.0  # the random context is N(0, context_scale^2) (LPC: keep filters stable)
    any_length: bool = False  # every length is valid (no "wrong size" input to refuse)


def _glow_step_audio() -> nn.Module:
    # a WaveGlow-like step: ActNorm, 1x1 conv, channel-half affine coupling conditioned on a "mel"
    net = ConvNet1d(2, 4, 8, context_channels=3)
    return Composite(
        [ActNorm(4), InvConv1x1(4), AffineCoupling(4, net, mask="half", conditional=True, scale="exp")]
    )


CASES: dict[str, Case] = {
    "planar": Case(lambda: Planar(3), (4, 3), vector_only=True),
    "additive-vector": Case(lambda: AdditiveCoupling(4), (4, 4), vector_only=True),
    "additive-vector-ctx": Case(lambda: AdditiveCoupling(5, mask="half", context_features=2), (4, 5), (4, 2)),
    "additive-audio": Case(lambda: AdditiveCoupling(4, ConvNet1d(2, 2, 8), mask="half"), (3, 4, 5)),
    "diag-scaling-vector": Case(lambda: DiagonalScaling(3), (4, 3)),
    "diag-scaling-image": Case(lambda: DiagonalScaling(2), (2, 2, 3, 4)),
    "affine-vector": Case(lambda: AffineCoupling(4), (4, 4), vector_only=True),
    "affine-vector-sigmoid": Case(lambda: AffineCoupling(3, mask="half", scale="sigmoid"), (4, 3)),
    "affine-vector-resmlp-ctx": Case(
        lambda: AffineCoupling(4, ResidualMLP(2, 4, 16, context_features=3), conditional=True),
        (4, 4),
        (4, 3),
    ),
    "affine-audio-ctx": Case(
        lambda: AffineCoupling(
            4, ConvNet1d(2, 4, 8, context_channels=3), mask="half", conditional=True, scale="exp"
        ),
        (2, 4, 5),
        (2, 3, 5),
    ),
    "affine-checkerboard": Case(
        lambda: AffineCoupling(2, mask="checkerboard", hidden_features=8), (2, 2, 3, 4)
    ),
    "affine-checkerboard-vector-ctx": Case(
        lambda: AffineCoupling(2, mask="checkerboard", parity=True, hidden_features=8, context_features=3),
        (2, 2, 3, 4),
        (2, 3),
    ),
    "affine-image-channels": Case(
        lambda: AffineCoupling(4, ConvNet2d(2, 4, 8), mask="half", parity=True), (2, 4, 3, 2)
    ),
    "actnorm-vector": Case(lambda: ActNorm(3), (6, 3)),
    "actnorm-audio": Case(lambda: ActNorm(2), (3, 2, 5)),
    "actnorm-image": Case(lambda: ActNorm(3), (2, 3, 2, 4)),
    "invconv-vector": Case(lambda: InvConv1x1(3), (4, 3)),
    "invconv-audio": Case(lambda: InvConv1x1(4), (2, 4, 5)),
    "invconv-image": Case(lambda: InvConv1x1(3), (2, 3, 2, 4)),
    "reverse-vector": Case(lambda: ReversePermutation(4), (3, 4)),
    "random-time": Case(lambda: RandomPermutation(5, dim=2, seed=3), (2, 3, 5), feature_dim=2),
    "maf": Case(lambda: MAF(3, 16), (4, 3), vector_only=True),
    "maf-ctx-random": Case(lambda: MAF(4, 16, context_features=2, order="random", seed=1), (4, 4), (4, 2)),
    "iaf": Case(lambda: IAF(3, 16, order="reverse"), (4, 3), vector_only=True),
    "iaf-ctx": Case(lambda: IAF(3, 16, context_features=2), (4, 3), (4, 2)),
    "inverse-affine": Case(lambda: Inverse(AffineCoupling(4, mask="half")), (4, 4)),
    "composite-vector": Case(
        lambda: Composite([MAF(3, 8), ReversePermutation(3), Planar(3), AffineCoupling(3), ActNorm(3)]),
        (5, 3),
    ),
    "glow-step-audio-ctx": Case(_glow_step_audio, (2, 4, 5), (2, 3, 5)),
    # fixed envelope transforms (context: per-segment log-gain and LPC coefficients, hop 4)
    "lpc": Case(lambda: LPCFilter(3, 4), (4, 12), (4, 3, 4), context_scale=0.3),
    "lpc-hop-below-order": Case(lambda: LPCFilter(5, 2), (3, 8), (3, 4, 6), context_scale=0.2),
    "frame-gain": Case(lambda: FrameGain(4), (4, 12), (4, 3, 1), context_scale=0.5),
    "preemphasis": Case(lambda: PreEmphasis(0.9, hop=4), (4, 11), any_length=True),
    # pitch predictor (context: per-segment lag and gain, clamped to 2..6 and [0, 0.999]; hop 4)
    "ltp": Case(lambda: LongTermPredictor(4, 2, 6), (4, 12), (4, 3, 2), context_scale=3.0),
}


def _build(name: str, dtype: torch.dtype = torch.float32):
    case = CASES[name]
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(case.shape, generator=gen).to(dtype)
    ctx = None
    if case.context is not None:
        ctx = case.context_scale * torch.randn(case.context, generator=gen).to(dtype)
    t = case.factory().to(dtype)
    with torch.no_grad():
        t(x, ctx)  # data-dependent initialisation (ActNorm)
    perturb_parameters(t, std=0.2)
    return case, t, x, ctx


@pytest.mark.parametrize("name", CASES)
def test_invertible_float32(name: str) -> None:
    _, t, x, ctx = _build(name)
    y, _ = check_invertible(t, x, ctx, atol=1e-4)
    if not name.startswith(("reverse", "random")):
        assert not torch.allclose(y, x, atol=1e-3), "the perturbed transform should not be the identity"


@pytest.mark.parametrize("name", CASES)
def test_logdet_matches_autograd_jacobian_float64(name: str) -> None:
    _, t, x, ctx = _build(name)
    t64, x64, ctx64 = to_double(t, x, ctx)
    check_logdet_jacobian(t64, x64[:2], None if ctx64 is None else ctx64[:2], atol=1e-7)


@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_every_parameter(name: str) -> None:
    _, t, x, ctx = _build(name, torch.float64)
    check_gradients(t, x, ctx)


@pytest.mark.parametrize("name", CASES)
def test_state_dict_roundtrip(name: str) -> None:
    case, t, x, ctx = _build(name)
    check_state_dict_roundtrip(case.factory, t, x, ctx)


@pytest.mark.parametrize("name", CASES)
def test_bad_inputs_raise_value_error(name: str) -> None:
    case, t, x, ctx = _build(name)
    if case.any_length:
        pytest.skip("every length is valid; its other bad inputs are tested beside the transform")
    check_bad_inputs(t, x, ctx, feature_dim=case.feature_dim, vector_only=case.vector_only)

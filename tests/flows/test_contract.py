"""The shared flow contract (tests/flows/contract.py), run over every classic transform and several
shapes. The source-filter flows run it in tests/sourcefilter/test_contract.py.
"""

from __future__ import annotations

from torch import nn

from tests.flows.contract import Case, contract_suite
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
    InvConv1x1,
    Inverse,
    Planar,
    RandomPermutation,
    ResidualMLP,
    ReversePermutation,
)


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
}


(
    test_invertible_float32,
    test_logdet_matches_autograd_jacobian_float64,
    test_gradients_reach_every_parameter,
    test_state_dict_roundtrip,
    test_bad_inputs_raise_value_error,
) = contract_suite(CASES, identity_ok=("reverse", "random"))

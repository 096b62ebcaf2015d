"""Audio-agnostic normalizing-flow library. One contract for every transform:

``forward(x, context=None) -> (y, logabsdet)``, ``inverse(y, context=None) -> (x, logabsdet)``,
``logabsdet`` of shape ``(batch,)``.

Transforms: :class:`Planar`; NICE / RealNVP couplings (:class:`AdditiveCoupling`,
:class:`AffineCoupling`, :class:`DiagonalScaling`); Glow's :class:`ActNorm` and :class:`InvConv1x1`;
permutations; :class:`MADE`-based :class:`MAF` / :class:`IAF`; the continuous :class:`CNF`.
Conditioner nets live in :mod:`waveflow_py.flows.nets`.
"""

from waveflow_py.flows.autoregressive import IAF, MADE, MAF, MaskedLinear
from waveflow_py.flows.base import (
    Composite,
    Flow,
    Inverse,
    InverseNotAvailable,
    Transform,
    check_context,
    check_tensor,
    sum_except_batch,
)
from waveflow_py.flows.causal import AffineAutoregressive, CausalConditioner, RowCache
from waveflow_py.flows.continuous import CNF
from waveflow_py.flows.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    Coupling,
    DiagonalScaling,
    checkerboard_mask,
    feature_mask,
    log_scale_from_raw,
)
from waveflow_py.flows.distributions import StandardNormal
from waveflow_py.flows.glow import ActNorm, InvConv1x1
from waveflow_py.flows.nets import MLP, ConvNet1d, ConvNet2d, ResidualMLP
from waveflow_py.flows.permutations import Permutation, RandomPermutation, ReversePermutation
from waveflow_py.flows.planar import Planar

__all__ = [
    "Transform",
    "Composite",
    "Inverse",
    "Flow",
    "InverseNotAvailable",
    "StandardNormal",
    "CNF",
    "AffineAutoregressive",
    "CausalConditioner",
    "RowCache",
    "Planar",
    "Coupling",
    "AdditiveCoupling",
    "AffineCoupling",
    "DiagonalScaling",
    "feature_mask",
    "checkerboard_mask",
    "log_scale_from_raw",
    "ActNorm",
    "InvConv1x1",
    "Permutation",
    "ReversePermutation",
    "RandomPermutation",
    "MADE",
    "MaskedLinear",
    "MAF",
    "IAF",
    "MLP",
    "ResidualMLP",
    "ConvNet1d",
    "ConvNet2d",
    "check_tensor",
    "check_context",
    "sum_except_batch",
]

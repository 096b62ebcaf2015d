"""One builder per flow family for 2-D density estimation, all from :mod:`waveflow_py.flows`.

Every builder returns a :class:`~waveflow_py.flows.Flow` (transform data -> base, standard normal
base) of comparable width (``hidden_features`` units per hidden layer):

=========  ==================================================================================
planar     32 planar layers ``x + u h(w^T x + b)``, started at the identity (Rezende & Mohamed 2015)
nice       additive couplings (random-init shift nets) + a diagonal scaling (Dinh et al. 2014)
realnvp    affine couplings with alternating masks (Dinh et al. 2017)
glow       steps of ActNorm, invertible 1x1 "convolution" (a learned 2x2 matrix), affine
           coupling (Kingma & Dhariwal 2018)
maf        masked autoregressive affine layers with order reversal (Papamakarios et al. 2017)
iaf        inverse autoregressive layers (Kingma et al. 2016); density needs D = 2 passes
cnf        FFJORD continuous flow, exact trace, Dormand-Prince (Grathwohl et al. 2019)
=========  ==================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from waveflow_py.flows import CNF, Composite, Flow, StandardNormal, Transform
from waveflow_py.flows.autoregressive import IAF, MAF
from waveflow_py.flows.coupling import AdditiveCoupling, AffineCoupling, DiagonalScaling
from waveflow_py.flows.glow import ActNorm, InvConv1x1
from waveflow_py.flows.nets import MLP
from waveflow_py.flows.permutations import ReversePermutation
from waveflow_py.flows.planar import Planar

__all__ = ["FAMILIES", "FAMILY_TITLES", "build_flow"]

FEATURES = 2


def _identity_planar(layer: Planar) -> Planar:
    """Start a planar layer at the identity map.

    ``u_hat = u + (softplus(w^T u) - 1 - w^T u) w / |w|^2`` is 0 for ``u = a w / |w|^2`` with
    ``softplus(a) = 1``. (With random ``u`` the ``w / |w|^2`` term is large whenever ``|w|`` is small,
    and a deep stack starts far worse than the identity: docs/implementation-notes.md.)
    """
    with torch.no_grad():
        layer.u.copy_(math.log(math.e - 1.0) * layer.w / (layer.w @ layer.w))
    return layer


def _planar(hidden: int, seed: int) -> Transform:
    return Composite([_identity_planar(Planar(FEATURES)) for _ in range(32)])


def _nice(hidden: int, seed: int) -> Transform:
    # Randomly (not zero-) initialised shift nets: at the identity, the gradient of an additive
    # shift t(x_a) is E[x_b | x_a], which is 0 for symmetric data (8 Gaussians), so a zero-initialised
    # NICE never leaves the identity there. Affine couplings escape through their scale gradient.
    layers: list[Transform] = [
        AdditiveCoupling(FEATURES, MLP(1, 1, hidden, 3, zero_init=False), parity=bool(i % 2))
        for i in range(4)
    ]
    return Composite([*layers, DiagonalScaling(FEATURES)])


def _realnvp(hidden: int, seed: int) -> Transform:
    return Composite(
        [AffineCoupling(FEATURES, parity=bool(i % 2), hidden_features=hidden, num_layers=2) for i in range(6)]
    )


def _glow(hidden: int, seed: int) -> Transform:
    steps: list[Transform] = []
    for i in range(6):
        steps += [
            ActNorm(FEATURES),
            InvConv1x1(FEATURES, seed=1000 * seed + i),
            AffineCoupling(FEATURES, mask="half", hidden_features=hidden, num_layers=2),
        ]
    return Composite(steps)


def _autoregressive(layer: Callable[..., Transform]) -> Callable[[int, int], Transform]:
    def build(hidden: int, seed: int) -> Transform:
        layers: list[Transform] = []
        for i in range(5):
            if i:
                layers.append(ReversePermutation(FEATURES))
            layers.append(layer(FEATURES, hidden, 2, seed=1000 * seed + i))
        return Composite(layers)

    return build


def _cnf(hidden: int, seed: int) -> Transform:
    return CNF(FEATURES, hidden, 3, activation="tanh", rtol=1e-5, atol=1e-5, trace="exact")


_BUILDERS: dict[str, Callable[[int, int], Transform]] = {
    "planar": _planar,
    "nice": _nice,
    "realnvp": _realnvp,
    "glow": _glow,
    "maf": _autoregressive(MAF),
    "iaf": _autoregressive(IAF),
    "cnf": _cnf,
}
FAMILIES: tuple[str, ...] = tuple(_BUILDERS)
FAMILY_TITLES = {
    "planar": "Planar",
    "nice": "NICE",
    "realnvp": "RealNVP",
    "glow": "Glow",
    "maf": "MAF",
    "iaf": "IAF",
    "cnf": "CNF (FFJORD)",
}


def build_flow(family: str, *, hidden_features: int = 64, seed: int = 0) -> Flow:
    """A 2-D flow of ``family`` (see the module table) with a standard normal base."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown flow family {family!r}; expected one of {list(FAMILIES)}")
    if hidden_features < 1:
        raise ValueError(f"hidden_features: expected a positive integer, got {hidden_features}")
    return Flow(_BUILDERS[family](hidden_features, seed), StandardNormal(FEATURES))

"""Two-dimensional toy data sets for density estimation (as in FFJORD, Grathwohl et al. 2019).

Each sampler maps ``(n, generator)`` to a float32 tensor ``(n, 2)`` with values roughly in
``[-4, 4]^2``. Where the true density is known in closed form it is exposed too, so a recipe can
report the data's own entropy (the lowest achievable NLL) beside the models' NLL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ToyDataset", "DATASETS", "get_dataset", "two_moons", "checkerboard", "eight_gaussians"]

# 8 Gaussians: centres on a circle of this radius, isotropic std of each component.
_RING_RADIUS = 4.0 / math.sqrt(2.0)
_RING_STD = 0.5 / math.sqrt(2.0)


def two_moons(n: int, generator: torch.Generator | None = None, noise: float = 0.1) -> Tensor:
    """Two interleaved half circles (radius 1) with Gaussian noise ``noise``, scaled by 2 and centred."""
    _check_n(n)
    upper = torch.rand(n, generator=generator) < 0.5
    t = torch.rand(n, generator=generator) * math.pi
    x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=generator)
    return (pts - torch.tensor([0.5, 0.25])) * 2.0


def checkerboard(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform on the 8 dark squares (side 2) of a 4 x 4 board covering ``[-4, 4]^2``."""
    _check_n(n)
    x1 = torch.rand(n, generator=generator) * 4 - 2
    x2 = torch.rand(n, generator=generator) - 2 * torch.randint(0, 2, (n,), generator=generator).float()
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], dim=1) * 2.0


def checkerboard_log_prob(x: Tensor) -> Tensor:
    """True log density of :func:`checkerboard`: ``log(1/32)`` on a dark square, ``-inf`` elsewhere."""
    u = x / 2.0
    inside = (u.abs() <= 2).all(dim=1)
    dark = (torch.floor(u[:, 0]) + torch.floor(u[:, 1])) % 2 == 0
    return torch.where(inside & dark, -math.log(32.0), -math.inf).to(x.dtype)


def _ring_centres() -> Tensor:
    angles = torch.arange(8, dtype=torch.float32) * (math.pi / 4)
    return _RING_RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def eight_gaussians(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Equal mixture of 8 isotropic Gaussians (std ~0.35) on a circle of radius ~2.83."""
    _check_n(n)
    idx = torch.randint(0, 8, (n,), generator=generator)
    return _ring_centres()[idx] + _RING_STD * torch.randn(n, 2, generator=generator)


def eight_gaussians_log_prob(x: Tensor) -> Tensor:
    """True log density of :func:`eight_gaussians` (log-sum-exp over the 8 components)."""
    d2 = (x.unsqueeze(1) - _ring_centres().to(x).unsqueeze(0)).pow(2).sum(dim=2)  # (n, 8)
    log_comp = -0.5 * d2 / _RING_STD**2 - math.log(2 * math.pi * _RING_STD**2)
    return torch.logsumexp(log_comp, dim=1) - math.log(8.0)


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of samples: expected a positive int, got {n!r}")


@dataclass(frozen=True)
class ToyDataset:
    """A named 2-D sampler, with its true log density when known."""

    name: str
    title: str
    sample: Callable[..., Tensor]
    log_prob: Callable[[Tensor], Tensor] | None = None


DATASETS: dict[str, ToyDataset] = {
    "moons": ToyDataset("moons", "two moons", two_moons),
    "checkerboard": ToyDataset("checkerboard", "checkerboard", checkerboard, checkerboard_log_prob),
    "8gaussians": ToyDataset("8gaussians", "8 Gaussians", eight_gaussians, eight_gaussians_log_prob),
}


def get_dataset(name: str) -> ToyDataset:
    """Look up a data set by name; unknown names raise ``ValueError`` listing the choices."""
    if name not in DATASETS:
        raise ValueError(f"unknown toy data set {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]

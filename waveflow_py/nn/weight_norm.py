"""Weight-normalisation helpers (Salimans & Kingma 2016) built on
``torch.nn.utils.parametrizations.weight_norm``.

Training keeps the ``(g, v)`` parametrisation; inference code reads :func:`folded_weight`, a plain
tensor ``g * v / ||v||`` computed from the current parameters on every call, so it can never go stale
and the training module is never mutated.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

__all__ = ["wn", "folded_weight", "zero_conv", "fan_in_std"]


def wn(module: nn.Module, init_std: float | None = None) -> nn.Module:
    """Weight-normalise a convolution (norm over every dim but the output channels).

    ``init_std``: optional uniform initialisation bound for the raw weight before normalisation.
    """
    if init_std is not None:
        with torch.no_grad():
            module.weight.uniform_(-init_std, init_std)
    return parametrizations.weight_norm(module, name="weight", dim=0)


def folded_weight(module: nn.Module, dtype: torch.dtype | None = None) -> Tensor:
    """The effective weight of ``module`` as a detached plain tensor (weight norm folded in)."""
    with torch.no_grad():
        w = module.weight  # parametrised modules compute g * v / ||v|| here
        w = w.detach().clone() if not parametrize.is_parametrized(module) else w.detach()
    return w if dtype is None else w.to(dtype)


def zero_conv(conv: nn.Module) -> nn.Module:
    """Zero a (plain) convolution so that the flow it ends starts as the identity."""
    with torch.no_grad():
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


def fan_in_std(fan_in: int) -> float:
    """``1 / sqrt(fan_in)``: the usual uniform bound for a layer with ``fan_in`` inputs."""
    return 1.0 / math.sqrt(max(fan_in, 1))

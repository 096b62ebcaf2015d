"""Small conditioner networks for coupling layers.

Every net here is called as ``net(x, context=None)`` and has a zero-initialised last layer (unless
``zero_init=False``), so a coupling built on it starts as the identity map (Kingma & Dhariwal 2018,
Sec. 3.3). A context is concatenated to the input: for :class:`MLP` / :class:`ResidualMLP` it is a
vector ``(B, context_features)``; for the conv nets it is either a map with the input's spatial shape
(``(B, Cc, T)`` / ``(B, Cc, H, W)``) or a vector ``(B, Cc)`` that is broadcast over positions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["MLP", "ResidualMLP", "ConvNet1d", "ConvNet2d"]

Activation = Callable[[], nn.Module]


def _zero_(layer: nn.Module) -> None:
    nn.init.zeros_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def _join(x: Tensor, context: Tensor | None, expected: int | None, what: str) -> Tensor:
    """Concatenate ``context`` to ``x`` along dim 1 (broadcasting a vector context over positions)."""
    if expected is None:
        if context is not None:
            raise ValueError(f"{what}: built without context, got a context of shape {tuple(context.shape)}")
        return x
    if context is None:
        raise ValueError(f"{what}: expects a context with {expected} features, got None")
    if context.dim() < 2 or context.shape[1] != expected or context.shape[0] != x.shape[0]:
        raise ValueError(
            f"{what}: expected a context of shape ({x.shape[0]}, {expected}, ...), got {tuple(context.shape)}"
        )
    if context.dim() == 2 and x.dim() > 2:
        context = context.reshape(*context.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    if context.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"{what}: context positions {tuple(context.shape[2:])} do not match input {tuple(x.shape[2:])}"
        )
    return torch.cat([x, context.to(x.dtype)], dim=1)


class MLP(nn.Module):
    """Multi-layer perceptron ``(B, in_features) [+ (B, context_features)] -> (B, out_features)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int = 64,
        num_layers: int = 2,
        *,
        context_features: int | None = None,
        activation: Activation = nn.ReLU,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.context_features = context_features
        width = in_features + (context_features or 0)
        layers: list[nn.Module] = []
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_features), activation()]
            width = hidden_features
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, out_features)
        if zero_init:
            _zero_(self.out)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.out(self.hidden(_join(x, context, self.context_features, "MLP")))


class _ResidualBlock(nn.Module):
    def __init__(self, features: int, activation: Activation) -> None:
        super().__init__()
        self.net = nn.Sequential(
            activation(), nn.Linear(features, features), activation(), nn.Linear(features, features)
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class ResidualMLP(nn.Module):
    """Residual MLP (pre-activation blocks) ``(B, in) [+ (B, context)] -> (B, out)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int = 64,
        num_blocks: int = 2,
        *,
        context_features: int | None = None,
        activation: Activation = nn.ReLU,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        self.context_features = context_features
        self.inp = nn.Linear(in_features + (context_features or 0), hidden_features)
        self.blocks = nn.Sequential(*[_ResidualBlock(hidden_features, activation) for _ in range(num_blocks)])
        self.act = activation()
        self.out = nn.Linear(hidden_features, out_features)
        if zero_init:
            _zero_(self.out)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.inp(_join(x, context, self.context_features, "ResidualMLP"))
        return self.out(self.act(self.blocks(h)))


class _ConvNet(nn.Module):
    conv: type[nn.Module] = nn.Conv1d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 32,
        num_layers: int = 2,
        *,
        kernel_size: int = 3,
        context_channels: int | None = None,
        activation: Activation = nn.ReLU,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-size padding), got {kernel_size}")
        self.context_channels = context_channels
        width = in_channels + (context_channels or 0)
        layers: list[nn.Module] = []
        for _ in range(num_layers):
            layers += [self.conv(width, hidden_channels, kernel_size, padding=kernel_size // 2), activation()]
            width = hidden_channels
        self.hidden = nn.Sequential(*layers)
        self.out = self.conv(width, out_channels, kernel_size, padding=kernel_size // 2)
        if zero_init:
            _zero_(self.out)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.out(self.hidden(_join(x, context, self.context_channels, type(self).__name__)))


class ConvNet1d(_ConvNet):
    """Same-padded 1-D conv net ``(B, C_in, T) [+ context] -> (B, C_out, T)``."""

    conv = nn.Conv1d


class ConvNet2d(_ConvNet):
    """Same-padded 2-D conv net ``(B, C_in, H, W) [+ context] -> (B, C_out, H, W)``."""

    conv = nn.Conv2d

"""Autoregressive flows: MADE, MAF and IAF.

* :class:`MADE` (Germain et al. 2015): an MLP whose weights are masked so output ``i`` depends only on
  inputs that come earlier in a chosen order (sequential, reverse, random or explicit degrees).
* :class:`MAF` (Papamakarios et al. 2017): ``y_i = x_i * exp(log_s_i(x_<i)) + t_i(x_<i)``; the
  density direction (``forward``) is one parallel pass, sampling (``inverse``) takes ``D`` passes.
* :class:`IAF` (Kingma et al. 2016): the same transform read the other way, ``Inverse(MAF)``:
  sampling (``inverse``) is parallel, density (``forward``) sequential.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.flows.base import Inverse, Transform, check_context, check_tensor
from waveflow_py.flows.coupling import SCALE_FUNCTIONS, log_scale_from_raw

__all__ = ["MADE", "MaskedLinear", "MAF", "IAF", "input_degrees"]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed ``(out, in)`` binary mask (buffer)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def input_degrees(
    features: int,
    order: str | Sequence[int] | Tensor = "sequential",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Degrees ``1..features`` of the inputs: output ``i`` may depend on inputs of lower degree."""
    if isinstance(order, str):
        if order == "sequential":
            return torch.arange(1, features + 1)
        if order == "reverse":
            return torch.arange(features, 0, -1)
        if order == "random":
            return torch.randperm(features, generator=generator) + 1
        raise ValueError(f"order must be 'sequential', 'reverse', 'random' or degrees, got {order!r}")
    degrees = torch.as_tensor(order, dtype=torch.long).flatten()
    if degrees.numel() != features or not torch.equal(degrees.sort().values, torch.arange(1, features + 1)):
        raise ValueError(f"degrees: expected a permutation of 1..{features}, got {degrees.tolist()}")
    return degrees


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al. 2015).

    ``(B, features) [+ context (B, context_features)] -> (B, output_multiplier * features)``; the
    output is ``output_multiplier`` blocks of ``features`` (block ``k`` holds parameter ``k`` of every
    feature). Output ``i`` of every block depends only on inputs ``j`` with
    ``degrees[j] < degrees[i]``; the context feeds every hidden unit of the first layer. Hidden degrees
    cycle through ``1..D-1`` (``0..D-1`` with a context, so the first output still sees the context;
    random in that range for ``order="random"``); ``seed`` fixes the random order and hidden degrees.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_layers: int = 2,
        *,
        output_multiplier: int = 1,
        context_features: int | None = None,
        order: str | Sequence[int] | Tensor = "sequential",
        seed: int | None = None,
        activation: Callable[[], nn.Module] = nn.ReLU,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if features < 1 or hidden_features < 1 or num_layers < 1 or output_multiplier < 1:
            raise ValueError(
                "features, hidden_features, num_layers and output_multiplier must be positive, got "
                f"{features}, {hidden_features}, {num_layers}, {output_multiplier}"
            )
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.features = features
        self.output_multiplier = output_multiplier
        self.context_features = context_features
        degrees = input_degrees(features, order, gen)
        self.register_buffer("degrees", degrees)
        layers: list[nn.Module] = []
        prev = degrees
        # hidden degree 0 = depends on no input (only on the context): needed for the first output
        low = 0 if context_features is not None else 1
        for _ in range(num_layers):
            if features - low <= 0:
                hidden = torch.zeros(hidden_features, dtype=torch.long)
            elif isinstance(order, str) and order == "random":
                hidden = torch.randint(low, features, (hidden_features,), generator=gen)
            else:
                hidden = torch.arange(hidden_features) % (features - low) + low
            layers.append(MaskedLinear(prev.numel(), hidden_features, hidden[:, None] >= prev[None, :]))
            prev = hidden
        self.hidden_layers = nn.ModuleList(layers)
        out_degrees = degrees.repeat(output_multiplier)
        self.out = MaskedLinear(prev.numel(), out_degrees.numel(), out_degrees[:, None] > prev[None, :])
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.context_layer = (
            None if context_features is None else nn.Linear(context_features, hidden_features)
        )
        self.act = activation()

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.hidden_layers[0](x)
        if self.context_layer is not None:
            if context is None:
                raise ValueError(f"MADE: expects a context with {self.context_features} features, got None")
            h = h + self.context_layer(context)
        elif context is not None:
            raise ValueError(f"MADE: built without context, got a context of shape {tuple(context.shape)}")
        h = self.act(h)
        for layer in self.hidden_layers[1:]:
            h = self.act(layer(h))
        return self.out(h)


class MAF(Transform):
    """Masked autoregressive affine flow layer (Papamakarios et al. 2017), vectors ``(B, D)``.

    ``forward`` (density, one parallel pass): ``y = x * exp(log_s(x)) + t(x)`` where ``(t, raw)``
    come from a zero-initialised :class:`MADE` (so the layer starts as the identity) and
    ``log_s = log_scale_from_raw(raw, scale, scale_bound)`` (tanh soft clamp by default, see
    :func:`~waveflow_py.flows.coupling.log_scale_from_raw`). ``inverse`` (sampling) runs ``D``
    passes, each fixing one more feature in the autoregressive order. Context: ``(B, context_features)``.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_layers: int = 2,
        *,
        context_features: int | None = None,
        order: str | Sequence[int] | Tensor = "sequential",
        seed: int | None = None,
        scale: str = "tanh",
        scale_bound: float = 3.0,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if scale not in SCALE_FUNCTIONS:
            raise ValueError(f"scale must be one of {SCALE_FUNCTIONS}, got {scale!r}")
        self.features = features
        self.context_features = context_features
        self.accepts_context = context_features is not None
        self.scale = scale
        self.scale_bound = float(scale_bound)
        self.made = MADE(
            features,
            hidden_features,
            num_layers,
            output_multiplier=2,
            context_features=context_features,
            order=order,
            seed=seed,
            activation=activation,
            zero_init=True,
        )

    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        check_tensor(x, name=name, ndims=(2,), dim_sizes={1: self.features})
        check_context(context, expected=self.context_features is not None, batch=x.shape[0])
        if context is not None:
            check_tensor(context, name="context", ndims=(2,), dim_sizes={1: self.context_features})

    def _log_scale_and_shift(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, raw = self.made(x, context).chunk(2, dim=1)
        return log_scale_from_raw(raw, self.scale, self.scale_bound), shift

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, context, "input")
        log_s, shift = self._log_scale_and_shift(x, context)
        return x * torch.exp(log_s) + shift, log_s.sum(dim=1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y, context, "inverse input")
        x = torch.zeros_like(y)
        log_s = torch.zeros_like(y)
        for _ in range(self.features):
            log_s, shift = self._log_scale_and_shift(x, context)
            x = (y - shift) * torch.exp(-log_s)
        return x, -log_s.sum(dim=1)


class IAF(Inverse):
    """Inverse autoregressive flow layer (Kingma et al. 2016): ``Inverse(MAF(...))``, vectors ``(B, D)``.

    Same arguments as :class:`MAF`. ``inverse`` (sampling, noise -> data) is one parallel pass of the
    masked network; ``forward`` (density) is sequential, ``D`` passes. The wrapped MAF is
    ``self.base_transform``.
    """

    def __init__(self, features: int, *args: object, **kwargs: object) -> None:
        super().__init__(MAF(features, *args, **kwargs))  # type: ignore[arg-type]

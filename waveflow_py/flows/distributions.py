"""Base distributions for flows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["StandardNormal"]


class StandardNormal(nn.Module):
    """Isotropic Gaussian ``N(0, sigma^2 I)`` over an event of shape ``shape``.

    ``sigma`` is the scale used by ``log_prob`` (training); ``sample`` may take a different
    ``temperature`` (WaveGlow/WaveFlow synthesise with ``sigma`` < 1).
    """

    def __init__(self, shape: Sequence[int] | int, sigma: float = 1.0) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def log_prob(self, z: Tensor) -> Tensor:
        """``(B, *shape) -> (B,)`` in nats. Any trailing shape is accepted (audio lengths vary)."""
        n = z[0].numel()
        sq = z.reshape(z.shape[0], -1).pow(2).sum(dim=1)
        return -0.5 * sq / self.sigma**2 - n * (math.log(self.sigma) + 0.5 * math.log(2 * math.pi))

    def sample(
        self,
        n: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        temperature: float | None = None,
        shape: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        scale = self.sigma if temperature is None else float(temperature)
        event = self.shape if shape is None else tuple(shape)
        return scale * torch.randn((n, *event), device=device, dtype=dtype, generator=generator)

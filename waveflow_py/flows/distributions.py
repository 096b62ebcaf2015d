"""Base distributions for flows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["StandardNormal", "check_temperature"]


class StandardNormal(nn.Module):
    """Isotropic Gaussian ``N(0, sigma^2 I)`` over an event of shape ``shape``.

    ``sigma`` is the scale used by ``log_prob`` (training); ``sample`` draws at
    ``temperature * sigma`` (WaveGlow/WaveFlow synthesise with a temperature < 1).
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
        temperature: float = 1.0,
        shape: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``n`` draws of shape ``(n, *shape)`` from ``N(0, (temperature * sigma)^2 I)``.

        ``temperature`` scales the training ``sigma`` (1: the training prior; WaveGlow/WaveFlow
        synthesise speech at 0.6); 0 gives zeros. ``shape`` overrides the event shape (audio lengths
        vary). The noise is drawn on ``generator``'s device when one is given (so a seeded CPU
        generator reproduces the same noise for a model on any device), then moved to ``device``.
        """
        temperature = check_temperature(temperature)
        event = self.shape if shape is None else tuple(shape)
        where = generator.device if generator is not None else device
        z = torch.randn((n, *event), device=where, generator=generator)
        return z.mul_(self.sigma * temperature).to(device=device, dtype=dtype)

    def sample_into(
        self, out: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Fill ``out`` in place with draws at ``temperature`` (the same numbers as :meth:`sample` of
        ``out.numel()`` values from the same generator, without a temporary copy when ``out`` is on the
        generator's device); returns ``out``."""
        temperature = check_temperature(temperature)
        if (generator is not None and generator.device != out.device) or out.dtype != torch.float32:
            out.copy_(self.sample(1, shape=tuple(out.shape), temperature=temperature, generator=generator)[0])
            return out
        return out.normal_(generator=generator).mul_(self.sigma * temperature)


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float, or ``ValueError`` unless it is a finite number >= 0."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature: expected a number >= 0, got {temperature!r}") from None
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"temperature: expected a finite number >= 0, got {temperature!r}")
    return t

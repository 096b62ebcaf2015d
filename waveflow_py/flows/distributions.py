"""Base distributions for flows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import EllipsisType

import torch
from torch import Tensor, nn

__all__ = ["StandardNormal", "check_temperature", "check_truncation", "check_positive", "truncated_std"]


class StandardNormal(nn.Module):
    """Isotropic Gaussian ``N(0, sigma^2 I)`` over an event of shape ``shape``.

    ``sigma`` is the scale used by ``log_prob`` (training); ``sample`` draws at
    ``temperature * sigma`` (WaveGlow/WaveFlow synthesise with a temperature < 1).

    ``truncation`` (``None``: off) is a sampling setting, not a parameter: when set to ``c > 0``, draws
    come from the normal truncated to ``[-c, c]`` (each normal draw mapped through the truncated law's
    inverse CDF: a monotone squeeze of the same draws, not clamping), rescaled to unit variance (by
    ``1 / truncated_std(c)``, so the temperature alone sets the loudness), then scaled by
    ``temperature * sigma``. It removes the rare large draws that a vocoder can turn into clipped peaks;
    ``log_prob`` ignores it (training is unchanged). Not part of ``state_dict``. A vocoder's samplers pass
    the truncation of their sampling settings per draw (``sample(..., truncation=)``,
    :class:`waveflow_py.sampling.SamplingConfig`), so a model's prior keeps ``None``.
    """

    def __init__(
        self, shape: Sequence[int] | int, sigma: float = 1.0, truncation: float | None = None
    ) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.truncation = check_truncation(truncation)

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
        truncation: float | None | EllipsisType = ...,
    ) -> Tensor:
        """``n`` draws of shape ``(n, *shape)`` from ``N(0, (temperature * sigma)^2 I)``.

        ``temperature`` scales the training ``sigma`` (1: the training prior; WaveGlow/WaveFlow
        synthesise speech at 0.6); 0 gives zeros. ``shape`` overrides the event shape (audio lengths
        vary). The noise is drawn on ``generator``'s device when one is given (so a seeded CPU
        generator reproduces the same noise for a model on any device), then moved to ``device``.
        ``truncation``: this draw's truncation (``None``: untruncated; not given: the prior's own).
        """
        temperature = check_temperature(temperature)
        event = self.shape if shape is None else tuple(shape)
        where = generator.device if generator is not None else device
        z = torch.empty((n, *event), device=where)
        z = self._draw(z, generator, truncation)
        return z.mul_(self.sigma * temperature).to(device=device, dtype=dtype)

    def sample_into(
        self,
        out: Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        truncation: float | None | EllipsisType = ...,
    ) -> Tensor:
        """Fill ``out`` in place with draws at ``temperature`` (the same numbers as :meth:`sample` of
        ``out.numel()`` values from the same generator, without a temporary copy when ``out`` is on the
        generator's device); returns ``out``."""
        temperature = check_temperature(temperature)
        if (generator is not None and generator.device != out.device) or out.dtype != torch.float32:
            draws = self.sample(
                1, shape=tuple(out.shape), temperature=temperature, generator=generator, truncation=truncation
            )
            out.copy_(draws[0])
            return out
        return self._draw(out, generator, truncation).mul_(self.sigma * temperature)

    def _draw(
        self, out: Tensor, generator: torch.Generator | None, truncation: float | None | EllipsisType = ...
    ) -> Tensor:
        """Fill float32 ``out`` with unit-variance draws (truncated to ``[-c, c]`` before the rescaling to
        unit variance, when set); returns it."""
        out.normal_(generator=generator)
        c = self.truncation if truncation is ... else check_truncation(truncation)
        if c is None:
            return out
        # the same normal draws z, squeezed monotonically into the truncated law: its CDF at z' equals
        # N(0, 1)'s at z, i.e. erf(z' / sqrt 2) = erf(c / sqrt 2) erf(z / sqrt 2); so a setting is a
        # paired change of the plain draws (c -> inf gives them back), not a new noise sequence
        r2 = math.sqrt(2.0)
        out.div_(r2).erf_().mul_(math.erf(c / r2)).erfinv_().mul_(r2).clamp_(-c, c)
        return out.div_(truncated_std(c))


def truncated_std(c: float | None) -> float:
    """Standard deviation of ``N(0, 1)`` truncated to ``[-c, c]`` (1 for ``None``),
    ``sqrt(1 - 2 c phi(c) / (2 Phi(c) - 1))``; truncated draws are divided by it (unit variance)."""
    c = check_truncation(c)
    if c is None:
        return 1.0
    mass = math.erf(c / math.sqrt(2.0))
    pdf = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    return math.sqrt(1.0 - 2.0 * c * pdf / mass)


def check_truncation(truncation: float | None) -> float | None:
    """``truncation`` as a float (or ``None``: off), or ``ValueError`` unless it is a finite number > 0."""
    return check_positive(truncation, "truncation", "standard deviations")


def check_positive(value: object, name: str, unit: str = "") -> float | None:
    """An optional sampling setting: ``value`` as a float (``None`` stays ``None``: off), or a
    ``ValueError`` naming ``name`` unless it is a finite number > 0 (a bool is not a number here)."""
    if value is None:
        return None
    try:
        v = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = math.nan
    if not (v > 0 and math.isfinite(v)):
        what = f" ({unit})" if unit else ""
        raise ValueError(f"{name}: expected a finite number > 0{what} or none, got {value!r}")
    return v


def check_temperature(temperature: object) -> float:
    """``temperature`` as a float, or ``ValueError`` unless it is a finite number >= 0 (a bool is not a
    number here). The one rule for a temperature, wherever it is given (``SamplingConfig``, the CLI,
    releases, training and evaluation settings)."""
    try:
        t = math.nan if isinstance(temperature, bool) else float(temperature)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        t = math.nan
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"temperature: expected a finite number >= 0, got {temperature!r}")
    return t

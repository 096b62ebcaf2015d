"""Fixed permutations along one dimension (features or channels): volume preserving, logdet 0.

Used between coupling or autoregressive layers so every feature gets transformed (Dinh et al. 2014;
Papamakarios et al. 2017). Inputs ``(B, ...)`` with ``x.shape[dim] == features``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from waveflow_py.flows.base import Transform, check_context, check_tensor

__all__ = ["Permutation", "ReversePermutation", "RandomPermutation"]


class Permutation(Transform):
    """``y = x.index_select(dim, permutation)``; ``permutation`` is stored as a buffer."""

    accepts_context = False

    def __init__(self, permutation: Tensor, dim: int = 1) -> None:
        super().__init__()
        permutation = torch.as_tensor(permutation, dtype=torch.long).flatten()
        n = permutation.numel()
        if n == 0 or not torch.equal(torch.sort(permutation).values, torch.arange(n)):
            raise ValueError(f"permutation: expected a permutation of 0..n-1, got {permutation.tolist()}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1 (dimension 0 is the batch), got {dim}")
        self.features = n
        self.dim = dim
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def _run(self, x: Tensor, context: Tensor | None, index: Tensor, name: str) -> tuple[Tensor, Tensor]:
        check_tensor(x, name=name, dim_sizes={self.dim: self.features})
        check_context(context, expected=False, batch=x.shape[0])
        return x.index_select(self.dim, index), x.new_zeros(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, context, self.permutation, "input")

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(y, context, self.inverse_permutation, "inverse input")


class ReversePermutation(Permutation):
    """Reverse the order of ``features`` entries along ``dim``."""

    def __init__(self, features: int, dim: int = 1) -> None:
        super().__init__(torch.arange(features - 1, -1, -1), dim)


class RandomPermutation(Permutation):
    """A random permutation of ``features`` entries along ``dim``, drawn once (``seed`` makes it
    reproducible; without one the global torch generator is used) and kept in ``state_dict``."""

    def __init__(self, features: int, dim: int = 1, seed: int | None = None) -> None:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        super().__init__(torch.randperm(features, generator=gen), dim)

"""Exponential moving average of model weights (Polyak averaging), kept in float32 beside the model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["EMA"]


class EMA:
    """``shadow <- decay * shadow + (1 - decay) * param`` after every optimizer step.

    Floating-point parameters and buffers are averaged; integer buffers are copied. ``swapped_in(model)``
    temporarily loads the averaged weights into the model (for validation and export).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay: expected 0 < decay < 1, got {decay}")
        self.decay = decay
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
            for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.is_floating_point():
                s.lerp_(v.detach().float(), 1.0 - self.decay)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    def load_state_dict(self, tensors: Mapping[str, Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(tensors))
        if missing:
            raise ValueError(f"EMA state is missing {missing[:5]}")
        for k, s in self.shadow.items():
            if tuple(tensors[k].shape) != tuple(s.shape):
                raise ValueError(f"EMA {k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(s.shape)}")
            s.copy_(tensors[k])

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """Load the EMA weights into ``model`` for the ``with`` block, then restore the live weights."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict({k: v.to(backup[k].dtype) for k, v in self.shadow.items()})
        try:
            yield model
        finally:
            model.load_state_dict(backup)

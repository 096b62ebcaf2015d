"""Pieces shared by the 1-D (WaveGlow) and 2-D (WaveFlow) WaveNets: the gated activation and the
residual/skip split (van den Oord et al. 2016, "WaveNet"; Prenger et al. 2019; Ping et al. 2020).

A WaveNet layer computes ``pre = dilated_conv(x) + cond(aux)`` with ``2 * C`` channels, gates it as
``tanh(pre[:C]) * sigmoid(pre[C:])``, and a 1x1 convolution splits the result into a residual part
(added to ``x``) and a skip part (summed over layers).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gated_tanh", "split_residual_skip"]


def gated_tanh(pre: Tensor, dim: int = 1) -> Tensor:
    """``tanh(a) * sigmoid(b)`` where ``a, b`` are the two halves of ``pre`` along ``dim``."""
    if pre.shape[dim] % 2:
        raise ValueError(f"gated_tanh: expected an even size along dim {dim}, got shape {tuple(pre.shape)}")
    a, b = pre.chunk(2, dim=dim)
    return torch.tanh(a) * torch.sigmoid(b)


def split_residual_skip(out: Tensor, skip_channels: int, dim: int = 1) -> tuple[Tensor | None, Tensor]:
    """Split a res/skip 1x1 output into ``(residual, skip)``: the last ``skip_channels`` are the skip.

    When ``out`` has only the skip channels (the last layer of a WaveGlow WaveNet), the residual part is
    ``None``.
    """
    total = out.shape[dim]
    if total < skip_channels:
        raise ValueError(f"split_residual_skip: {total} channels, fewer than skip_channels={skip_channels}")
    if total == skip_channels:
        return None, out
    res, skip = out.split([total - skip_channels, skip_channels], dim=dim)
    return res, skip

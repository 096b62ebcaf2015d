"""The 2-D WaveNet of WaveFlow (Ping, Peng, Zhao & Song 2020, "WaveFlow: A Compact Flow-based Model
for Raw Audio", Sec. 3 and Appendix).

Input ``(B, in_channels, H, W)``: a squeezed waveform (height ``H = h``, width ``W = T / h``) with its
mel conditioning ``aux`` of shape ``(B, aux_channels, H, W)``. Each layer is a dilated 2-D convolution
with kernel ``(kh, kw)`` that is **causal along the height** (only the top is padded, by
``(kh - 1) * dh``) and non-causal along the width (symmetric padding, width dilation ``2 ** layer`` by
default, as in the paper), followed by the gated ``tanh * sigmoid`` unit, the mel conditioning (1x1
conv), and 1x1 residual/skip convolutions. The output ``(B, out_channels, H, W)`` is a 1x1 conv of the
summed skips, zero-initialised so that a flow built on it starts as the identity.

The network is *causal-inclusive* along the height: output row ``i`` depends on input rows ``<= i``.
For the row-by-row inverse it also implements the incremental protocol of
:class:`waveflow_py.flows.causal.AffineAutoregressive`: :meth:`start` (fold the weights, the
conditioning 1x1 convs and the biases into one GEMM per layer and row, allocate ring buffers) and
:meth:`step` (one row). See :mod:`waveflow_py.nn.wavenet2d_step`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.nn.gated import gated_tanh, split_residual_skip
from waveflow_py.nn.wavenet2d_step import WaveNet2DState, start_rows, step_row
from waveflow_py.nn.weight_norm import fan_in_std, wn, zero_conv

__all__ = ["WaveNet2D", "WaveNet2DLayer"]


class WaveNet2DLayer(nn.Module):
    """One gated residual layer: ``(B, C, H, W), aux (B, A, H, W) -> (residual (B, C, H, W), skip)``."""

    def __init__(
        self,
        residual_channels: int,
        aux_channels: int,
        kernel_size: tuple[int, int],
        dilation: tuple[int, int],
    ) -> None:
        super().__init__()
        kh, kw = kernel_size
        dh, dw = dilation
        c = residual_channels
        self.residual_channels = c
        self.kernel_size = (kh, kw)
        self.dilation = (dh, dw)
        # causal along H (top only), symmetric along W (left gets the extra column if odd)
        pad_w = (kw - 1) * dw
        self.padding = (pad_w - pad_w // 2, pad_w // 2, (kh - 1) * dh, 0)  # F.pad order: W_l, W_r, H_t, H_b
        self.conv = wn(nn.Conv2d(c, 2 * c, (kh, kw), dilation=(dh, dw)), fan_in_std(c * kh * kw))
        self.cond = wn(nn.Conv2d(aux_channels, 2 * c, 1), fan_in_std(aux_channels))
        self.res_skip = wn(nn.Conv2d(c, 2 * c, 1), fan_in_std(c))

    def forward(self, x: Tensor, aux: Tensor) -> tuple[Tensor, Tensor]:
        pre = self.conv(F.pad(x, self.padding)) + self.cond(aux)
        res, skip = split_residual_skip(self.res_skip(gated_tanh(pre)), self.residual_channels)
        assert res is not None
        return x + res, skip


class WaveNet2D(nn.Module):
    """2-D WaveNet conditioner: ``(B, in, H, W), aux (B, A, H, W) -> (B, out, H, W)``.

    Args:
        in_channels: channels of the input (1 for WaveFlow).
        residual_channels: ``r`` in the paper (64 or 128); the gate has ``2 r`` channels.
        aux_channels: channels of the conditioning (``n_mels``).
        out_channels: channels of the output (``2 * in_channels``: log-scale and shift).
        layers: number of gated layers.
        kernel_size: ``(kh, kw)``, ``(3, 3)`` in the paper.
        height_dilations: one height dilation per layer (the paper's cycle depends on ``h``).
        width_dilations: one width dilation per layer; default ``2 ** layer``.
    """

    def __init__(
        self,
        in_channels: int,
        residual_channels: int,
        aux_channels: int,
        out_channels: int,
        layers: int,
        kernel_size: tuple[int, int] = (3, 3),
        height_dilations: Sequence[int] | None = None,
        width_dilations: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        hd = list(height_dilations) if height_dilations is not None else [1] * layers
        wd = list(width_dilations) if width_dilations is not None else [2**i for i in range(layers)]
        if len(hd) != layers or len(wd) != layers:
            raise ValueError(
                f"WaveNet2D: expected {layers} height and width dilations, got {len(hd)} and {len(wd)}"
            )
        if min(hd + wd) < 1 or min(kernel_size) < 1 or layers < 1:
            raise ValueError(
                f"WaveNet2D: dilations, kernel sizes and layers must be >= 1, got "
                f"height_dilations={hd}, width_dilations={wd}, "
                f"kernel_size={tuple(kernel_size)}, layers={layers}"
            )
        self.in_channels = in_channels
        self.residual_channels = residual_channels
        self.aux_channels = aux_channels
        self.out_channels = out_channels
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.height_dilations = hd
        self.width_dilations = wd
        self.start_conv = wn(nn.Conv2d(in_channels, residual_channels, 1), fan_in_std(in_channels))
        self.layers = nn.ModuleList(
            WaveNet2DLayer(residual_channels, aux_channels, self.kernel_size, (dh, dw))
            for dh, dw in zip(hd, wd, strict=True)
        )
        self.end_conv = zero_conv(nn.Conv2d(residual_channels, out_channels, 1))

    @property
    def receptive_rows(self) -> int:
        """How many rows above (and including) row ``i`` can influence output row ``i``."""
        return 1 + sum((self.kernel_size[0] - 1) * d for d in self.height_dilations)

    def forward(self, x: Tensor, aux: Tensor) -> Tensor:
        """Parallel pass over all rows (training / density evaluation)."""
        if (
            aux is None
            or aux.dim() != 4
            or aux.shape[1] != self.aux_channels
            or aux.shape[0] != x.shape[0]
            or aux.shape[2:] != x.shape[2:]
        ):
            got = None if aux is None else tuple(aux.shape)
            raise ValueError(
                f"WaveNet2D: expected aux of shape ({x.shape[0]}, {self.aux_channels}, {x.shape[2]}, "
                f"{x.shape[3]}), got {got}"
            )
        h = self.start_conv(x)
        skip_sum: Tensor | None = None
        for layer in self.layers:
            h, skip = layer(h, aux)
            skip_sum = skip if skip_sum is None else skip_sum + skip
        assert skip_sum is not None
        return self.end_conv(skip_sum)

    # ------------------------------------------------------------------ incremental protocol
    def start(
        self,
        aux: Tensor,
        *,
        batch: int,
        width: int,
        dtype: torch.dtype | None = None,
        reuse: object = None,
    ) -> WaveNet2DState:
        """Fold the weights (weight norm, the conditioning 1x1 convs, the biases) into plain ``dtype``
        tensors and allocate the ring buffers and work buffers (:func:`start_rows`).
        Nothing of the module is modified; call again after the weights change. ``reuse``: a finished
        state whose buffers may be recycled (it must not be stepped afterwards)."""
        return start_rows(self, aux, batch=batch, width=width, dtype=dtype, reuse=reuse)

    def step(self, row: Tensor, state: WaveNet2DState) -> Tensor:
        """Output row ``state.row`` (``(B, out, W)``, a view into a reused buffer) from input row
        ``row`` (``(B, in, W)``); advances the state by one row."""
        return step_row(state, row)

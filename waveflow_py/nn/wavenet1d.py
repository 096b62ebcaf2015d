"""1-D WaveNet conditioner of WaveGlow's affine coupling layers (Prenger, Valle & Catanzaro 2019,
"WaveGlow: A Flow-based Generative Network for Speech Synthesis"; van den Oord et al. 2016).

``(B, in_channels, T), aux (B, aux_channels, T) -> (B, out_channels, T)``: a 1x1 start conv, ``layers``
non-causal dilated convolutions (kernel ``kernel_size``, dilation from ``dilation_cycle``), gated
``tanh * sigmoid`` with the conditioning added by a 1x1 conv, 1x1 residual/skip convolutions (the last
layer has skip channels only), and a zero-initialised 1x1 end conv of the summed skips (so the coupling
starts as the identity). Convolutions are weight-normed.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from waveflow_py.nn.gated import gated_tanh, split_residual_skip
from waveflow_py.nn.weight_norm import fan_in_std, wn, zero_conv

__all__ = ["WaveNet1D"]


class WaveNet1D(nn.Module):
    """Non-causal 1-D WaveNet: ``(B, in, T), aux (B, A, T) -> (B, out, T)``.

    Args:
        in_channels: channels of the input half (WaveGlow: ``n_remaining // 2``).
        residual_channels: channels of the residual stream (WaveGlow: 256 or 512).
        skip_channels: channels of the skip stream (WaveGlow: same as residual).
        out_channels: channels of the output (``2 * (channels transformed)``: log-scale and shift).
        aux_channels: channels of the conditioning (upsampled, grouped mel).
        layers: number of gated layers (WaveGlow: 8).
        kernel_size: odd kernel size (WaveGlow: 3).
        dilation_cycle: per-layer dilations, repeated; default ``2 ** layer``.
    """

    def __init__(
        self,
        in_channels: int,
        residual_channels: int,
        skip_channels: int,
        out_channels: int,
        aux_channels: int,
        layers: int,
        kernel_size: int = 3,
        dilation_cycle: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(f"WaveNet1D: kernel_size must be odd and positive, got {kernel_size}")
        if layers < 1:
            raise ValueError(f"WaveNet1D: layers must be >= 1, got {layers}")
        cycle = list(dilation_cycle) if dilation_cycle else [2**i for i in range(layers)]
        if min(cycle) < 1:
            raise ValueError(f"WaveNet1D: dilations must be >= 1, got {cycle}")
        self.dilations = [cycle[i % len(cycle)] for i in range(layers)]
        self.residual_channels = residual_channels
        self.skip_channels = skip_channels
        c = residual_channels
        self.start_conv = wn(nn.Conv1d(in_channels, c, 1), fan_in_std(in_channels))
        self.in_layers = nn.ModuleList(
            wn(
                nn.Conv1d(c, 2 * c, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2),
                fan_in_std(c * kernel_size),
            )
            for d in self.dilations
        )
        # one fused 1x1 conv gives every layer's conditioning
        self.cond = wn(nn.Conv1d(aux_channels, 2 * c * layers, 1), fan_in_std(aux_channels))
        self.res_skip = nn.ModuleList(
            wn(nn.Conv1d(c, (c if i < layers - 1 else 0) + skip_channels, 1), fan_in_std(c))
            for i in range(layers)
        )
        self.end_conv = zero_conv(nn.Conv1d(skip_channels, out_channels, 1))

    def forward(self, x: Tensor, aux: Tensor) -> Tensor:
        h = self.start_conv(x)
        conds = self.cond(aux).chunk(len(self.in_layers), dim=1)
        skip_sum: Tensor | None = None
        for conv, rs, cond in zip(self.in_layers, self.res_skip, conds, strict=True):
            res, skip = split_residual_skip(rs(gated_tanh(conv(h) + cond)), self.skip_channels)
            if res is not None:
                h = h + res
            skip_sum = skip if skip_sum is None else skip_sum + skip
        assert skip_sum is not None
        return self.end_conv(skip_sum)

"""Audio layers without flow logic: WaveNet blocks (1-D and 2-D), the mel upsampler, weight-norm
helpers and the explicit row cache of the 2-D WaveNet."""

from waveflow_py.nn.gated import gated_tanh, split_residual_skip
from waveflow_py.nn.upsample import MelUpsampler, factor_hop
from waveflow_py.nn.wavenet1d import WaveNet1D
from waveflow_py.nn.wavenet2d import WaveNet2D, WaveNet2DLayer
from waveflow_py.nn.wavenet2d_step import WaveNet2DState
from waveflow_py.nn.weight_norm import folded_weight, wn, zero_conv

__all__ = [
    "gated_tanh",
    "split_residual_skip",
    "MelUpsampler",
    "factor_hop",
    "WaveNet1D",
    "WaveNet2D",
    "WaveNet2DLayer",
    "WaveNet2DState",
    "folded_weight",
    "wn",
    "zero_conv",
]

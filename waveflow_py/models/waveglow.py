"""WaveGlow (Prenger, Valle & Catanzaro 2019, "WaveGlow: A Flow-based Generative Network for Speech
Synthesis", ICASSP), assembled from the shared parts: :class:`~waveflow_py.flows.glow.InvConv1x1`,
:class:`~waveflow_py.flows.coupling.AffineCoupling` (channel halves) with a
:class:`~waveflow_py.nn.wavenet1d.WaveNet1D` conditioner, and the
:class:`~waveflow_py.nn.upsample.MelUpsampler`.

A waveform ``x (B, T)`` is squeezed by groups of ``g = n_group`` into ``(B, g, T / g)`` (column ``j``
holds samples ``j*g .. j*g + g - 1``, channel ``i`` of column ``j`` is sample ``j*g + i``); the upsampled
mel ``(B, n_mels, T)`` is squeezed the same way into ``(B, n_mels * g, T / g)`` and is the context of every
coupling. ``n_flows`` steps of ``InvConv1x1 -> AffineCoupling`` follow; before step ``k`` (``k > 0``,
``k % n_early_every == 0``) the first ``n_early_size`` channels leave the flow as early outputs (they are
part of ``z``), so later steps act on fewer channels. ``z`` is unsqueezed back to ``(B, T)``: channel order
``[early_1, early_2, ..., last]``.

Lengths: any ``T`` works: ``forward`` zero-pads the waveform to ``T' = ceil(T / g) * g`` and returns ``z``
of length ``T'`` (so ``inverse(forward(x)) == x`` exactly on ``T'``); ``inverse`` zero-pads ``z`` the same
way and trims to ``z``'s length. ``mel`` must cover the audio (``F * hop >= T``); extra conditioning is
trimmed and the at most ``g - 1`` padded samples reuse the last conditioning value.

The inverse is parallel over time, so its cache (:class:`WaveGlowCache`) is modest: weight norm folded
once per call (``torch.nn.utils.parametrize.cached``), the inverse matrices of the 1x1 convolutions
computed once per call in float64, no autograd, and optionally a lower compute dtype for the WaveNets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from waveflow_py.config import WaveGlowConfig
from waveflow_py.flows.base import Composite
from waveflow_py.flows.coupling import AffineCoupling
from waveflow_py.flows.glow import InvConv1x1
from waveflow_py.models.base import MelFlowVocoder
from waveflow_py.nn.upsample import TransposedConv1dUpsampler
from waveflow_py.nn.wavenet1d import WaveNet1D

__all__ = ["WaveGlow", "WaveGlowCache", "early_channels"]


def early_channels(n_group: int, n_flows: int, every: int, size: int) -> list[int]:
    """Channels each flow step acts on (``n_group`` minus the early outputs taken before it)."""
    out, c = [], n_group
    for k in range(n_flows):
        if k > 0 and k % every == 0:
            c -= size
        out.append(c)
    return out


@dataclass
class WaveGlowCache:
    """Explicit cache of WaveGlow's fast inverse: ``inverse(z, mel, cache=WaveGlowCache(dtype=...))``.

    ``dtype``: compute dtype of the WaveNets (``None``: their parameters' dtype; ``torch.bfloat16`` /
    ``torch.float16`` run them under autocast, the couplings' affine maps and 1x1 convs stay in the dtype
    of ``z``). Everything is rebuilt from the current weights on every call, so it never goes stale;
    ``inverse_weights`` keeps the latest inverse 1x1 matrices for inspection.
    """

    dtype: torch.dtype | None = None
    inverse_weights: list[Tensor] | None = None


class WaveGlow(MelFlowVocoder):
    """WaveGlow vocoder: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')`` (see the module docstring).

    ``forward(audio, mel) -> (z, log|det dz/dx| (B,))``; ``inverse(z, mel, cache=None) -> (audio,
    log|det dx/dz|)``; ``log_prob(audio, mel) -> (B,)`` nats per sample; mel -> audio is
    :func:`waveflow_py.inference.synthesize`.
    """

    def __init__(self, cfg: WaveGlowConfig) -> None:
        if not isinstance(cfg, WaveGlowConfig):
            raise ValueError(f"WaveGlow: expected a WaveGlowConfig, got {type(cfg).__name__}")
        g = cfg.n_group
        if g < 2 or cfg.n_flows < 1 or cfg.n_early_every < 1 or cfg.n_early_size < 0 or cfg.n_layers < 1:
            raise ValueError(
                f"WaveGlow: expected n_group >= 2, n_flows >= 1, n_early_every >= 1, n_early_size >= 0 and "
                f"n_layers >= 1, got {g}, {cfg.n_flows}, {cfg.n_early_every}, {cfg.n_early_size}, "
                f"{cfg.n_layers}"
            )
        channels = early_channels(g, cfg.n_flows, cfg.n_early_every, cfg.n_early_size)
        if channels[-1] < 2:
            raise ValueError(
                f"WaveGlow: early outputs leave {channels[-1]} channel(s) for the last flow of "
                f"n_group={g}; need >= 2 (fewer/smaller early outputs or a larger n_group)"
            )
        super().__init__(
            cfg.mel,
            g,
            cfg.upsample_scales,
            cfg.sigma,
            cfg.source_filter,
        )
        if cfg.upsampler == "nvidia":  # NVIDIA's single ConvTranspose1d (imported checkpoints)
            self.upsampler = TransposedConv1dUpsampler(cfg.mel.n_mels, cfg.mel.hop_length)
        self.config = cfg
        self.channels = channels
        aux = cfg.mel.n_mels * g if cfg.condition == "squeeze" else cfg.mel.n_mels
        self.flows = nn.ModuleList(Composite([InvConv1x1(c), self._coupling(c, aux)]) for c in self.channels)

    def fast_cache(self, dtype: torch.dtype | None = None) -> WaveGlowCache:
        return WaveGlowCache(dtype=dtype)

    def _coupling(self, c: int, aux: int) -> AffineCoupling:
        cfg = self.config
        net = WaveNet1D(
            c // 2,
            cfg.residual_channels,
            cfg.residual_channels,
            2 * (c - c // 2),
            aux,
            cfg.n_layers,
            cfg.kernel_size,
        )
        if cfg.scale_bound is None:  # WaveGlow's unbounded exp scale (releases before scale_bound)
            return AffineCoupling(c, net, mask="half", scale="exp", conditional=True)
        return AffineCoupling(
            c, net, mask="half", scale="tanh", scale_bound=cfg.scale_bound, conditional=True
        )

    # ------------------------------------------------------------------ shapes
    def _squeeze(self, x: Tensor) -> Tensor:
        """``(B, C, T) -> (B, C * g, T / g)``; channel ``c*g + i`` of column ``j`` is ``x[:, c, j*g + i]``."""
        b, c, t = x.shape
        g = self.n_group
        return x.reshape(b, c, t // g, g).transpose(2, 3).reshape(b, c * g, -1)

    def _condition(self, mel: Tensor, length: int) -> Tensor:
        """The couplings' context: the squeezed upsampled mel ``(B, n_mels * g, T / g)``, or with
        ``condition="pooled"`` its mean over each group of ``g`` samples ``(B, n_mels, T / g)``."""
        if self.config.condition == "squeeze":
            return super()._condition(mel, length)
        cond = self.upsampler(mel)
        if cond.shape[-1] < length:
            cond = F.pad(cond, (0, length - cond.shape[-1]), mode="replicate")
        b, c, _ = cond.shape
        return cond[..., :length].reshape(b, c, length // self.n_group, self.n_group).mean(-1)

    def _unsqueeze(self, x: Tensor) -> Tensor:
        """``(B, g, T / g) -> (B, T)``, the inverse of :meth:`_squeeze` for one channel."""
        return x.transpose(1, 2).reshape(x.shape[0], -1)

    def _early(self, k: int) -> bool:
        return k > 0 and k % self.config.n_early_every == 0

    # ------------------------------------------------------------------ the flow
    def _flow_forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """The flows only: ``x (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``."""
        x, cond = self._fold(audio, mel, "audio")
        outs: list[Tensor] = []
        total = audio.new_zeros(audio.shape[0])
        for k, flow in enumerate(self.flows):
            if self._early(k):
                outs.append(x[:, : self.config.n_early_size])
                x = x[:, self.config.n_early_size :]
            x, ld = flow(x, cond)
            total = total + ld
        outs.append(x)
        return self._unsqueeze(torch.cat(outs, dim=1)), total

    def _flow_inverse(
        self, z: Tensor, mel: Tensor, cache: WaveGlowCache | None = None
    ) -> tuple[Tensor, Tensor]:
        """The flows only: ``z (B, T), mel -> (x (B, T), log|det dx/dz| (B,))``.

        ``cache=None``: the reference (differentiable). ``cache=WaveGlowCache(dtype=...)``: the same
        inverse without autograd, weight norm folded once, 1x1 inverses precomputed, WaveNets optionally
        in ``dtype``.
        """
        if cache is not None and not isinstance(cache, WaveGlowCache):
            raise ValueError(f"cache: expected None or a WaveGlowCache, got {type(cache).__name__}")
        if cache is None:
            return self._inverse(z, mel, None)
        with torch.no_grad(), parametrize.cached():
            return self._inverse(z, mel, cache)

    def _inverse(self, z: Tensor, mel: Tensor, cache: WaveGlowCache | None) -> tuple[Tensor, Tensor]:
        y, cond = self._fold(z, mel, "z")
        if cache is not None:
            cache.inverse_weights = [flow.transforms[0].inverse_weight(y.dtype) for flow in self.flows]
        early = self.config.n_early_size
        pos = self.n_group - self.channels[-1]
        x = y[:, pos:]
        total = z.new_zeros(z.shape[0])
        for k in range(len(self.flows) - 1, -1, -1):
            flow = self.flows[k]
            if cache is None:
                x, ld = flow.inverse(x, cond)
            else:
                x, ld = self._cached_step(flow, x, cond, cache.inverse_weights[k], cache.dtype)
            total = total + ld
            if self._early(k):
                x = torch.cat([y[:, pos - early : pos], x], dim=1)
                pos -= early
        return self._unsqueeze(x)[:, : z.shape[1]], total

    def _cached_step(
        self, flow: Composite, y: Tensor, cond: Tensor, w_inv: Tensor, dtype: torch.dtype | None
    ) -> tuple[Tensor, Tensor]:
        conv, coupling = flow.transforms
        with self._autocast(y, dtype):
            x, ld = coupling.inverse(y, cond)
        x, ld_conv = conv.inverse_with(x.to(y.dtype), w_inv)
        return x, ld.to(y.dtype) + ld_conv

    @staticmethod
    @contextlib.contextmanager
    def _autocast(y: Tensor, dtype: torch.dtype | None) -> Iterator[None]:
        if dtype is None or dtype == y.dtype:
            yield
            return
        with torch.autocast(device_type=y.device.type, dtype=dtype):
            yield

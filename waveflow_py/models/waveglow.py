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
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from waveflow_py.config import WaveGlowConfig
from waveflow_py.flows.base import Composite, check_tensor
from waveflow_py.flows.coupling import AffineCoupling
from waveflow_py.flows.distributions import StandardNormal
from waveflow_py.flows.glow import InvConv1x1
from waveflow_py.nn.upsample import MelUpsampler, factor_hop
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


class WaveGlow(nn.Module):
    """WaveGlow vocoder: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')`` (see the module docstring).

    ``forward(audio, mel) -> (z, log|det dz/dx| (B,))``; ``inverse(z, mel, cache=None) -> (audio,
    log|det dx/dz|)``; ``log_prob(audio, mel) -> (B,)`` nats per sample; ``infer(mel, sigma, lengths,
    generator) -> audio (B, F * hop)``.
    """

    def __init__(self, cfg: WaveGlowConfig) -> None:
        super().__init__()
        if not isinstance(cfg, WaveGlowConfig):
            raise ValueError(f"WaveGlow: expected a WaveGlowConfig, got {type(cfg).__name__}")
        g = cfg.n_group
        if g < 2 or cfg.n_flows < 1 or cfg.n_early_every < 1 or cfg.n_early_size < 0 or cfg.n_layers < 1:
            raise ValueError(
                f"WaveGlow: expected n_group >= 2, n_flows >= 1, n_early_every >= 1, n_early_size >= 0 and "
                f"n_layers >= 1, got {g}, {cfg.n_flows}, {cfg.n_early_every}, {cfg.n_early_size}, "
                f"{cfg.n_layers}"
            )
        self.channels = early_channels(g, cfg.n_flows, cfg.n_early_every, cfg.n_early_size)
        if self.channels[-1] < 2:
            raise ValueError(
                f"WaveGlow: early outputs leave {self.channels[-1]} channel(s) for the last flow of "
                f"n_group={g}; need >= 2 (fewer/smaller early outputs or a larger n_group)"
            )
        self.config = cfg
        scales = list(cfg.upsample_scales) if cfg.upsample_scales else factor_hop(cfg.mel.hop_length)
        if math.prod(scales) != cfg.mel.hop_length:
            raise ValueError(
                f"upsample_scales {scales} multiply to {math.prod(scales)}, "
                f"expected hop_length {cfg.mel.hop_length}"
            )
        self.upsampler = MelUpsampler(scales)
        aux = cfg.mel.n_mels * g
        self.flows = nn.ModuleList(
            Composite([InvConv1x1(c), self._coupling(c, aux)]) for c in self.channels
        )
        self.prior = StandardNormal((1,), sigma=cfg.sigma)

    def _coupling(self, c: int, aux: int) -> AffineCoupling:
        cfg = self.config
        net = WaveNet1D(
            c // 2, cfg.residual_channels, cfg.residual_channels, 2 * (c - c // 2), aux, cfg.n_layers,
            cfg.kernel_size,
        )
        return AffineCoupling(c, net, mask="half", scale="exp", conditional=True)

    # ------------------------------------------------------------------ attributes
    @property
    def hop_length(self) -> int:
        return self.config.mel.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def n_group(self) -> int:
        return self.config.n_group

    # ------------------------------------------------------------------ shapes
    def _check_mel(self, mel: Tensor, batch: int | None = None) -> None:
        check_tensor(mel, name="mel", ndims=(3,))
        if mel.shape[1] != self.config.mel.n_mels:
            raise ValueError(
                f"mel: expected {self.config.mel.n_mels} mel bands (B, n_mels, F), "
                f"got shape {tuple(mel.shape)}"
            )
        if batch is not None and mel.shape[0] != batch:
            raise ValueError(f"mel: expected batch size {batch}, got shape {tuple(mel.shape)}")

    def _check_length(self, length: int, mel: Tensor) -> None:
        if mel.shape[-1] * self.hop_length < length:
            raise ValueError(
                f"mel has {mel.shape[-1]} frames x hop {self.hop_length} = {mel.shape[-1] * self.hop_length} "
                f"samples of conditioning, fewer than the {length} samples of audio"
            )

    def _padded(self, length: int) -> int:
        return -(-length // self.n_group) * self.n_group

    def _squeeze(self, x: Tensor) -> Tensor:
        """``(B, C, T) -> (B, C * g, T / g)``; channel ``c*g + i`` of column ``j`` is ``x[:, c, j*g + i]``."""
        b, c, t = x.shape
        g = self.n_group
        return x.reshape(b, c, t // g, g).transpose(2, 3).reshape(b, c * g, -1)

    def _unsqueeze(self, x: Tensor) -> Tensor:
        """``(B, g, T / g) -> (B, T)``, the inverse of :meth:`_squeeze` for one channel."""
        return x.transpose(1, 2).reshape(x.shape[0], -1)

    def _condition(self, mel: Tensor, length: int) -> Tensor:
        cond = self.upsampler(mel)
        if cond.shape[-1] < length:
            cond = F.pad(cond, (0, length - cond.shape[-1]), mode="replicate")
        return self._squeeze(cond[..., :length])

    def _early(self, k: int) -> bool:
        return k > 0 and k % self.config.n_early_every == 0

    # ------------------------------------------------------------------ the flow
    def forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``, ``T' = ceil(T/g)*g``."""
        check_tensor(audio, name="audio", ndims=(2,))
        self._check_mel(mel, audio.shape[0])
        t = audio.shape[1]
        self._check_length(t, mel)
        tp = self._padded(t)
        x = self._squeeze(F.pad(audio, (0, tp - t)).unsqueeze(1))
        cond = self._condition(mel, tp)
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

    def inverse(self, z: Tensor, mel: Tensor, cache: WaveGlowCache | None = None) -> tuple[Tensor, Tensor]:
        """``z (B, T), mel -> (audio (B, T), log|det dx/dz| (B,))``.

        ``cache=None``: the reference (differentiable). ``cache=WaveGlowCache(dtype=...)``: the same
        inverse without autograd, weight norm folded once, 1x1 inverses precomputed, WaveNets optionally
        in ``dtype``.
        """
        # the finiteness check reads a value on the host: skipped while a CUDA graph is being captured
        check_tensor(z, name="z", ndims=(2,))
        self._check_mel(mel, z.shape[0])
        if cache is not None and not isinstance(cache, WaveGlowCache):
            raise ValueError(f"cache: expected None or a WaveGlowCache, got {type(cache).__name__}")
        t = z.shape[1]
        self._check_length(t, mel)
        if cache is None:
            return self._inverse(z, mel, None)
        with torch.no_grad(), parametrize.cached():
            return self._inverse(z, mel, cache)

    def _inverse(self, z: Tensor, mel: Tensor, cache: WaveGlowCache | None) -> tuple[Tensor, Tensor]:
        t = z.shape[1]
        tp = self._padded(t)
        y = self._squeeze(F.pad(z, (0, tp - t)).unsqueeze(1))
        cond = self._condition(mel, tp)
        if cache is not None:
            cache.inverse_weights = [self._inverse_weight(flow.transforms[0], y.dtype) for flow in self.flows]
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
        return self._unsqueeze(x)[:, :t], total

    @staticmethod
    def _inverse_weight(conv: InvConv1x1, dtype: torch.dtype) -> Tensor:
        # inv_ex: no host-side error check, so the cached inverse can be captured in a CUDA graph
        return torch.linalg.inv_ex(conv.weight().double())[0].to(dtype)

    def _cached_step(
        self, flow: Composite, y: Tensor, cond: Tensor, w_inv: Tensor, dtype: torch.dtype | None
    ) -> tuple[Tensor, Tensor]:
        conv, coupling = flow.transforms
        with self._autocast(y, dtype):
            x, ld = coupling.inverse(y, cond)
        x = torch.matmul(w_inv, x.to(y.dtype))
        return x, ld.to(y.dtype) - conv.log_s.sum() * x.shape[-1]

    @staticmethod
    @contextlib.contextmanager
    def _autocast(y: Tensor, dtype: torch.dtype | None) -> Iterator[None]:
        if dtype is None or dtype == y.dtype:
            yield
            return
        with torch.autocast(device_type=y.device.type, dtype=dtype):
            yield

    def log_prob(self, audio: Tensor, mel: Tensor) -> Tensor:
        """Average log-likelihood in nats per sample ``(B,)`` (of the zero-padded length ``T'``)."""
        z, logabsdet = self(audio, mel)
        return (self.prior.log_prob(z) + logabsdet) / z.shape[1]

    @torch.no_grad()
    def infer(
        self,
        mel: Tensor,
        sigma: float = 1.0,
        lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        cached: bool = True,
    ) -> Tensor:
        """Synthesise ``audio (B, F * hop)`` from ``mel (B, n_mels, F)`` with ``z ~ N(0, sigma^2)``.

        ``lengths``: valid mel frames per item ``(B,)``; samples past ``lengths * hop`` are zeroed (for
        audio that also ignores the padding frames, use :func:`waveflow_py.inference.synthesize`).
        ``dtype``: compute dtype of the WaveNets; ``cached=False`` runs the reference inverse.
        """
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        self._check_mel(mel)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        b, _, frames = mel.shape
        t = frames * self.hop_length
        ref = self.flows[0].transforms[0].log_s
        z = torch.randn(b, self._padded(t), generator=generator, device=ref.device, dtype=ref.dtype) * sigma
        audio, _ = self.inverse(z, mel.to(ref.dtype), cache=WaveGlowCache(dtype=dtype) if cached else None)
        audio = audio[:, :t]
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=audio.device)
            if lengths.shape != (b,) or bool((lengths < 1).any()) or bool((lengths > frames).any()):
                raise ValueError(
                    f"lengths: expected {b} frame counts in [1, {frames}], got {lengths.tolist()}"
                )
            keep = torch.arange(t, device=audio.device)[None, :] < (lengths[:, None] * self.hop_length)
            audio = audio * keep
        return audio

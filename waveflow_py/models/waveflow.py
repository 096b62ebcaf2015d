"""WaveFlow (Ping, Peng, Zhao & Song 2020, "WaveFlow: A Compact Flow-based Model for Raw Audio", ICML).

A waveform ``x (B, T)`` is squeezed to ``X (B, 1, h, W)``, ``W = T / h``, column ``j`` holding samples
``j*h .. j*h + h - 1`` (row ``i`` of column ``j`` is sample ``j*h + i``); the mel spectrogram is
upsampled to the sample rate (:class:`~waveflow_py.nn.upsample.MelUpsampler`) and squeezed the same
way to ``(B, n_mels, h, W)``. ``n_flows`` affine autoregressive flows along the height
(:class:`~waveflow_py.flows.causal.AffineAutoregressive`), each conditioned by a 2-D WaveNet
(:class:`~waveflow_py.nn.wavenet2d.WaveNet2D`), are separated by height permutations applied to the
data and to its conditioning alike: ``"reverse"`` after every flow, or ``"bipartition"`` (reverse after
the first ``n_flows // 2`` flows, then reverse each half of the height separately), as in the paper.

Height-dilation cycles (the paper's settings, as in the authors' PaddlePaddle Parakeet implementation,
``parakeet/models/waveflow.py``; the bipartition permutation is taken from there too):
``h = 8, 16``: all 1; ``h = 32``: 1,2,4,1,2,4,1,2; ``h = 64``: 1,2,4,8,16,1,2,4; width dilations
``2 ** layer``. Defaults: ``WaveFlowConfig()`` = h 16, r 64, 8 flows x 8 layers, tacotron2 mel.

Lengths: any ``T`` works: ``forward`` zero-pads the waveform to ``T' = ceil(T / h) * h`` and returns
``z`` of length ``T'`` (so that ``inverse(forward(x))`` is exact); ``inverse`` zero-pads ``z`` the same
way and trims the result to ``z``'s length. ``mel`` must cover the audio (``F * hop >= T``; a latent
may be as long as ``ceil(F * hop / h) * h``); extra conditioning is trimmed, and the at most ``h - 1``
padded samples reuse the last conditioning value.

Fast synthesis: ``inverse(z, mel, cache=RowCache(dtype=torch.bfloat16))`` runs the same inverse with
each 2-D WaveNet evaluated row by row through its ring-buffer cache; ``infer`` does this by default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.config import WaveFlowConfig
from waveflow_py.flows.base import check_tensor
from waveflow_py.flows.causal import AffineAutoregressive, RowCache
from waveflow_py.flows.distributions import StandardNormal
from waveflow_py.nn.upsample import MelUpsampler, factor_hop
from waveflow_py.nn.wavenet2d import WaveNet2D

__all__ = ["WaveFlow", "PAPER_HEIGHT_DILATIONS", "height_dilations", "height_permutations"]

PAPER_HEIGHT_DILATIONS: dict[int, list[int]] = {
    8: [1, 1, 1, 1, 1, 1, 1, 1],
    16: [1, 1, 1, 1, 1, 1, 1, 1],
    32: [1, 2, 4, 1, 2, 4, 1, 2],
    64: [1, 2, 4, 8, 16, 1, 2, 4],
}


def height_dilations(h: int, n_layers: int) -> list[int]:
    """The paper's height-dilation cycle for ``h`` (repeated/truncated to ``n_layers``).

    For an ``h`` the paper does not list: all 1 up to 16, else the cycle ``1, 2, 4, ...`` up to the
    largest power of two ``<= h / 4`` (an extrapolation of the paper's choices).
    """
    if h in PAPER_HEIGHT_DILATIONS:
        base = PAPER_HEIGHT_DILATIONS[h]
    elif h <= 16:
        base = [1]
    else:
        base = [2**k for k in range(int(math.log2(h / 4)) + 1)]
    return [base[i % len(base)] for i in range(n_layers)]


def height_permutations(h: int, n_flows: int, kind: str) -> list[list[int]]:
    """The permutation of the height applied after each flow (``x_new = x[:, :, perm]``)."""
    rev = list(range(h))[::-1]
    half = h // 2
    bip = list(range(half))[::-1] + list(range(half, h))[::-1]
    if kind == "reverse":
        return [rev for _ in range(n_flows)]
    if kind == "bipartition":
        return [rev if k < n_flows // 2 else bip for k in range(n_flows)]
    raise ValueError(f"permutation: expected 'reverse' or 'bipartition', got {kind!r}")



class WaveFlow(nn.Module):
    """WaveFlow vocoder: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')`` (see the module docstring).

    Methods follow the package interface: ``forward(audio, mel) -> (z, logabsdet (B,))``,
    ``inverse(z, mel, cache=None) -> (audio, logabsdet (B,))``, ``log_prob(audio, mel) -> (B,)`` in nats
    per sample, ``infer(mel, sigma, lengths, generator) -> audio (B, F * hop)``.
    """

    def __init__(self, cfg: WaveFlowConfig) -> None:
        super().__init__()
        if not isinstance(cfg, WaveFlowConfig):
            raise ValueError(f"WaveFlow: expected a WaveFlowConfig, got {type(cfg).__name__}")
        self.config = cfg
        h = cfg.n_group
        if cfg.permutation == "bipartition" and h % 2:
            raise ValueError(f"bipartition permutation needs an even n_group (h), got {h}")
        scales = list(cfg.upsample_scales) if cfg.upsample_scales else factor_hop(cfg.mel.hop_length)
        if math.prod(scales) != cfg.mel.hop_length:
            raise ValueError(
                f"upsample_scales {scales} multiply to {math.prod(scales)}, "
                f"expected hop_length {cfg.mel.hop_length}"
            )
        self.upsampler = MelUpsampler(scales)
        dil = list(cfg.height_dilations) if cfg.height_dilations else height_dilations(h, cfg.n_layers)
        self.flows = nn.ModuleList(
            AffineAutoregressive(
                WaveNet2D(
                    1, cfg.residual_channels, cfg.mel.n_mels, 2, cfg.n_layers, tuple(cfg.kernel_size), dil
                ),
                channels=1,
            )
            for _ in range(cfg.n_flows)
        )
        self.perms = height_permutations(h, cfg.n_flows, cfg.permutation)
        # index tensors as non-persistent buffers: they follow .to(device), stay out of state_dict, and
        # need no host-to-device copy per call (so the cached inverse can be captured in a CUDA graph)
        perm_t = torch.tensor(self.perms, dtype=torch.long)  # (n_flows, h): x_new = x[:, :, perm]
        ctx_idx = [torch.arange(h)]
        for perm in perm_t[:-1]:
            ctx_idx.append(ctx_idx[-1][perm])
        self.register_buffer("_perm", perm_t, persistent=False)
        self.register_buffer("_inv_perm", torch.argsort(perm_t, dim=1), persistent=False)
        # flow k sees the conditioning rows cond[:, :, _ctx_idx[k]]
        self.register_buffer("_ctx_idx", torch.stack(ctx_idx), persistent=False)
        self.prior = StandardNormal((1,), sigma=cfg.sigma)

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

    def _padded(self, length: int) -> int:
        return -(-length // self.n_group) * self.n_group

    def _condition(self, mel: Tensor, length: int) -> Tensor:
        """Upsampled mel for ``length`` samples (a multiple of ``h``), squeezed to ``(B, n_mels, h, W)``."""
        cond = self.upsampler(mel)
        if cond.shape[-1] < length:
            cond = F.pad(cond, (0, length - cond.shape[-1]), mode="replicate")
        return self._squeeze(cond[..., :length])

    def _squeeze(self, x: Tensor) -> Tensor:
        """``(B, C, T) -> (B, C, h, T / h)``: column ``j`` holds samples ``j*h .. j*h + h - 1``."""
        b, c, t = x.shape
        return x.reshape(b, c, t // self.n_group, self.n_group).transpose(2, 3)

    @staticmethod
    def _unsqueeze(x: Tensor) -> Tensor:
        """``(B, 1, h, W) -> (B, h * W)``, the inverse of :meth:`_squeeze` for one channel."""
        return x[:, 0].transpose(1, 2).reshape(x.shape[0], -1)

    def _contexts(self, cond: Tensor) -> list[Tensor]:
        """The conditioning seen by each flow: permuted along the height like the data before it."""
        return [cond if k == 0 else cond[:, :, self._ctx_idx[k]] for k in range(len(self.flows))]

    def _check_length(self, length: int, mel: Tensor, what: str = "audio") -> None:
        """``mel`` must cover ``length`` samples; a latent may be as long as the padded coverage."""
        covered = mel.shape[-1] * self.hop_length
        allowed = covered if what == "audio" else self._padded(covered)
        if allowed < length:
            raise ValueError(
                f"mel has {mel.shape[-1]} frames x hop {self.hop_length} = {covered} samples of "
                f"conditioning, fewer than the {length} samples of {what}"
                + ("" if what == "audio" else f" (at most {allowed}: the conditioning rounded up to h)")
            )

    # ------------------------------------------------------------------ the flow
    def forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``audio (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``, ``T' = ceil(T/h)*h``."""
        check_tensor(audio, name="audio", ndims=(2,))
        self._check_mel(mel, audio.shape[0])
        t = audio.shape[1]
        self._check_length(t, mel)
        tp = self._padded(t)
        x = self._squeeze(F.pad(audio, (0, tp - t)).unsqueeze(1))
        contexts = self._contexts(self._condition(mel, tp))
        total = audio.new_zeros(audio.shape[0])
        for flow, perm, ctx in zip(self.flows, self._perm, contexts, strict=True):
            x, ld = flow(x, ctx)
            x = x[:, :, perm]
            total = total + ld
        return self._unsqueeze(x), total

    def inverse(self, z: Tensor, mel: Tensor, cache: RowCache | None = None) -> tuple[Tensor, Tensor]:
        """``z (B, T), mel -> (audio (B, T), log|det dx/dz| (B,))``.

        ``cache=None``: the reference inverse (differentiable, slow). ``cache=RowCache(dtype=...)``: the
        same inverse with every 2-D WaveNet evaluated row by row through its ring-buffer cache (each row
        computed once, weight norm folded, no autograd); ``dtype=torch.bfloat16`` for fast CPU/GPU
        synthesis where supported. Weights are re-read on every call, so the cache never goes stale.
        """
        # (check_tensor skips its finiteness scan while a CUDA graph is being captured)
        check_tensor(z, name="z", ndims=(2,))
        self._check_mel(mel, z.shape[0])
        if cache is not None and not isinstance(cache, RowCache):
            raise ValueError(
                f"cache: expected None or a waveflow_py.flows.RowCache, got {type(cache).__name__}"
            )
        t = z.shape[1]
        self._check_length(t, mel, what="z")
        tp = self._padded(t)
        y = self._squeeze(F.pad(z, (0, tp - t)).unsqueeze(1))
        contexts = self._contexts(self._condition(mel, tp))
        total = z.new_zeros(z.shape[0])
        for k in reversed(range(len(self.flows))):
            y, ld = self.flows[k].inverse(y[:, :, self._inv_perm[k]], contexts[k], cache=cache)
            total = total + ld
        return self._unsqueeze(y)[:, :t], total

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

        ``lengths``: valid mel frames per item ``(B,)``; samples past ``lengths * hop`` are zeroed.
        ``dtype``: compute dtype of the cached WaveNets (e.g. ``torch.bfloat16``); ``cached=False`` runs
        the reference inverse (slow; for tests).
        """
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        self._check_mel(mel)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        b, _, frames = mel.shape
        t = frames * self.hop_length
        param = self.flows[0].conditioner.end_conv.weight
        z = torch.randn(b, t, generator=generator, device=param.device, dtype=param.dtype) * sigma
        mel = mel.to(param.dtype)
        audio, _ = self.inverse(z, mel, cache=RowCache(dtype=dtype) if cached else None)
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

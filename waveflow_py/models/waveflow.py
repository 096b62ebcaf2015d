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
each 2-D WaveNet evaluated row by row through its ring-buffer cache; :func:`waveflow_py.inference.synthesize`
does this by default.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from waveflow_py.config import WaveFlowConfig
from waveflow_py.flows.causal import AffineAutoregressive, RowCache
from waveflow_py.models.base import MelFlowVocoder
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


class WaveFlow(MelFlowVocoder):
    """WaveFlow vocoder: ``audio (B, T), mel (B, n_mels, F) <-> z (B, T')`` (see the module docstring).

    Methods follow the package interface: ``forward(audio, mel) -> (z, logabsdet (B,))``,
    ``inverse(z, mel, cache=None) -> (audio, logabsdet (B,))``, ``log_prob(audio, mel) -> (B,)`` in nats
    per sample; mel -> audio is :func:`waveflow_py.inference.synthesize`.
    """

    def __init__(self, cfg: WaveFlowConfig) -> None:
        if not isinstance(cfg, WaveFlowConfig):
            raise ValueError(f"WaveFlow: expected a WaveFlowConfig, got {type(cfg).__name__}")
        h = cfg.n_group
        if cfg.permutation == "bipartition" and h % 2:
            raise ValueError(f"bipartition permutation needs an even n_group (h), got {h}")
        super().__init__(
            cfg.mel,
            h,
            cfg.upsample_scales,
            cfg.sigma,
            cfg.source_filter,
        )
        self.config = cfg
        dil = list(cfg.height_dilations) if cfg.height_dilations else height_dilations(h, cfg.n_layers)
        self.flows = nn.ModuleList(
            AffineAutoregressive(
                WaveNet2D(
                    1, cfg.residual_channels, cfg.mel.n_mels, 2, cfg.n_layers, tuple(cfg.kernel_size), dil
                ),
                channels=1,
                scale_bound=cfg.scale_bound,
                identity_first_row=cfg.first_row == "identity",
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

    def fast_cache(self, dtype: torch.dtype | None = None) -> RowCache:
        return RowCache(dtype=dtype)

    # ------------------------------------------------------------------ shapes
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

    # ------------------------------------------------------------------ the flow
    def _flow_forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        """The flows only: ``x (B, T), mel (B, n_mels, F) -> (z (B, T'), log|det dz/dx| (B,))``."""
        x, cond = self._fold(audio, mel, "audio")
        contexts = self._contexts(cond)
        total = audio.new_zeros(audio.shape[0])
        for flow, perm, ctx in zip(self.flows, self._perm, contexts, strict=True):
            x, ld = flow(x, ctx)
            x = x[:, :, perm]
            total = total + ld
        return self._unsqueeze(x), total

    def _flow_inverse(self, z: Tensor, mel: Tensor, cache: RowCache | None = None) -> tuple[Tensor, Tensor]:
        """The flows only: ``z (B, T), mel -> (x (B, T), log|det dx/dz| (B,))``.

        ``cache=None``: the reference inverse (differentiable, slow). ``cache=RowCache(dtype=...)``: the
        same inverse with every 2-D WaveNet evaluated row by row through its ring-buffer cache (each row
        computed once, weight norm folded, no autograd); ``dtype=torch.bfloat16`` for fast CPU/GPU
        synthesis where supported. Weights are re-read on every call, so the cache never goes stale.
        """
        if cache is not None and not isinstance(cache, RowCache):
            raise ValueError(
                f"cache: expected None or a waveflow_py.flows.RowCache, got {type(cache).__name__}"
            )
        y, cond = self._fold(z, mel, "z")
        contexts = self._contexts(cond)
        total = z.new_zeros(z.shape[0])
        for k in reversed(range(len(self.flows))):
            y, ld = self.flows[k].inverse(y[:, :, self._inv_perm[k]], contexts[k], cache=cache)
            total = total + ld
        return self._unsqueeze(y)[:, : z.shape[1]], total

"""A stand-in vocoder with the agreed model interface, for loop tests that must not depend on model code."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from waveflow_py.flows.distributions import StandardNormal


class StandIn(nn.Module):
    """A conditional per-sample affine flow ``z = (x - mu(mel)) * exp(-s(mel))`` with the agreed interface."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.config = cfg
        self.hop_length = cfg.mel.hop_length
        self.sample_rate = cfg.mel.sample_rate
        self.proj = nn.Conv1d(cfg.mel.n_mels, 2 * self.hop_length, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.bias = nn.Parameter(torch.zeros(1))
        self.prior = StandardNormal((1,))

    def _params(self, mel: Tensor, T: int) -> tuple[Tensor, Tensor]:
        h = self.proj(mel)  # (B, 2*hop, F)
        B, _, F = h.shape
        h = h.view(B, 2, self.hop_length, F).permute(0, 1, 3, 2).reshape(B, 2, F * self.hop_length)
        return h[:, 0, :T], h[:, 1, :T] + self.bias

    def forward(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        mu, s = self._params(mel, audio.shape[-1])
        return (audio - mu) * torch.exp(-s), -s.sum(-1)

    def log_prob(self, audio: Tensor, mel: Tensor) -> Tensor:
        z, logdet = self(audio, mel)
        T = audio.shape[-1]
        return (-0.5 * (z**2).sum(-1) - 0.5 * T * math.log(2 * math.pi) + logdet) / T

    # the synthesis interface waveflow_py.inference.synthesize uses (no cache, no envelope)
    n_group = 1

    def fast_cache(self, dtype: Any = None) -> None:
        return None

    def inverse_excitation(self, z: Tensor, mel: Tensor, cache: Any = None) -> tuple[Tensor, Tensor]:
        mu, s = self._params(mel, z.shape[-1])
        return mu + z * torch.exp(s), s.sum(-1)

    def envelope_synthesis(
        self, x: Tensor, mel: Tensor, state: Any = None, sampling: Any = None
    ) -> tuple[Tensor, Tensor, Any]:
        return x, x.new_zeros(x.shape[0]), state

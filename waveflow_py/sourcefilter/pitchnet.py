"""A learned pitch and voicing predictor on the mel: the F0 the harmonic source plays, where the mel's
periodicity analysis alone cannot tell.

The periodicity analysis (:mod:`waveflow_py.sourcefilter.periodicity`) reads one frame's low-band
autocorrelation; on a low voice (harmonics ~2-3 mel bands apart) its peak is weak, so a third or more of
the frames a pitch tracker calls voiced get no harmonics, and the lag it does give is often wrong there
(docs/quality-per-compute.md, section 14). This network sees what the analysis sees (the normalised
autocorrelation over the pitch lags, per frame) beside the log-mel, with +-16 frames of context, and is
trained with pYIN's F0 and voicing on the training audio as labels (:mod:`waveflow_py.train.pitch`,
``waveflow train-pitch``):

* input per frame: ``[log-mel - its maximum (n_mels), the maximum / 10, rho(L) for L = min_lag ..
  max_lag]``;
* a 1-D convolution (kernel 3), four residual dilated convolutions (kernel 3, dilations 1, 2, 4, 8;
  leaky ReLU), a 1x1 output: one voicing logit and ``bins`` pitch logits over log-F0 (25-cent bins from
  :data:`PITCH_FMIN` to :data:`PITCH_FMAX`), as CREPE does for audio (Kim et al. 2018);
* decoding: the voicing probability ``sigmoid(logit)`` and the F0 at the softmax-weighted mean of the
  log-F0 bins within 4 bins of the best one.

The receptive field is :data:`RECEPTIVE_FRAMES` frames on either side: streaming synthesis gives the stage
that much mel before and after the samples it makes (:meth:`SourceFilter.synthesis`'s ``mel_offset``).
No gradient reaches it from the vocoder's training: its weights come from ``waveflow train-pitch``
(``train.pitch_net``) and stay fixed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MelPitchNet",
    "PITCH_CENTS",
    "PITCH_FMAX",
    "PITCH_FMIN",
    "RECEPTIVE_FRAMES",
    "lag_features",
    "pitch_bins",
    "pitch_loss",
    "pitch_targets",
]

PITCH_FMIN = 50.0  # Hz, the lowest bin (the periodicity analysis' longest lag)
PITCH_FMAX = 400.0  # Hz, the highest bin
PITCH_CENTS = 25.0  # bin width
_DILATIONS = (1, 2, 4, 8)
RECEPTIVE_FRAMES = 1 + sum(_DILATIONS)  # frames of context on either side of a frame's output
_DECODE_HALF = 4  # bins either side of the best one in the weighted mean
_TARGET_SIGMA = 1.5  # bins: the Gaussian blur of the pitch targets


def pitch_bins() -> int:
    """The number of log-F0 bins (:data:`PITCH_FMIN` .. :data:`PITCH_FMAX` in :data:`PITCH_CENTS`)."""
    return int(round(1200 * math.log2(PITCH_FMAX / PITCH_FMIN) / PITCH_CENTS)) + 1


def _bin_of(f0: Tensor) -> Tensor:
    """Fractional bin index of an F0 in Hz (clamped to the bin range)."""
    cents = 1200 * torch.log2(f0.clamp_min(1e-3) / PITCH_FMIN)
    return (cents / PITCH_CENTS).clamp(0, pitch_bins() - 1)


class MelPitchNet(nn.Module):
    """``(logmel (B, n_mels, F), rho (B, lags, F)) -> logits (B, 1 + bins, F)`` (module docstring).

    Args:
        n_mels: mel bands of the conditioning.
        lags: autocorrelation lags in the input (``max_lag - min_lag + 1``).
        hidden: channels.
    """

    def __init__(self, n_mels: int, lags: int, hidden: int = 128) -> None:
        super().__init__()
        if min(n_mels, lags, hidden) < 1:
            raise ValueError(f"MelPitchNet: expected positive sizes, got {n_mels}, {lags}, {hidden}")
        self.n_mels, self.lags, self.hidden = int(n_mels), int(lags), int(hidden)
        self.inp = nn.Conv1d(n_mels + 1 + lags, hidden, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv1d(hidden, hidden, 3, padding=d, dilation=d) for d in _DILATIONS])
        self.out = nn.Conv1d(hidden, 1 + pitch_bins(), 1)

    def extra_repr(self) -> str:
        return f"n_mels={self.n_mels}, lags={self.lags}, hidden={self.hidden}, bins={pitch_bins()}"

    def forward(self, logmel: Tensor, rho: Tensor) -> Tensor:
        if logmel.dim() != 3 or logmel.shape[1] != self.n_mels:
            raise ValueError(f"logmel: expected (B, {self.n_mels}, F), got {tuple(logmel.shape)}")
        if rho.shape != (logmel.shape[0], self.lags, logmel.shape[2]):
            raise ValueError(
                f"rho: expected {(logmel.shape[0], self.lags, logmel.shape[2])}, got {tuple(rho.shape)}"
            )
        top = logmel.amax(dim=1, keepdim=True)
        x = self.inp(torch.cat([logmel - top, top / 10, rho], dim=1))
        for block in self.blocks:
            x = x + block(F.leaky_relu(x, 0.2))
        return self.out(F.leaky_relu(x, 0.2))

    @staticmethod
    def decode(logits: Tensor) -> tuple[Tensor, Tensor]:
        """``logits (B, 1 + bins, F) -> (f0 (B, F) Hz, voicing probability (B, F))``; every frame gets an
        F0 (the caller decides what an unvoiced frame's F0 means)."""
        prob = torch.softmax(logits[:, 1:].float(), dim=1)
        best = prob.argmax(dim=1, keepdim=True)
        offsets = torch.arange(-_DECODE_HALF, _DECODE_HALF + 1, device=logits.device)[None, :, None]
        idx = (best + offsets).clamp(0, prob.shape[1] - 1)
        weight = prob.gather(1, idx)
        centre = (weight * idx.float()).sum(1) / weight.sum(1).clamp_min(1e-12)
        f0 = PITCH_FMIN * torch.exp2(centre * PITCH_CENTS / 1200)
        return f0, torch.sigmoid(logits[:, 0].float())


def lag_features(rho: Tensor, min_lag: int, max_lag: int) -> Tensor:
    """The network's autocorrelation input ``(B, lags, F)`` float32 from the periodicity's ``rho (B, F,
    max_lag + 1)`` (:meth:`~waveflow_py.sourcefilter.periodicity.MelPeriodicity.frame_analysis`): lags
    ``min_lag .. max_lag``. Training and synthesis both build it here."""
    return rho[..., min_lag : max_lag + 1].transpose(1, 2).float()


def pitch_targets(f0: Tensor, voiced: Tensor) -> Tensor:
    """Soft pitch targets ``(N, bins)`` for the voiced frames ``f0[voiced]`` (Hz): a Gaussian of
    :data:`_TARGET_SIGMA` bins around each F0's bin, summing to 1."""
    centre = _bin_of(f0[voiced].float())
    grid = torch.arange(pitch_bins(), device=f0.device, dtype=torch.float32)
    t = torch.exp(-0.5 * ((grid[None] - centre[:, None]) / _TARGET_SIGMA) ** 2)
    return t / t.sum(dim=1, keepdim=True)


def pitch_loss(logits: Tensor, f0: Tensor, voiced: Tensor) -> tuple[Tensor, Tensor]:
    """``(voicing BCE, pitch cross-entropy)`` of ``logits (B, 1 + bins, F)`` against labels ``f0 (B, F)``
    (Hz; ignored where unvoiced) and ``voiced (B, F)`` bool. The cross-entropy is over voiced frames only
    (0 when there are none)."""
    bce = F.binary_cross_entropy_with_logits(logits[:, 0].float(), voiced.float())
    if not bool(voiced.any()):
        return bce, logits.new_zeros(())
    log_p = torch.log_softmax(logits[:, 1:].float(), dim=1).transpose(1, 2)[voiced]
    ce = -(pitch_targets(f0, voiced) * log_p).sum(dim=1).mean()
    return bce, ce

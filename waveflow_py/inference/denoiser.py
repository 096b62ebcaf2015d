"""Bias-spectrum denoiser (WaveGlow, Prenger et al. 2019, as in NVIDIA's released inference code).

A trained flow vocoder given a *silent* mel and ``temperature = 0`` still outputs a faint stationary hiss
or hum: its bias. The denoiser measures that bias once, as the average STFT magnitude of the model's
output for a silent mel, then subtracts ``strength * bias`` from the magnitude of every frame of the
audio to clean (clamped at 0), keeps the phase and inverts the STFT. ``strength`` of 0.01-0.1 is
typical; larger values remove more bias and more signal.

Shapes: ``bias_spectrum`` is ``(n_fft // 2 + 1,)``; :meth:`Denoiser.forward` takes ``(T,)`` or
``(B, T)`` audio and returns the same shape, dtype and device.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn

from waveflow_py.audio.conventions import silent_mel
from waveflow_py.config import MelConfig
from waveflow_py.sampling import SamplingConfig

__all__ = ["Denoiser", "check_denoise", "MAX_DENOISE"]

# strength 1 removes the whole bias spectrum from every frame; beyond it the denoiser removes signal
# the model never added (1e9 zeroes the audio)
MAX_DENOISE = 1.0

logger = logging.getLogger(__name__)


def check_denoise(strength: object) -> float:
    """A denoiser strength: a finite number in [0, :data:`MAX_DENOISE`] (0: off; 0.01-0.1 typical)."""
    try:
        value = float(strength)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(strength, bool) or not 0.0 <= value <= MAX_DENOISE:
        raise ValueError(
            f"denoise: expected a strength in [0, {MAX_DENOISE:g}] (0: off; 0.01-0.1 typical), "
            f"got {strength!r}"
        )
    return value


class Denoiser(nn.Module):
    """Subtract a fixed bias magnitude spectrum from audio (WaveGlow-style).

    Args:
        bias_audio: ``(T,)`` or ``(1, T)`` audio of the bias alone (e.g. the model's output for a
            silent mel at temperature 0; see :meth:`from_model`).
        n_fft, hop_length, win_length: the STFT used both to measure and to remove the bias.
    """

    bias_spectrum: Tensor
    window: Tensor

    def __init__(
        self, bias_audio: Tensor, n_fft: int = 1024, hop_length: int = 256, win_length: int | None = None
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        if not (0 < hop_length <= win_length <= n_fft):
            raise ValueError(
                f"expected 0 < hop_length <= win_length <= n_fft, got {hop_length}, {win_length}, {n_fft}"
            )
        bias = bias_audio.detach().reshape(-1).float()
        if bias.numel() < win_length or not bool(torch.isfinite(bias).all()):
            raise ValueError(
                f"bias_audio: expected >= {win_length} finite samples, got {bias.numel()} "
                f"({int((~torch.isfinite(bias)).sum())} non-finite)"
            )
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length, device=bias.device))
        self.register_buffer("bias_spectrum", self._stft(bias[None]).abs().mean(dim=-1)[0])

    @classmethod
    def from_model(
        cls, model: nn.Module, frames: int = 88, sampling: SamplingConfig | None = None
    ) -> Denoiser:
        """Measure ``model``'s bias: ``synthesize(model, silent_mel, temperature=0, sampling=sampling)``
        (``sampling``: the settings the audio to clean is made with, ``None``: the model's; its
        temperature is replaced by 0), STFT as the model's mel."""
        from waveflow_py.inference.synthesis import synthesize

        cfg: MelConfig = model.config.mel
        param = next(model.parameters(), None)
        device = param.device if param is not None else None
        dtype = param.dtype if param is not None else torch.float32
        mel = silent_mel(cfg, frames, device=device, dtype=dtype)
        with torch.inference_mode():
            bias_audio, _ = synthesize(model, mel, temperature=0.0, sampling=sampling)
        denoiser = cls(bias_audio.float(), cfg.n_fft, cfg.hop_length, cfg.win_length)
        logger.debug("denoiser bias spectrum peak %.3g", float(denoiser.bias_spectrum.max()))
        return denoiser

    def _stft(self, audio: Tensor) -> Tensor:
        return torch.stft(
            audio,
            self.n_fft,
            self.hop_length,
            self.win_length,
            window=self.window.to(audio.device),
            center=True,
            return_complex=True,
        )

    def forward(self, audio: Tensor, strength: float = 0.1) -> Tensor:
        """``audio`` (T,) or (B, T) with ``strength * bias_spectrum`` removed from every frame."""
        if not isinstance(audio, Tensor) or audio.dim() not in (1, 2) or audio.shape[-1] == 0:
            shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
            raise ValueError(f"audio: expected a non-empty (T,) or (B, T) tensor, got {shape}")
        strength = check_denoise(strength)
        if strength == 0:
            return audio
        squeeze = audio.dim() == 1
        x = audio.float().reshape(1, -1) if squeeze else audio.float()
        length = x.shape[-1]
        pad = max(0, self.n_fft // 2 + 1 - length)  # reflect padding needs length > n_fft // 2
        if pad:
            x = torch.nn.functional.pad(x, (0, pad))
        spec = self._stft(x)
        bias = self.bias_spectrum.to(spec.device)[None, :, None]
        magnitude = (spec.abs() - strength * bias).clamp_min(0.0)
        cleaned = torch.polar(magnitude, spec.angle())
        out = torch.istft(
            cleaned,
            self.n_fft,
            self.hop_length,
            self.win_length,
            window=self.window.to(x.device),
            center=True,
            length=x.shape[-1],
        )
        out = out[..., :length].to(audio.dtype)
        return out[0] if squeeze else out

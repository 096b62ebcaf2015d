"""Log-mel spectrogram front end (Tacotron 2, Shen et al. 2018: the conditioning of WaveGlow and WaveFlow).

The computation follows the front ends named in :data:`waveflow_py.config.MEL_PRESETS`:

1. pad the waveform: ``"center"`` reflect-pads ``n_fft // 2`` samples on both sides (librosa
   ``center=True``, NVIDIA Tacotron 2 / WaveGlow, ESPnet, torchaudio); ``"hifigan"`` reflect-pads
   ``(n_fft - hop) // 2`` on both sides and does not centre (HiFi-GAN, Kong et al. 2020);
2. STFT with a periodic Hann window of ``win_length`` centred in ``n_fft`` (as librosa and
   ``torch.stft`` place a shorter window);
3. magnitude ``(re^2 + im^2 + mag_eps) ** (power / 2)`` (``power=1``: ``sqrt``; HiFi-GAN adds 1e-9);
4. mel filter bank (``librosa.filters.mel``: slaney or HTK scale, slaney area norm or none);
5. ``log(max(mel, clamp))`` (natural log or log10), then optionally ``(x - mean) / std`` per bin.

Frames: ``F = (T + 2 * pad - n_fft) // hop + 1``; for ``"center"`` with even ``n_fft`` that is
``T // hop + 1``; for ``"hifigan"`` with ``n_fft - hop`` even it is ``T // hop``.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import Tensor, nn

from waveflow_py.config import MelConfig

__all__ = [
    "MelSpectrogram",
    "mel_filter_bank",
    "analysis_window",
    "num_frames",
    "log_compress",
    "log_decompress",
    "pad_amount",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Longer inputs are computed in chunks of this many frames (bounded memory, same result): 4096 frames
# are 47.6 s at 22.05 kHz / hop 256.
DEFAULT_CHUNK_FRAMES = 4096


def mel_filter_bank(cfg: MelConfig) -> np.ndarray:
    """The ``(n_mels, n_fft // 2 + 1)`` float64 mel filter bank of ``cfg`` (via ``librosa.filters.mel``)."""
    return librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk",
        norm="slaney" if cfg.mel_norm == "slaney" else None,
        dtype=np.float64,
    )


def analysis_window(cfg: MelConfig, dtype: torch.dtype = torch.float64) -> Tensor:
    """The front end's ``(n_fft,)`` STFT window: a periodic Hann of ``win_length`` zero-padded to ``n_fft``
    (centred)."""
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    left = (cfg.n_fft - cfg.win_length) // 2
    return nn.functional.pad(window, (left, cfg.n_fft - cfg.win_length - left)).to(dtype)


def pad_amount(cfg: MelConfig) -> int:
    """Samples of padding added on each side of the waveform before the STFT."""
    return cfg.n_fft // 2 if cfg.padding == "center" else (cfg.n_fft - cfg.hop_length) // 2


def num_frames(cfg: MelConfig, length: int) -> int:
    """Mel frames for a waveform of ``length`` samples (0 when it is too short for one frame)."""
    padded = length + 2 * pad_amount(cfg)
    return max(0, (padded - cfg.n_fft) // cfg.hop_length + 1)


def log_compress(mel: Tensor, cfg: MelConfig) -> Tensor:
    """``log(max(mel, clamp))`` (ln or log10 per ``cfg.log``), then ``(x - mean) / std`` if configured."""
    out = torch.clamp(mel, min=cfg.clamp)
    out = torch.log(out) if cfg.log == "ln" else torch.log10(out)
    return _normalise(out, cfg)


def log_decompress(logmel: Tensor, cfg: MelConfig) -> Tensor:
    """Inverse of :func:`log_compress` (undo stats, then exp): the linear mel, floored at ``clamp``."""
    out = logmel
    if cfg.std is not None:
        out = out * _stat(cfg.std, out)
    if cfg.mean is not None:
        out = out + _stat(cfg.mean, out)
    return torch.exp(out) if cfg.log == "ln" else torch.pow(10.0, out)


def _stat(values: list[float], like: Tensor) -> Tensor:
    """A per-bin statistic shaped ``(n_mels, 1)`` to broadcast over ``(..., n_mels, F)``."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).unsqueeze(-1)


def _normalise(logmel: Tensor, cfg: MelConfig) -> Tensor:
    if cfg.mean is not None:
        logmel = logmel - _stat(cfg.mean, logmel)
    if cfg.std is not None:
        logmel = logmel / _stat(cfg.std, logmel)
    return logmel


class MelSpectrogram(nn.Module):
    """Waveform ``(T,)`` or ``(B, T)`` float -> log-mel ``(B, n_mels, F)`` in the input's dtype.

    The mel filter bank ``mel_basis (n_mels, n_fft // 2 + 1)`` and the zero-padded Hann ``window
    (n_fft,)`` are non-persistent buffers: they follow ``.to(device)`` but stay out of model
    state dicts, since they are a pure function of the config (which releases store instead).
    float16/bfloat16 input is computed in float32 (``torch.stft`` needs it on CPU) and cast back.

    Args:
        cfg: the front-end settings; see :data:`waveflow_py.config.MEL_PRESETS` for the named ones.
    """

    mel_basis: Tensor
    window: Tensor

    def __init__(self, cfg: MelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, MelConfig):
            raise ValueError(f"MelSpectrogram: expected a MelConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.n_mels = cfg.n_mels
        self.sample_rate = cfg.sample_rate
        basis = mel_filter_bank(cfg)
        if not np.all(basis.sum(axis=1) > 0):
            empty = np.flatnonzero(basis.sum(axis=1) <= 0).tolist()
            raise ValueError(
                f"mel filter bank has empty filters {empty} (n_mels={cfg.n_mels} is too many for "
                f"n_fft={cfg.n_fft} between {cfg.fmin} and {cfg.fmax} Hz)"
            )
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", analysis_window(cfg, torch.float32), persistent=False)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"preset={c.preset!r}, sample_rate={c.sample_rate}, n_fft={c.n_fft}, hop_length={c.hop_length}, "
            f"n_mels={c.n_mels}, padding={c.padding!r}, log={c.log!r}"
        )

    def num_frames(self, length: int) -> int:
        """Frames produced for ``length`` samples (``T // hop + 1`` for centred padding)."""
        return num_frames(self.config, int(length))

    def forward(self, audio: Tensor, chunk_frames: int | None = DEFAULT_CHUNK_FRAMES) -> Tensor:
        """``audio (T,)`` or ``(B, T)`` -> log-mel ``(B, n_mels, F)``.

        Inputs of more than ``chunk_frames`` frames are computed in chunks of that many frames, each
        cut from the waveform with the STFT's overlap (and the edge padding only at the true edges), so
        the working memory is bounded by the chunk and the result equals the one-shot mel up to float
        rounding (frames are independent). ``None``: always in one piece.
        """
        x = self._check_audio(audio)
        work = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        cfg = self.config
        pad = pad_amount(cfg)
        if pad > 0 and cfg.pad_mode == "reflect" and x.shape[-1] <= pad:
            raise ValueError(
                f"audio of {x.shape[-1]} samples is too short for reflect padding of {pad}: "
                f"need at least {pad + 1} samples"
            )
        frames = num_frames(cfg, x.shape[-1])
        if frames < 1:
            raise ValueError(
                f"audio of {audio.shape[-1]} samples gives no frame: need at least "
                f"{cfg.n_fft - 2 * pad} samples for n_fft={cfg.n_fft} with {cfg.padding!r} padding"
            )
        if chunk_frames is not None and chunk_frames < 1:
            raise ValueError(f"chunk_frames: expected >= 1 or None, got {chunk_frames}")
        # the last chunk gets at least `least` frames, so its slice is longer than the edge padding
        least = cfg.n_fft // cfg.hop_length + 2
        if chunk_frames is None or frames <= chunk_frames + least:
            return self._frames(x, 0, frames, work).to(audio.dtype)
        step = max(chunk_frames, least)
        out = torch.empty(x.shape[0], self.n_mels, frames, dtype=audio.dtype, device=x.device)
        start = 0
        while start < frames:
            stop = frames if frames - start < step + least else start + step
            out[..., start:stop] = self._frames(x, start, stop, work)
            start = stop
        return out

    def _frames(self, x: Tensor, first: int, stop: int, work: torch.dtype) -> Tensor:
        """Frames ``[first, stop)`` of the log-mel of ``x (B, T)`` (edge padding applied where a frame
        reaches past the waveform), in ``work`` precision."""
        cfg = self.config
        pad, hop, t = pad_amount(cfg), cfg.hop_length, x.shape[-1]
        lo = first * hop - pad  # the frames' span in waveform samples (may reach past either edge)
        hi = (stop - 1) * hop + cfg.n_fft - pad
        left, right = max(0, -lo), max(0, hi - t)
        seg = x[:, max(0, lo) : min(t, hi)].to(work)
        if left or right:
            seg = nn.functional.pad(seg.unsqueeze(1), (left, right), mode=cfg.pad_mode).squeeze(1)
        return self._log_mel(seg, work)

    def _log_mel(self, x: Tensor, work: torch.dtype) -> Tensor:
        """Log-mel of the already padded ``x (B, T')``: every ``n_fft`` window at ``hop`` steps."""
        cfg = self.config
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.n_fft,
            window=self.window.to(device=x.device, dtype=work),
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        if cfg.mag_eps:
            power = power + cfg.mag_eps
        else:  # a bin of exact zero power: the magnitude's gradient there is 0, not inf * 0 = nan (a
            # spectral loss through the mel); the value stays far below any log floor
            power = power.clamp_min(torch.finfo(power.dtype).tiny)
        mag = power.sqrt() if cfg.power == 1.0 else power.pow(cfg.power / 2)
        mel = torch.matmul(self.mel_basis.to(device=x.device, dtype=work), mag)
        return log_compress(mel, cfg)

    def _check_audio(self, audio: Tensor) -> Tensor:
        if not isinstance(audio, Tensor):
            raise ValueError(f"MelSpectrogram: expected a torch.Tensor, got {type(audio).__name__}")
        if not audio.is_floating_point():
            raise ValueError(
                f"MelSpectrogram: expected floating-point audio in [-1, 1], got dtype {audio.dtype} "
                "(convert integer PCM with x / 32768)"
            )
        if audio.dim() not in (1, 2):
            raise ValueError(
                f"MelSpectrogram: expected audio of shape (T,) or (B, T), got {tuple(audio.shape)}"
            )
        if audio.numel() == 0:
            raise ValueError(f"MelSpectrogram: got empty audio of shape {tuple(audio.shape)}")
        if not bool(torch.isfinite(audio).all()):
            raise ValueError("MelSpectrogram: audio contains NaN or infinite samples")
        return audio if audio.dim() == 2 else audio.unsqueeze(0)

"""Spectral envelope from a log-mel: per-segment LPC coefficients and gains (no learned parameters).

The mel already gives the spectral envelope and the energy of every frame; :class:`SpectralEnvelope`
turns it into the context of :class:`waveflow_py.sourcefilter.lpc.LPCFilter` (all steps batched over frames):

1. undo the log convention of the :class:`~waveflow_py.config.MelConfig` (stats, ``ln``/``log10``),
   working with each frame divided by its largest band (the scale is carried in the log domain, so
   no value over- or underflows whatever the mel);
2. mel -> linear spectrum by a non-negative pseudo-inverse of the filter bank: multiplicative-update
   NNLS (Lee & Seung 2001) started from the filter-weighted band levels, with the sparse filter bank
   (each bin lies in at most a few triangles), then magnitude -> power (``power=1`` mels: the mean of
   ``|X|^2`` exceeds the square of the mean ``|X|``: an optional factor, 1 by default);
3. power spectrum -> autocorrelation (the inverse real DFT at lags ``0..p`` only), divided by the
   analysis window energy ``sum w^2`` so ``r[0]`` is the frame's mean square in waveform units;
4. a Gaussian lag window (bandwidth ``lag_window_hz``) and a white-noise floor (``r[0] *= 1 + floor``);
5. Levinson-Durbin in float64 (Levinson 1947; Durbin 1960; Makhoul 1975) with every reflection
   coefficient clamped to ``|k| <= max_reflection < 1``, so the all-pole filter is stable by
   construction; then bandwidth expansion ``a_k *= gamma^k`` (poles pulled in by ``gamma``).

Alignment (samples <-> frames): segment ``i`` is samples ``[i*hop, (i+1)*hop)``. ``padding="center"``
frames are centred on sample ``f*hop``, so segment ``i`` lies between frames ``i`` and ``i+1`` and gets
the average of their power spectra (the last frame alone where there is no next one);
``padding="hifigan"`` frame ``f`` is centred on segment ``f`` (``f*hop + hop/2``) and is used as is.
Segments past the mel reuse the last one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from waveflow_py.audio.mel import mel_filter_bank
from waveflow_py.config import MelConfig

__all__ = [
    "SpectralEnvelope",
    "levinson_durbin",
    "reflection_coefficients",
    "frames_for_segments",
    "check_logmel",
]

_LN10 = math.log(10.0)


def levinson_durbin(r: Tensor, max_reflection: float = 0.999) -> tuple[Tensor, Tensor, Tensor]:
    """Levinson-Durbin recursion: autocorrelation ``r (N, p + 1)`` -> predictor ``a (N, p)``,
    prediction error power ``err (N,)`` and reflection coefficients ``k (N, p)``.

    ``x[n] ~ sum_k a_k x[n - k]``; ``|k| <= max_reflection`` (clamped), so ``err > 0`` and the
    synthesis filter ``1 / (1 - sum a_k z^-k)`` is minimum phase. Run it in float64.
    """
    n, p1 = r.shape
    p = p1 - 1
    a = r.new_zeros(n, p)
    err = r[:, 0].clone()
    ks = []
    for i in range(p):
        acc = r[:, i + 1] - (a[:, :i] * r[:, 1 : i + 1].flip(-1)).sum(-1)
        k = (acc / err).clamp(-max_reflection, max_reflection)
        a = torch.cat([a[:, :i] - k[:, None] * a[:, :i].flip(-1), k[:, None], a[:, i + 1 :]], dim=1)
        err = err * (1.0 - k * k)
        ks.append(k)
    return a, err, torch.stack(ks, dim=1) if ks else r.new_zeros(n, 0)


def reflection_coefficients(a: Tensor) -> Tensor:
    """Step-down recursion: predictor ``a (..., p)`` -> reflection coefficients ``(..., p)``.

    The filter is stable iff every ``|k| < 1`` (Makhoul 1975); a ``|k| >= 1`` makes the lower orders
    meaningless (they are returned but the caller should check from the last order down).
    """
    a = a.double()
    p = a.shape[-1]
    ks = []
    for i in range(p, 0, -1):
        k = a[..., i - 1]
        ks.append(k)
        if i > 1:
            prev = a[..., : i - 1]
            a = (prev + k.unsqueeze(-1) * prev.flip(-1)) / (1.0 - k * k).clamp_min(1e-300).unsqueeze(-1)
    return torch.stack(ks[::-1], dim=-1) if ks else a


def check_logmel(logmel: Tensor, cfg: MelConfig, n_segments: int | None) -> int:
    """Check a log-mel ``(B, n_mels, F)`` (shape, finite values); return the segment count."""
    n_mels = cfg.n_mels
    if logmel.dim() != 3 or logmel.shape[1] != n_mels or logmel.shape[0] == 0 or logmel.shape[2] == 0:
        raise ValueError(f"logmel: expected shape (B, {n_mels}, F), B, F >= 1, got {tuple(logmel.shape)}")
    capturing = logmel.is_cuda and torch.cuda.is_current_stream_capturing()  # no host sync in a graph
    if not capturing and not bool(torch.isfinite(logmel).all()):
        raise ValueError("logmel: contains NaN or infinite values")
    segments = logmel.shape[2] if n_segments is None else int(n_segments)
    if segments < 1:
        raise ValueError(f"n_segments: expected >= 1, got {segments}")
    return segments


def frames_for_segments(cfg: MelConfig, n_segments: int) -> int:
    """Mel frames that segments ``0 .. n_segments - 1`` use (one more for centred frames)."""
    return n_segments + 1 if cfg.padding == "center" else n_segments


class SpectralEnvelope(nn.Module):
    """log-mel ``(B, n_mels, F)`` -> LPC ``a (B, S, p)`` and log-gain ``(B, S)`` (waveform units).

    Args:
        cfg: the mel front end the log-mel came from (any preset of ``MEL_PRESETS``).
        order: LPC order ``p`` (0: the gain only, i.e. the frame RMS from the spectrum).
        preemphasis: the envelope of ``x[n] - alpha x[n-1]`` instead of ``x`` (0: none).
        nnls_iters: multiplicative-update iterations of the filter-bank pseudo-inverse (each one brings
            ``W S`` closer to the mel; few keep long inputs fast: docs/implementation-notes.md).
        lag_window_hz: Gaussian lag-window bandwidth (smooths sharp peaks; 0: none).
        noise_floor: white-noise correction ``r[0] *= 1 + noise_floor`` (-40 dB by default: it caps the
            prediction gain, so poles cannot crowd the unit circle, where a direct-form filter of order
            16 is numerically unstable even in float64; a lower floor trades that safety for a little
            likelihood: docs/implementation-notes.md).
        gamma: bandwidth expansion ``a_k *= gamma^k``.
        max_reflection: clamp of the reflection coefficients.
        chunk_frames: frames per step of the NNLS (bounds memory).
        magnitude_correction: ``power=1`` mels only: factor from the squared mean magnitude to the mean
            power (``4 / pi`` for Rayleigh-distributed bins; 1 by default, closer on speech, where the
            smoothing of the mel already spreads energy: docs/implementation-notes.md; the model's
            calibration absorbs the rest).

    Filters are plain tensors (a pure function of ``cfg``, kept per device, out of state dicts and
    untouched by a model's ``.half()``). The output is in the mel's dtype
    (float32 at least); everything after the NNLS runs in float64.
    """

    def __init__(
        self,
        cfg: MelConfig,
        order: int,
        *,
        preemphasis: float = 0.0,
        nnls_iters: int = 2,
        lag_window_hz: float = 10.0,
        noise_floor: float = 1e-4,
        gamma: float = 0.999,
        max_reflection: float = 0.999,
        chunk_frames: int = 8192,
        magnitude_correction: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(cfg, MelConfig):
            raise ValueError(f"SpectralEnvelope: expected a MelConfig, got {type(cfg).__name__}")
        if order < 0 or order >= cfg.n_fft // 2:
            raise ValueError(f"order: expected 0 <= order < n_fft / 2 = {cfg.n_fft // 2}, got {order}")
        if not (0.0 <= preemphasis < 1.0 and 0.0 < gamma <= 1.0 and 0.0 < max_reflection < 1.0):
            raise ValueError(
                "expected 0 <= preemphasis < 1, 0 < gamma <= 1 and 0 < max_reflection < 1, "
                f"got {preemphasis}, {gamma}, {max_reflection}"
            )
        if nnls_iters < 0 or noise_floor < 0 or lag_window_hz < 0 or chunk_frames < 1:
            raise ValueError("nnls_iters, noise_floor and lag_window_hz must be >= 0, chunk_frames >= 1")
        self.config, self.order = cfg, order
        self.nnls_iters, self.noise_floor = nnls_iters, noise_floor
        self.gamma, self.max_reflection, self.chunk_frames = gamma, max_reflection, chunk_frames
        self.magnitude_correction = float(magnitude_correction) if cfg.power == 1.0 else 1.0
        self._register_filters(cfg, order, preemphasis, lag_window_hz)

    def _register_filters(self, cfg: MelConfig, order: int, alpha: float, lag_hz: float) -> None:
        basis = mel_filter_bank(cfg)  # (n_mels, n_freq)
        n_freq = basis.shape[1]
        filters = {
            "basis": torch.from_numpy(basis).float(),
            "row_sum": torch.from_numpy(basis.sum(axis=1)).float(),
            "col_sum": torch.from_numpy(basis.sum(axis=0)).float(),
        }
        # inverse real DFT at lags 0..p, divided by the window energy: r = P @ cos_lag
        n = cfg.n_fft
        freq = np.arange(n_freq)
        weight = np.where((freq == 0) | (2 * freq == n), 1.0, 2.0)
        lags = np.arange(order + 1)
        window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
        energy = float(window.square().sum())
        cos_lag = weight[:, None] * np.cos(2 * np.pi * freq[:, None] * lags[None, :] / n) / (n * energy)
        omega = 2 * np.pi * freq / n
        emphasis = 1.0 + alpha * alpha - 2.0 * alpha * np.cos(omega)  # |1 - alpha e^{-jw}|^2
        sigma = 2 * np.pi * lag_hz / cfg.sample_rate
        lag_window = np.exp(-0.5 * (sigma * lags) ** 2)
        filters["cos_lag"] = torch.from_numpy(cos_lag * emphasis[:, None])
        filters["lag_window"] = torch.from_numpy(lag_window)
        filters["expansion"] = torch.from_numpy(gamma_powers(self.gamma, order))
        # plain tensors, not buffers: a model's .half() / .double() must not round them; moved per device
        self._filters: dict[str, dict[str, Tensor]] = {"cpu": filters}

    def _f(self, device: torch.device) -> dict[str, Tensor]:
        """The filter tensors on ``device`` (float32 NNLS weights, float64 DFT and windows)."""
        key = str(device)
        if key not in self._filters:
            self._filters[key] = {k: v.to(device) for k, v in self._filters["cpu"].items()}
        return self._filters[key]

    # ------------------------------------------------------------------ steps
    def log_linear_mel(self, logmel: Tensor) -> Tensor:
        """The natural log of the front end's linear mel ``(B, n_mels, F)`` (float64)."""
        cfg = self.config
        out = logmel.double()
        if cfg.std is not None:
            out = out * out.new_tensor(cfg.std).unsqueeze(-1)
        if cfg.mean is not None:
            out = out + out.new_tensor(cfg.mean).unsqueeze(-1)
        return out * _LN10 if cfg.log == "log10" else out

    def _nnls(self, mel: Tensor) -> Tensor:
        """Non-negative ``S (N, n_freq)`` with ``W S ~ mel (N, n_mels)`` (multiplicative updates)."""
        f = self._f(mel.device)
        basis = f["basis"]  # (n_mels, n_freq); frames are rows here: W s is s @ basis.T
        numer = mel @ basis
        s = (mel / f["row_sum"]) @ basis / f["col_sum"].clamp_min(1e-30)  # filter-weighted band levels
        for _ in range(self.nnls_iters):
            s = s * numer / ((s @ basis.T) @ basis + 1e-30)
        return s

    def _autocorrelation(self, log_mel: Tensor) -> tuple[Tensor, Tensor]:
        """Per frame ``log_mel (N, n_mels)``: autocorrelation ``(N, p + 1)`` float64 of the frame divided
        by ``exp(scale)``, and the log scale ``(N,)``. Runs by chunks of frames (bounded memory)."""
        out = []
        for c in log_mel.split(self.chunk_frames):
            power, scale = self.frame_power(c)
            out.append((power.double() @ self._f(c.device)["cos_lag"], scale))
        return torch.cat([r for r, _ in out]), torch.cat([sc for _, sc in out])

    def frame_power(self, log_mel: Tensor) -> tuple[Tensor, Tensor]:
        """Per frame ``log_mel (N, n_mels)`` (natural log of the linear mel, see :meth:`log_linear_mel`):
        the power spectrum ``(N, n_fft // 2 + 1)`` float32 divided by ``exp(scale)``, and the log scale
        ``(N,)`` (steps 1-2 of the module docstring; the caller bounds ``N``)."""
        cfg = self.config
        peak = log_mel.amax(dim=-1, keepdim=True)
        s = self._nnls(torch.exp(log_mel - peak).float())  # float32: the frame's largest band is 1
        scale = 2.0 * peak / cfg.power  # log of the factor of |X|^2
        power = s.square() if cfg.power == 1.0 else s if cfg.power == 2.0 else s.pow(2.0 / cfg.power)
        if cfg.mag_eps:
            power = power - (cfg.mag_eps * torch.exp((-scale).clamp(max=700.0))).to(power.dtype)
        return power.clamp_min(0.0) * self.magnitude_correction, scale.squeeze(-1)

    def _align(self, power: Tensor, scale: Tensor, n_segments: int) -> tuple[Tensor, Tensor]:
        """Per frame ``(B, F, L)`` (autocorrelations, linear in the power spectrum) with log scales
        ``(B, F)`` -> per segment ``(B, S, L)`` and ``(B, S)``."""
        frames = power.shape[1]
        seg = torch.arange(n_segments, device=power.device).clamp(max=frames - 1)
        if self.config.padding == "hifigan":
            return power[:, seg], scale[:, seg]
        nxt = (seg + 1).clamp(max=frames - 1)
        s0, s1 = scale[:, seg], scale[:, nxt]
        top = torch.maximum(s0, s1)
        w0, w1 = torch.exp(s0 - top).unsqueeze(-1), torch.exp(s1 - top).unsqueeze(-1)
        mix = 0.5 * (power[:, seg] * w0 + power[:, nxt] * w1)
        return mix, top

    # ------------------------------------------------------------------ the module
    def forward(self, logmel: Tensor, n_segments: int | None = None) -> tuple[Tensor, Tensor]:
        """``logmel (B, n_mels, F) -> (a (B, S, p), log_gain (B, S))``, ``S = n_segments`` (default ``F``)."""
        segments = check_logmel(logmel, self.config, n_segments)
        b = logmel.shape[0]
        used = min(logmel.shape[2], frames_for_segments(self.config, segments))
        log_mel = self.log_linear_mel(logmel[:, :, :used]).transpose(1, 2)  # (B, F, n_mels)
        r, scale = self._autocorrelation(log_mel.reshape(-1, log_mel.shape[-1]))
        r, scale = self._align(r.reshape(b, used, -1), scale.reshape(b, used), segments)
        f = self._f(logmel.device)
        r = r * f["lag_window"]  # (B, S, p + 1), waveform units after exp(scale)
        r0 = r[..., 0] * (1.0 + self.noise_floor)
        tiny = r0.clamp_min(1e-300) * 1e-12  # only for an all-zero spectrum (not a mel: mels are >= clamp)
        r = torch.cat([(r0 + tiny).unsqueeze(-1), r[..., 1:]], dim=-1)
        a, err, _ = levinson_durbin(r.reshape(-1, self.order + 1), self.max_reflection)
        a = (a * f["expansion"]).reshape(b, segments, self.order)
        log_gain = 0.5 * (torch.log(err.reshape(b, segments)) + scale)
        dtype = logmel.dtype if logmel.dtype == torch.float64 else torch.float32
        return a.to(dtype), log_gain.to(dtype)


def gamma_powers(gamma: float, order: int) -> np.ndarray:
    """``gamma^k`` for ``k = 1..order`` (bandwidth expansion)."""
    return gamma ** np.arange(1, order + 1, dtype=np.float64)

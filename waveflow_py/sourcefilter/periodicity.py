"""Pitch lag and long-term prediction gain from a log-mel (no learned parameters).

The context of :class:`waveflow_py.sourcefilter.ltp.LongTermPredictor`: per hop segment a lag ``L`` (samples)
and a gain ``b`` (how strongly the excitation repeats itself ``L`` samples later). A 16 kHz mel with a
64 ms window resolves the low harmonics of speech (Slaney mel bands are ~37 Hz wide below 1 kHz), so:

1. the power spectrum of each frame comes from the mel's non-negative pseudo-inverse
   (:meth:`~waveflow_py.sourcefilter.envelope.SpectralEnvelope.frame_power`, more NNLS iterations than the
   envelope uses, to sharpen the harmonics);
2. it is low-passed (below ``cutoff_hz``, where the harmonics are resolved) and turned into a
   normalised autocorrelation ``rho(L) = r(L) / r(0)`` by an inverse real DFT, divided by the analysis
   window's own normalised autocorrelation (the window tapers long lags; uncorrected, every peak leans
   towards shorter lags);
3. segments get frames as the envelope does (centred frames: the mean of frames ``i`` and ``i + 1``);
4. the lag is a peak of ``rho`` over ``[min_lag, max_lag]`` (50-400 Hz by default), chosen by
   :func:`pick_lag`: ``lag="highest"`` takes the argmax (integer lags; what releases before the option
   used), ``lag="first"`` the shortest-lag local maximum whose parabolic peak is within
   :data:`FIRST_PEAK_RATIO` of the highest, at its fractional parabolic position (a periodic signal's
   autocorrelation peaks at every multiple of its period about equally, and the window correction and
   integer sampling tip the argmax towards a multiple: octave errors down);
5. the gain is ``b = clamp(strength * (rho - threshold) / (1 - threshold), 0, max_gain)`` at that peak:
   unvoiced frames (a low peak) get ``b = 0``.

``strength`` and ``threshold`` trade likelihood against voicing (a stronger gain makes noise through the
filters voiced, while the likelihood of the real excitation falls): measured in
docs/quality-per-compute.md section 7 (``experiments/pitch_prior.py``).

Resolution: below 1 kHz the 16 kHz presets' Slaney mel bands are 37 Hz apart, so the mel samples the
harmonic ripple of a voice at 37 Hz: a voice whose harmonics are closer than twice that (F0 below about
75 Hz) aliases to a wrong lag, whatever the estimator (docs/quality-per-compute.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from waveflow_py.config import MelConfig
from waveflow_py.sourcefilter.envelope import SpectralEnvelope, check_logmel, frames_for_segments

__all__ = ["MelPeriodicity", "lag_range", "pick_lag", "FIRST_PEAK_RATIO", "LAG_PICKERS"]

FIRST_PEAK_RATIO = 0.85  # lag="first": the shortest-lag peak at least this fraction of the highest
LAG_PICKERS = ("highest", "first")


def lag_range(cfg: MelConfig, f0_min: float = 50.0, f0_max: float = 400.0) -> tuple[int, int]:
    """``(min_lag, max_lag)`` in samples for pitches ``f0_max .. f0_min`` Hz at the mel's rate; the
    longest lag is capped below ``n_fft / 2`` (what the mel's window can show) and the shortest kept
    at 2 or more (the pitch filter's taps reach one sample past the lag)."""
    hi = min(int(math.ceil(cfg.sample_rate / f0_min)), cfg.n_fft // 2 - 1)
    lo = min(max(int(math.floor(cfg.sample_rate / f0_max)), 2), hi)
    if hi < 2:
        raise ValueError(f"pitch prior: n_fft {cfg.n_fft} is too short to show any pitch lag")
    return lo, hi


def pick_lag(rho: Tensor, min_lag: int, how: str = "first") -> tuple[Tensor, Tensor]:
    """The pitch lag and its peak value per row of ``rho (..., max_lag + 1)`` (a normalised
    autocorrelation indexed by lag), searching ``[min_lag, max_lag]``.

    ``how="highest"``: the argmax (an integer lag) and its value. ``how="first"``: among the local maxima
    (``rho[L - 1] <= rho[L] > rho[L + 1]``) the shortest lag whose parabolic peak value is at least
    :data:`FIRST_PEAK_RATIO` of the highest, at its fractional parabolic position; a row without an
    interior local maximum (monotone, or a range of one or two lags) gets the argmax. Returns
    ``(lag, peak)``, each of shape ``rho.shape[:-1]``.
    """
    if how not in LAG_PICKERS:
        raise ValueError(f"pitch lag: expected one of {LAG_PICKERS}, got {how!r}")
    if how == "highest":
        peak, idx = rho[..., min_lag:].max(dim=-1)
        return (idx + min_lag).to(rho.dtype), peak
    left, mid, right = rho[..., :-2], rho[..., 1:-1], rho[..., 2:]
    lags = torch.arange(1, rho.shape[-1] - 1, device=rho.device)
    is_max = (mid >= left) & (mid > right) & (lags >= min_lag)
    curvature = left - 2 * mid + right  # < 0 at a strict maximum
    safe = torch.where(curvature < 0, curvature, torch.full_like(curvature, -1.0))
    shift = torch.where(curvature < 0, 0.5 * (left - right) / safe, torch.zeros_like(mid)).clamp(-0.5, 0.5)
    value = torch.where(is_max, mid - 0.25 * (left - right) * shift, torch.full_like(mid, -math.inf))
    best = value.max(dim=-1, keepdim=True).values
    never = rho.shape[-1]
    ok = is_max & (value >= FIRST_PEAK_RATIO * best)
    first = torch.where(ok, lags, torch.full_like(lags, never)).min(dim=-1).values
    found = first < never
    i = torch.where(found, first - 1, torch.zeros_like(first)).unsqueeze(-1)
    # a row without an interior maximum (a monotone rho, or a range of one or two lags): the argmax
    top_lag, top = pick_lag(rho, min_lag, "highest")
    lag = torch.where(found, first.to(rho.dtype) + shift.gather(-1, i).squeeze(-1), top_lag)
    peak = torch.where(found, value.gather(-1, i).squeeze(-1), top)
    return lag, peak


class MelPeriodicity(nn.Module):
    """log-mel ``(B, n_mels, F)`` -> lag ``(B, S)`` (float, integer-valued) and gain ``(B, S)``.

    Args:
        cfg: the mel front end (any preset; ``max_lag`` must stay below ``n_fft / 2``).
        min_lag, max_lag: the lag range in samples (:func:`lag_range`).
        strength, threshold, max_gain: the gain map (module docstring), ``0 <= threshold < 1``.
        cutoff_hz: the low-pass before the autocorrelation.
        lag: which peak is the lag (:func:`pick_lag`: ``"highest"`` or ``"first"``).
        nnls_iters: iterations of the filter-bank pseudo-inverse.
        chunk_frames: frames per step (bounds memory).
    """

    def __init__(
        self,
        cfg: MelConfig,
        min_lag: int,
        max_lag: int,
        *,
        strength: float = 1.0,
        threshold: float = 0.3,
        max_gain: float = 0.95,
        cutoff_hz: float = 1500.0,
        lag: str = "highest",
        nnls_iters: int = 30,
        chunk_frames: int = 4096,
    ) -> None:
        super().__init__()
        if not 1 <= min_lag <= max_lag < cfg.n_fft // 2:
            raise ValueError(
                f"MelPeriodicity: expected 1 <= min_lag <= max_lag < n_fft / 2 = {cfg.n_fft // 2}, "
                f"got {min_lag}..{max_lag}"
            )
        if not (strength >= 0 and 0 <= threshold < 1 and 0 <= max_gain < 1 and cutoff_hz > 0):
            raise ValueError(
                "MelPeriodicity: expected strength >= 0, 0 <= threshold < 1, 0 <= max_gain < 1 and "
                f"cutoff_hz > 0, got {strength}, {threshold}, {max_gain}, {cutoff_hz}"
            )
        self.config, self.min_lag, self.max_lag = cfg, int(min_lag), int(max_lag)
        self.strength, self.threshold, self.max_gain = float(strength), float(threshold), float(max_gain)
        self.chunk_frames = int(chunk_frames)
        if lag not in LAG_PICKERS:
            raise ValueError(f"MelPeriodicity: lag expected one of {LAG_PICKERS}, got {lag!r}")
        self.lag = lag
        self.spectrum = SpectralEnvelope(cfg, 0, nnls_iters=nnls_iters)
        freq = torch.arange(cfg.n_fft // 2 + 1, dtype=torch.float64) * cfg.sample_rate / cfg.n_fft
        # the analysis window tapers the autocorrelation (r_frame(L) ~ r(L) w(L) / w(0)): divided out,
        # or every peak would lean towards shorter lags
        win = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
        w_ac = torch.fft.irfft(torch.fft.rfft(win, n=2 * cfg.n_fft).abs().square(), n=2 * cfg.n_fft)
        # plain tensors (a pure function of cfg), kept per device like SpectralEnvelope's filters
        self._tables: dict[str, tuple[Tensor, Tensor]] = {
            "cpu": ((freq < cutoff_hz).double(), (w_ac[: max_lag + 1] / w_ac[0]).clamp_min(1e-3))
        }

    def extra_repr(self) -> str:
        return (
            f"lags={self.min_lag}..{self.max_lag}, strength={self.strength}, threshold={self.threshold}, "
            f"max_gain={self.max_gain}, lag={self.lag!r}"
        )

    def _tables_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(low-pass weights (n_freq,), window taper (max_lag + 1,))`` float64 on ``device``."""
        key = str(device)
        if key not in self._tables:
            self._tables[key] = tuple(v.to(device) for v in self._tables["cpu"])  # type: ignore[assignment]
        return self._tables[key]

    def correlation(self, logmel: Tensor) -> Tensor:
        """Normalised low-band autocorrelation per frame ``(B, F, max_lag + 1)`` float64."""
        b, _, frames = logmel.shape
        log_mel = self.spectrum.log_linear_mel(logmel).transpose(1, 2).reshape(b * frames, -1)
        out = []
        lowpass, taper = self._tables_on(logmel.device)
        for c in log_mel.split(self.chunk_frames):
            power, _ = self.spectrum.frame_power(c)
            r = torch.fft.irfft(power.double() * lowpass, n=self.config.n_fft)[:, : self.max_lag + 1]
            out.append(r / r[:, :1].clamp_min(1e-300) / taper)
        return torch.cat(out).reshape(b, frames, -1)

    def forward(
        self, logmel: Tensor, n_segments: int | None = None, strength: float | None = None
    ) -> tuple[Tensor, Tensor]:
        """``logmel (B, n_mels, F) -> (lag (B, S), gain (B, S))``, ``S = n_segments`` (default ``F``).
        ``strength``: the gain map's strength for this call (``None``: the one it was built with; a
        sampling setting, ``SamplingConfig.pitch_strength``)."""
        segments = check_logmel(logmel, self.config, n_segments)
        used = min(logmel.shape[2], frames_for_segments(self.config, segments))
        rho = self.correlation(logmel[:, :, :used])
        seg = torch.arange(segments, device=logmel.device).clamp(max=used - 1)
        if self.config.padding == "hifigan":
            rho = rho[:, seg]
        else:
            rho = 0.5 * (rho[:, seg] + rho[:, (seg + 1).clamp(max=used - 1)])
        lag, peak = pick_lag(rho, self.min_lag, self.lag)
        strength = self.strength if strength is None else float(strength)
        gain = (strength * (peak - self.threshold) / (1.0 - self.threshold)).clamp(0.0, self.max_gain)
        dtype = logmel.dtype if logmel.dtype == torch.float64 else torch.float32
        return lag.to(dtype), gain.to(dtype)

    def frame_pitch(self, logmel: Tensor) -> tuple[Tensor, Tensor]:
        """Per frame (not segment): ``logmel (B, n_mels, F) -> (lag (B, F), peak (B, F))``, the lag in
        samples (fractional with ``lag="first"``) and the normalised autocorrelation at it (0..1)."""
        lag, peak, _ = self.frame_analysis(logmel)
        return lag, peak

    def frame_analysis(self, logmel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`frame_pitch` and the autocorrelation it picked from, ``(B, F, max_lag + 1)`` float64
        (:meth:`correlation`; the learned pitch predictor's input)."""
        check_logmel(logmel, self.config, None)
        rho = self.correlation(logmel)
        lag, peak = pick_lag(rho, self.min_lag, self.lag)
        dtype = logmel.dtype if logmel.dtype == torch.float64 else torch.float32
        return lag.to(dtype), peak.to(dtype), rho

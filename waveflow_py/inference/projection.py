"""Mel projection: a synthesis post-filter that gives the output the magnitude spectrum the mel describes.

A flow vocoder's sample is a fresh draw: even with the right spectral envelope, the STFT magnitude of a
noise-driven sample fluctuates around it bin by bin, and on the dev clips that randomness, not the
envelope, is most of the distance to the reference (docs/quality-per-compute.md, section 15). The mel
already fixes the magnitude (up to its band smoothing); what a model adds that the mel does not carry is
the phase: the harmonics at the right pitch, the voicing, the pulses. The projection keeps the sample's
phase and moves its magnitude onto the mel's:

1. the STFT of the audio on the mel's own frames (``n_fft``, ``hop_length``, Hann of ``win_length``,
   centred with the mel's edge padding), ``Y``;
2. the mel's linear magnitude spectrum ``M`` per frame, by the non-negative pseudo-inverse of the filter
   bank that the envelope prior uses (:meth:`~waveflow_py.sourcefilter.envelope.SpectralEnvelope.frame_power`,
   NNLS multiplicative updates; Griffin-Lim starts from the same kind of magnitude);
3. ``|Y|^(1 - s) * M^s * Y / |Y|`` for strength ``s`` in [0, 1] (0: off; 1: the mel's magnitude with the
   sample's phase); frames past the mel's last one and bins no mel filter covers (e.g. DC) unchanged;
4. the inverse STFT (overlap-add), trimmed to the input's length;
5. optionally ``iters`` Griffin-Lim iterations on that magnitude started from the sample's phase (fast
   Griffin-Lim, Perraudin, Balazs & Sondergaard 2013, momentum 0.99): the overlap-add of step 4 changes
   the magnitudes each frame was given, the iterations make phase and magnitude consistent. Started from
   the model's phase rather than a random one, they keep most of its voicing; below ``lock_hz`` (600 Hz
   by default: the lowest harmonics, where a pitch tracker hears the pitch) they keep the sample's phase
   as it is, which keeps its pitch on low voices (docs/quality-per-compute.md, section 15).

**Fitted magnitude** (``fit >= 1``, mel-constrained Griffin-Lim). Steps 2 and 5 use a different
magnitude: not the mel's smooth pseudo-inverse, the same multiplicative updates *started from the
output's own magnitude* (``|Y|^power``): they move it to a spectrum whose mel is the given one while
keeping the fine structure they start from, the model's harmonics. Step 2 fits it from the sample
(:data:`FIRST_FIT_UPDATES` updates); each iteration fits it again from the rebuilt STFT (``fit`` updates)
and sets it with the rebuilt STFT's phase (fast Griffin-Lim's momentum on the rebuilt STFT, as
``librosa.griffinlim``): the harmonics in the magnitude carry the pitch, and the output's mel converges
to the given one rather than to the mel of a smooth magnitude. Only the bins below ``lock_hz``
(:data:`FIT_LOCK_HZ`, 150 Hz by default: the fundamentals of low voices) keep the sample's phase. Bins no
mel filter covers (e.g. DC) and frames past the mel's last are not constrained: each fit leaves them as
it finds them (the projection onto the set of spectra with the given mel). Section 16 of
docs/quality-per-compute.md measures both magnitudes.

It is deterministic given the sample and not part of the flow: ``log_prob`` and the training objective
are those of the sample before it. Only centred mels (``padding="center"``) are supported: the
inverse STFT needs the centred frames' overlap-add.

Shapes: audio ``(B, T)``, log-mel ``(B, n_mels, F)`` in the model's convention; returns ``(B, T)``.
"""

from __future__ import annotations

import functools
import json
import math

import torch
from torch import Tensor

from waveflow_py.audio.mel import analysis_window, mel_filter_bank
from waveflow_py.config import MelConfig, from_dict, to_dict
from waveflow_py.sampling import check_mel_projection, check_projection_fit, check_projection_iters
from waveflow_py.sourcefilter.envelope import SpectralEnvelope

__all__ = [
    "project_to_mel",
    "mel_magnitude",
    "ProjectionStream",
    "projection_margin",
    "PHASE_LOCK_HZ",
    "MEL_PROJECTION_NNLS_ITERS",
    "FIRST_FIT_UPDATES",
    "FIT_LOCK_HZ",
    "DEFAULT_CHUNK_FRAMES",
]

# multiplicative-update iterations of the filter-bank pseudo-inverse (the envelope prior uses 2; the
# projection puts the magnitude itself into the audio, measured worth more: docs/quality-per-compute.md)
MEL_PROJECTION_NNLS_ITERS = 32
_FRAMES_PER_STEP = 2048  # frames per NNLS step (bounds memory on long inputs)
DEFAULT_CHUNK_FRAMES = 1024  # frames per pass of the projection (long inputs)
_MOMENTUM = 0.99  # fast Griffin-Lim's (librosa's default)
# below this the iterations keep the sample's phase: unlocked, 16 iterations quadrupled the gross pitch
# error of the lowest dev voice (0.021 -> 0.090) while locked at 600 Hz it stayed (0.021; section 15)
PHASE_LOCK_HZ = 600.0
# the fitted magnitude's lock: only the fundamentals of low voices. Unlocked, the lowest dev voice's gross
# pitch error was 0.066 on its 4 dev clips; below 150 Hz kept, 0.023, for 0.09 PESQ-WB over the 24 clips
# (section 16)
FIT_LOCK_HZ = 150.0
# updates of the fitted magnitude's first fit, from the sample's magnitude (``fit >= 1``): 4 and 32 scored
# the same after 16 iterations on the 12 tuning clips (section 16)
FIRST_FIT_UPDATES = 4


def _check_centred(cfg: MelConfig) -> None:
    if cfg.padding != "center":
        raise ValueError(
            f"mel_projection: needs centred mel frames (padding 'center'), this mel has {cfg.padding!r}"
        )


@functools.lru_cache(maxsize=8)
def _pieces(config_json: str, nnls_iters: int) -> tuple[SpectralEnvelope, Tensor, Tensor, Tensor]:
    """Per distinct mel config (building them costs ~70 ms; they are pure): the order-0 envelope prior
    whose NNLS gives the mel's magnitude, the bool ``(n_fft // 2 + 1,)`` of STFT bins some mel filter
    covers, the front end's analysis window (float64) and its filter bank ``(n_mels, n_fft // 2 + 1)``
    (float32; all on the CPU)."""
    cfg = from_dict(MelConfig, json.loads(config_json))
    bank = mel_filter_bank(cfg)
    covered = torch.from_numpy(bank.sum(axis=0) > 0)
    envelope = SpectralEnvelope(cfg, 0, nnls_iters=nnls_iters)
    return envelope, covered, analysis_window(cfg), torch.from_numpy(bank).float()


def _cached(cfg: MelConfig, nnls_iters: int) -> tuple[SpectralEnvelope, Tensor, Tensor, Tensor]:
    return _pieces(json.dumps(to_dict(cfg), sort_keys=True), int(nnls_iters))


def mel_magnitude(logmel: Tensor, cfg: MelConfig, nnls_iters: int = MEL_PROJECTION_NNLS_ITERS) -> Tensor:
    """The linear STFT magnitude ``(B, n_fft // 2 + 1, F)`` (float64) a log-mel ``(B, n_mels, F)`` describes,
    in the units of ``torch.stft`` of the audio with the mel's window (unnormalised)."""
    envelope = _cached(cfg, nnls_iters)[0]
    log_linear = envelope.log_linear_mel(logmel).transpose(1, 2)  # (B, F, n_mels)
    b, f, n = log_linear.shape
    out = []
    for chunk in log_linear.reshape(b * f, n).split(_FRAMES_PER_STEP):
        power, scale = envelope.frame_power(chunk)
        out.append(power.double().sqrt() * torch.exp(0.5 * scale.double())[:, None])
    return torch.cat(out).reshape(b, f, -1).transpose(1, 2)


def project_to_mel(
    audio: Tensor,
    logmel: Tensor,
    cfg: MelConfig,
    strength: float | None = 1.0,
    nnls_iters: int = MEL_PROJECTION_NNLS_ITERS,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    iters: int = 0,
    lock_hz: float | None = None,
    fit: int = 0,
) -> Tensor:
    """``audio (B, T)`` with its STFT magnitude moved onto the mel's by ``strength`` (module docstring);
    same shape, dtype and device. ``logmel (B, n_mels, F)``: the mel the audio was synthesised from
    (frame ``f`` centred on sample ``f * hop``); ``iters``: Griffin-Lim iterations after the projection,
    which keep the sample's phase in the bins below ``lock_hz`` (0: none kept; ``None``: the magnitude's
    default, :data:`PHASE_LOCK_HZ` or :data:`FIT_LOCK_HZ`); ``fit``: 0, the mel's smooth magnitude;
    ``n >= 1``, the fitted magnitude, ``n`` updates per iteration (module docstring). Long inputs are
    processed ``chunk_frames`` frames at a time with a margin of ``(iters + 1) * n_fft`` samples on both
    sides (bounded memory; equal to one pass up to rounding)."""
    s = check_mel_projection(strength)
    iters = check_projection_iters(iters)
    fit = check_projection_fit(fit)
    lock_hz = _lock(lock_hz, fit)
    if audio.dim() != 2 or logmel.dim() != 3 or audio.shape[0] != logmel.shape[0]:
        raise ValueError(
            f"project_to_mel: expected audio (B, T) and log-mel (B, n_mels, F), got {tuple(audio.shape)} "
            f"and {tuple(logmel.shape)}"
        )
    _check_centred(cfg)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames: expected >= 1, got {chunk_frames}")
    t, hop = audio.shape[1], cfg.hop_length
    if not s or t <= cfg.n_fft // 2:
        return audio
    step = chunk_frames * hop
    margin = projection_margin(cfg, iters)
    if t <= step + 2 * margin:
        return _project(audio, logmel, cfg, s, nnls_iters, 0, iters, lock_hz, fit).to(audio.dtype)
    parts = []
    for lo in range(0, t, step):
        a, b = max(lo - margin, 0), min(lo + step + margin, t)
        out = _project(audio[:, a:b], logmel, cfg, s, nnls_iters, a // hop, iters, lock_hz, fit)
        parts.append(out[:, lo - a : min(lo + step, t) - a])
    return torch.cat(parts, dim=1).to(audio.dtype)


def _lock(lock_hz: float | None, fit: int) -> float:
    """The phase lock's frequency: ``lock_hz`` checked, or the default of the magnitude ``fit`` picks."""
    if lock_hz is None:
        return FIT_LOCK_HZ if fit else PHASE_LOCK_HZ
    if not 0.0 <= lock_hz < float("inf"):
        raise ValueError(f"lock_hz: expected a frequency >= 0, got {lock_hz!r}")
    return float(lock_hz)


def projection_margin(cfg: MelConfig, iters: int = 0) -> int:
    """Samples either side of a piece that its projection reads: ``n_fft`` (whole hops) per pass, the
    projection's and each Griffin-Lim iteration's (each widens what a sample depends on by a frame)."""
    return -(-cfg.n_fft // cfg.hop_length) * cfg.hop_length * (iters + 1)


def _project(
    audio: Tensor,
    logmel: Tensor,
    cfg: MelConfig,
    s: float,
    nnls_iters: int,
    first: int,
    iters: int = 0,
    lock_hz: float = PHASE_LOCK_HZ,
    fit: int = 0,
) -> Tensor:
    """One pass over ``audio``, whose sample 0 is the signal's sample ``first * hop`` (its frames are the
    mel's frames ``first, first + 1, ...``), then ``iters`` Griffin-Lim iterations."""
    work = torch.float64 if audio.dtype == torch.float64 else torch.float32  # float32: half the time
    envelope, covered, window, bank = _cached(cfg, nnls_iters)
    window = window.to(audio.device, work)
    stft_kw = {"n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "window": window, "center": True}
    y = torch.stft(audio.to(work), pad_mode=cfg.pad_mode, return_complex=True, **stft_kw)
    length = audio.shape[1]
    frames = max(0, min(y.shape[-1], logmel.shape[-1] - first))
    locked = min(math.ceil(lock_hz * cfg.n_fft / cfg.sample_rate), y.shape[1])  # bins below lock_hz
    if fit:
        pieces = (envelope, covered, bank)
        return _fitted(
            y, logmel[..., first : first + frames], cfg, pieces, s, iters, fit, locked, stft_kw, length
        )
    mag = y.abs()
    gain = torch.ones_like(mag)
    if frames:
        target = mel_magnitude(logmel[..., first : first + frames].double(), cfg, nnls_iters).to(work)
        head = mag[..., :frames]
        new = target if s == 1.0 else head.pow(1.0 - s) * target.pow(s)
        tiny = torch.finfo(work).tiny
        gain[..., :frames] = torch.where(head > 0, new / head.clamp_min(tiny), torch.zeros_like(head))
        gain[:, ~covered.to(audio.device)] = 1.0  # bins no mel filter covers: the mel says nothing
    spec, prev = y * gain, None
    if iters:
        target = mag * gain  # the magnitude every iteration keeps
        start = y[:, :locked] / y[:, :locked].abs().clamp_min(torch.finfo(work).tiny)
        for _ in range(iters):
            again = torch.istft(spec, length=length, **stft_kw)
            z = torch.stft(again, pad_mode=cfg.pad_mode, return_complex=True, **stft_kw)
            unit = z / z.abs().clamp_min(1e-12)
            step = unit if prev is None else unit - (_MOMENTUM / (1 + _MOMENTUM)) * prev
            phase = step / step.abs().clamp_min(1e-12)
            phase[:, :locked] = start  # the sample's own phase where the pitch is heard
            prev, spec = unit, target * phase
    return torch.istft(spec, length=length, **stft_kw)


def _fitted(
    y: Tensor,
    logmel: Tensor,
    cfg: MelConfig,
    pieces: tuple[SpectralEnvelope, Tensor, Tensor],
    s: float,
    iters: int,
    fit: int,
    locked: int,
    stft_kw: dict,
    length: int,
) -> Tensor:
    """The fitted-magnitude projection (module docstring) of a signal of ``length`` samples whose STFT is
    ``y (B, K, F)``; ``logmel (B, n_mels, f)``: the mel of its first ``f <= F`` frames; ``pieces``: the
    config's envelope, covered bins and filter bank (:func:`_pieces`); the iterations keep the sample's
    phase in the first ``locked`` bins."""
    work, frames = y.real.dtype, logmel.shape[-1]
    envelope, covered, bank = pieces
    tiny = torch.finfo(work).tiny
    sample = (y.real.square() + y.imag.square()).sqrt()
    # the fit applies to the bins some mel filter covers (lo..hi, and inside that range a mask if they are
    # not all covered) and to the frames the mel has; elsewhere the magnitude is left as found
    seen = covered.nonzero().flatten()
    lo, hi = int(seen[0]), int(seen[-1]) + 1
    gaps = None if bool(covered[lo:hi].all()) else covered[lo:hi, None].to(y.device)
    bank = bank[:, lo:hi].to(y.device, work)  # (n_mels, k): bins as rows below, frames as columns
    numer = bank.T @ torch.exp(envelope.log_linear_mel(logmel)).to(work)  # (B, k, f)

    def target(mag: Tensor, updates: int) -> Tensor:
        """``mag`` with its fitted part replaced (in place: callers pass a magnitude they do not reuse)."""
        head = mag[:, lo:hi, :frames]
        x = head if cfg.power == 1.0 and not cfg.mag_eps else (head.square() + cfg.mag_eps).pow(cfg.power / 2)
        x = x.clamp_min(tiny)  # a new tensor: the front end's magnitude, where the updates start
        for _ in range(updates):  # multiplicative NNLS updates: W x -> the mel, from the given x
            denominator = (bank.T @ (bank @ x)).add_(tiny)  # before x changes in place
            x = x.mul_(numer).div_(denominator)
        if cfg.power != 1.0 or cfg.mag_eps:
            x = (x.pow(2.0 / cfg.power) - cfg.mag_eps).clamp_min(0.0).sqrt()
        if s != 1.0:
            x = head.pow(1.0 - s) * x.pow(s)
        mag[:, lo:hi, :frames] = x if gaps is None else torch.where(gaps, x, head)
        return mag

    start = y[:, :locked] / sample[:, :locked].clamp_min(tiny)  # the sample's phase, kept in the lowest bins
    spec = y * (target(sample.clone(), FIRST_FIT_UPDATES) / sample.clamp_min(tiny))
    prev, c = None, _MOMENTUM / (1 + _MOMENTUM)
    for _ in range(iters):
        z = torch.stft(
            torch.istft(spec, length=length, **stft_kw), pad_mode=cfg.pad_mode, return_complex=True, **stft_kw
        )
        goal = target((z.real.square() + z.imag.square()).sqrt(), fit)
        step = z if prev is None else torch.add(z, prev, alpha=-c)  # fast Griffin-Lim's momentum (librosa's)
        prev = z
        spec = step * (goal * torch.rsqrt(step.real.square() + step.imag.square() + tiny))
        spec[:, :locked] = goal[:, :locked] * start
    return torch.istft(spec, length=length, **stft_kw)


class ProjectionStream:
    """:func:`project_to_mel` on a signal that arrives in pieces, equal to one pass up to rounding.

    ``push(audio (B, n), mel (B, n_mels, f) or None)`` appends samples and mel frames (both counted from the
    signal's start) and returns the projected samples that are final: those whose frames are whole and
    whose neighbours' edge effects lie in the buffer, so the output lags the input by ``margin`` samples
    (:func:`projection_margin`: ``n_fft`` in whole hops, times ``iters + 1``) and more until the mel has
    arrived; ``flush(audio)`` appends the last
    samples and returns the rest (the signal has ended: its true edge is padded as in one pass). Each
    emitted piece is projected from its samples with ``margin`` on both sides, the chunked form of
    :func:`project_to_mel`. Samples and frames older than the margin are dropped (bounded memory).
    """

    def __init__(
        self,
        cfg: MelConfig,
        strength: float,
        nnls_iters: int = MEL_PROJECTION_NNLS_ITERS,
        iters: int = 0,
        lock_hz: float | None = None,
        fit: int = 0,
    ) -> None:
        _check_centred(cfg)
        self.cfg, self.nnls_iters = cfg, nnls_iters
        self.strength = check_mel_projection(strength)
        self.iters, self.fit = check_projection_iters(iters), check_projection_fit(fit)
        self.lock_hz = _lock(lock_hz, self.fit)
        self.margin = projection_margin(cfg, self.iters)
        self.reset()

    def reset(self) -> None:
        """Forget the signal (start a new one)."""
        self._audio: Tensor | None = None  # samples [self._a0, self._a0 + n)
        self._mel: Tensor | None = None  # frames [self._m0, self._m0 + f)
        self._a0 = self._m0 = self._done = 0

    def push(self, audio: Tensor, mel: Tensor | None = None) -> Tensor:
        """Append ``audio (B, n)`` and ``mel`` frames; return the final projected samples ``(B, k)``."""
        self._append(audio, mel)
        assert self._audio is not None
        total = self._a0 + self._audio.shape[1]
        hop = self.cfg.hop_length
        end = (total - self.margin) // hop * hop  # the segment reaches `margin` past it
        frames = self._m0 + (0 if self._mel is None else self._mel.shape[-1])
        end = min(end, frames * hop - self.margin)  # and has the mel of every frame up to there
        return self._emit(end, final=False)

    def flush(self, audio: Tensor | None = None) -> Tensor:
        """Append the last samples; return every sample not yet returned; then reset."""
        if audio is not None:
            self._append(audio, None)
        if self._audio is None:
            return torch.zeros(0, 0) if audio is None else audio[:, :0]
        out = self._emit(self._a0 + self._audio.shape[1], final=True)
        self.reset()
        return out

    def _append(self, audio: Tensor, mel: Tensor | None) -> None:
        if audio.dim() != 2 or (self._audio is not None and audio.shape[0] != self._audio.shape[0]):
            raise ValueError(f"audio: expected (B, n) with the stream's B, got {tuple(audio.shape)}")
        self._audio = audio if self._audio is None else torch.cat([self._audio, audio.to(self._audio)], dim=1)
        if mel is not None:
            self._mel = mel if self._mel is None else torch.cat([self._mel, mel.to(self._mel)], dim=-1)

    def _emit(self, end: int, final: bool) -> Tensor:
        assert self._audio is not None
        hop = self.cfg.hop_length
        if end <= self._done:
            return self._audio[:, :0]
        lo = max(self._done - self.margin, 0)
        hi = self._a0 + self._audio.shape[1] if final else end + self.margin
        seg = self._audio[:, lo - self._a0 : hi - self._a0]
        mel = self._mel if self._mel is not None else torch.zeros(seg.shape[0], self.cfg.n_mels, 0)
        first = lo // hop - self._m0
        if self.strength and seg.shape[1] > self.cfg.n_fft // 2:
            args = (self.strength, self.nnls_iters, 0, self.iters, self.lock_hz, self.fit)
            out = _project(seg, mel[..., first:], self.cfg, *args)
            out = out.to(seg.dtype)
        else:
            out = seg
        piece = out[:, self._done - lo : end - lo]
        self._done = end
        keep = max(self._done - self.margin, 0)  # the next piece's left margin
        self._audio, self._a0 = self._audio[:, keep - self._a0 :], keep
        if self._mel is not None:
            drop = max(0, keep // hop - self._m0)
            self._mel, self._m0 = self._mel[..., drop:], self._m0 + drop
        return piece

"""A learnable, mel-conditioned harmonic source: an exact stage of the excitation (NSF-style).

The mel fixes each frame's spectral envelope (the LPC stage) and, roughly, its pitch lag (the periodicity
analysis), but not the phase of the harmonics, so noise through the fixed stages is only weakly periodic:
on low voices a pitch tracker hears the first formant's ringing as the pitch. This stage adds the periodic
part explicitly, as the neural source-filter models do (Wang, Takaki & Yamagishi 2019, "Neural
source-filter waveform models for statistical parametric speech synthesis", IEEE/ACM TASLP 28):

* per frame, the mel gives the F0 (``sample_rate / lag`` of the periodicity's first peak,
  :func:`~waveflow_py.sourcefilter.periodicity.pick_lag`) and a voicing ``v = clamp((peak - threshold) /
  (1 - threshold), 0, 1)`` (``pitch="analysis"``; ``"learned"`` takes both from a fixed network on the
  mel, ``"hybrid"`` lets that network correct and fill in the analysis: :class:`HarmonicSource`);
* a small per-frame network (:class:`SourceControls`) on ``[log-mel - its maximum, the maximum, log F0, v,
  peak]`` gives ``bands`` harmonic amplitudes ``A_b = sqrt(v) exp(a_b)`` (band centres equally spaced on
  the mel scale; in between, linear in frequency) and a noise log-gain ``log g = 0.5 log(1 - 0.9 v) + c``
  (the network's last layer starts at zero: at initialisation harmonics and noise share unit power as
  ``v`` says);
* synthesis: ``e[n] = g[n] w[n] + h[n]``, ``w`` the excitation from the flows (after the pitch filter),
  ``h[n] = sum_k A(k f0[n], n) cos(k phi[n]) / sqrt(N[n] / 2)`` with ``phi`` the running phase of the
  per-sample F0 and ``N`` the number of harmonics below Nyquist (tapered over the top 500 Hz), so flat
  amplitudes of 1 give unit power;
* analysis: ``w = (e - h) / g`` and ``log|det dw/de| = -sum_n log g[n]``: ``h`` is a function of the mel
  only (a shift, log-det 0), so the model keeps an exact likelihood.

Frame values are defined at segment boundaries (boundary ``i`` is sample ``i * hop``, mel frame ``i``:
the frame centred there for ``padding="center"``) and interpolated linearly within a segment; the F0 of a
segment with one unvoiced boundary is the voiced boundary's (no glide into a meaningless lag). So a
segment depends on two mel frames only, and chunked synthesis with the phase carried in the state equals
one pass.

The harmonics' phase is not in the mel, so a harmonic ``h`` out of phase with a recording only costs
likelihood: the amplitudes enter the likelihood as constants (analysis uses them detached) and are trained
by the spectral objective through the sampling path (:mod:`waveflow_py.train.objective`); the noise gain
is a scale like any flow's, trained by both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from waveflow_py.config import PITCH_NET_SOURCES, SOURCE_PITCHES, MelConfig
from waveflow_py.sourcefilter.base import FilterFlow, work_dtype
from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range
from waveflow_py.sourcefilter.pitchnet import RECEPTIVE_FRAMES, MelPitchNet, lag_features

__all__ = ["HarmonicSource", "SourceControls", "harmonic_sum", "mel_band_centres", "per_sample"]

_TAPER_HZ = 500.0  # harmonics fade out over the last 500 Hz below Nyquist
_BLOCK = 4096  # samples per block of the harmonic sum (bounds memory: block x harmonics)
_NOISE_FLOOR = 0.9  # at v = 1 the noise starts at sqrt(1 - 0.9) of its power
_HYBRID_AGREE = 1.2  # hybrid pitch: F0s within this ratio agree (the gross pitch error's 20 %)


def mel_band_centres(bands: int, sample_rate: int) -> Tensor:
    """``bands`` centre frequencies (Hz, float64) equally spaced on the HTK mel scale over (0, Nyquist)."""
    top = 2595.0 * math.log10(1.0 + sample_rate / 2 / 700.0)
    mels = (torch.arange(bands, dtype=torch.float64) + 0.5) * top / bands
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def per_sample(values: Tensor, length: int, hop: int) -> Tensor:
    """Boundary values ``(..., S + 1)`` (value ``i`` at sample ``i * hop``) -> ``(..., length)``, linear
    within each segment (``length <= S * hop``)."""
    weight = torch.arange(hop, device=values.device, dtype=values.dtype) / hop
    a, b = values[..., :-1, None], values[..., 1:, None]
    return (a + (b - a) * weight).reshape(*values.shape[:-1], -1)[..., :length]


def _cos_multiples(phase: Tensor, count: int) -> Tensor:
    """``cos(k * phase)`` for ``k = 1 .. count``, shape ``(*phase.shape, count)``: the real parts of the
    running product of ``exp(i phase)`` (one complex multiply per harmonic instead of a cosine: 3.6x faster
    on the CPU, equal to ``torch.cos(phase[..., None] * k)`` within 1e-10 for phases of thousands of
    radians, whose products ``k * phase`` carry that much rounding themselves)."""
    unit = torch.polar(torch.ones_like(phase), torch.remainder(phase, 2 * math.pi))
    return torch.cumprod(unit[..., None].expand(*phase.shape, count), dim=-1).real


def harmonic_sum(
    f0: Tensor, amp: Tensor, centres: Tensor, phase0: Tensor, sample_rate: int, f0_floor: float = 20.0
) -> tuple[Tensor, Tensor]:
    """``sum_k A(k f0) cos(k phi) / sqrt(N / 2)`` for per-sample ``f0 (B, T)`` (Hz, float64) and band
    amplitudes ``amp (B, bands, T)`` at ``centres (bands,)`` Hz. ``phase0 (B,)`` (float64): the phase before
    the first sample; ``f0_floor``: the lowest F0 the caller produces (bounds the harmonic count). Returns
    the signal ``(B, T)`` in ``amp``'s dtype and the phase after the last sample ``(B,)`` (float64, in
    ``[0, 2 pi)``).

    Samples whose amplitudes are all zero (unvoiced frames) are 0 and skipped: the harmonics are summed
    over the others only, up to Nyquist for their lowest F0 (an unvoiced frame's F0 is often the lowest
    the analysis returns). So no gradient reaches a zero row of ``amp`` (the model's are ``sqrt(v) exp(.)``
    at ``v = 0``, whose gradient is zero anyway). While a CUDA graph is captured every sample is summed."""
    nyquist = sample_rate / 2
    phase = phase0[:, None] + torch.cumsum(f0 * (2 * math.pi / sample_rate), dim=1)
    capturing = f0.is_cuda and torch.cuda.is_current_stream_capturing()
    out = []
    for s in range(0, f0.shape[1], _BLOCK):
        f, at, ph = f0[:, s : s + _BLOCK], amp[..., s : s + _BLOCK].transpose(1, 2), phase[:, s : s + _BLOCK]
        if capturing:  # no host sync: every sample, harmonics up to Nyquist for f0_floor
            out.append(_sum_block(f, at, ph, centres, nyquist, _harmonics(f0_floor, nyquist)))
            continue
        active = at.detach().ne(0).any(-1)  # (B, t): samples with a harmonic
        count = int(active.sum())
        if count == active.numel():
            out.append(_sum_block(f, at, ph, centres, nyquist, _harmonics(_lowest(f, f0_floor), nyquist)))
        elif count == 0:
            out.append(amp.new_zeros(f.shape))
        else:
            fa = f[active]
            k_max = _harmonics(_lowest(fa, f0_floor), nyquist)
            h = _sum_block(fa[None], at[active][None], ph[active][None], centres, nyquist, k_max)[0]
            out.append(amp.new_zeros(f.shape).masked_scatter(active, h))
    h = torch.cat(out, dim=1) if out else amp.new_zeros(f0.shape)
    end = phase[:, -1] if phase.shape[1] else phase0
    return h, torch.remainder(end, 2 * math.pi)


def _lowest(f0: Tensor, f0_floor: float) -> float:
    """The lowest F0 of a block, at least ``f0_floor`` (a host sync)."""
    return max(float(f0.detach().min()), f0_floor)


def _harmonics(lowest: float, nyquist: float) -> int:
    """How many harmonics reach Nyquist for the F0 ``lowest``."""
    return max(1, math.ceil(nyquist / lowest))


def _sum_block(f: Tensor, at: Tensor, ph: Tensor, centres: Tensor, nyquist: float, k_max: int) -> Tensor:
    """The harmonic sum of one block: ``f`` and ``ph (B, t)`` float64, ``at (B, t, bands)`` -> ``(B, t)``
    in ``at``'s dtype, harmonics ``1 .. k_max`` (tapered to zero over the last 500 Hz below Nyquist)."""
    k = torch.arange(1, k_max + 1, device=f.device, dtype=f.dtype)
    fk = f[..., None] * k  # (B, t, K)
    taper = ((nyquist - fk) / _TAPER_HZ).clamp(0.0, 1.0)
    # each harmonic's amplitude: linear in frequency between the band centres, constant beyond
    pos = torch.searchsorted(centres, fk.reshape(-1)).reshape(fk.shape).clamp(1, len(centres) - 1)
    lo, hi = torch.take(centres, pos - 1), torch.take(centres, pos)  # (take: faster than indexing)
    w = ((fk - lo) / (hi - lo)).clamp(0.0, 1.0).to(at.dtype)
    ak = torch.gather(at, 2, pos - 1) * (1 - w) + torch.gather(at, 2, pos) * w
    count = taper.sum(-1).clamp_min(1.0)
    waves = (taper * _cos_multiples(ph, k_max)).to(at.dtype)
    return (ak * waves).sum(-1) * torch.rsqrt(count / 2).to(at.dtype)


class SourceControls(nn.Module):
    """Per-frame ``[log-mel (n_mels), F0, voicing, peak]`` -> ``bands`` harmonic log-amplitude offsets and a
    noise log-gain offset: three 1x1 layers (a per-frame MLP, so a frame's controls depend on that frame
    only), the last one initialised to zero."""

    def __init__(self, n_mels: int, bands: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(n_mels + 4, hidden, 1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, bands + 1, 1),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Conv1d)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, logmel: Tensor, f0: Tensor, voicing: Tensor, peak: Tensor) -> Tensor:
        """``(B, n_mels, F)``, three ``(B, F)`` -> ``(B, bands + 1, F)``."""
        top = logmel.amax(dim=1, keepdim=True)
        feats = [logmel - top, top / 10, torch.log(f0 / 100.0)[:, None], voicing[:, None], peak[:, None]]
        return self.net(torch.cat(feats, dim=1))


class HarmonicSource(FilterFlow):
    """The harmonic source stage ``e (B, T) <-> w (B, T)`` (module docstring).

    Args:
        mel: the mel front end of the conditioning.
        bands: harmonic amplitude bands.
        hidden: width of the control network.
        threshold: periodicity peak below which a frame is unvoiced (``pitch="analysis"``).
        pitch: ``"analysis"`` (F0 and voicing from the periodicity's first peak), ``"learned"`` (from
            :class:`~waveflow_py.sourcefilter.pitchnet.MelPitchNet` on the log-mel and the periodicity:
            voicing ``v = clamp((p - pitch_floor) / (1 - pitch_floor), 0, 1)`` of its voicing probability
            ``p``; its weights are fixed, ``requires_grad=False``, set by ``train.pitch_net``) or
            ``"hybrid"`` (the analysis's voicing where it is above 0, the predictor's elsewhere; the
            analysis's F0 unless the predictor hears a voice (voicing above 0) at an F0 more than 20 %
            away, or where the analysis hears none).
        pitch_hidden: channels of the learned predictor.
        pitch_floor: the probability below which the learned predictor's frames get no harmonics (0.5:
            its own decision; lower leaves the controls to scale harmonics where it is unsure).

    Context (:meth:`context`): ``(B, S + 1, 3 + bands)`` per segment boundary: F0 (Hz), voicing, noise
    log-gain, band amplitudes. State ``(B, 1)``: the harmonics' phase after the last sample.
    """

    def __init__(
        self,
        mel: MelConfig,
        bands: int = 8,
        hidden: int = 64,
        threshold: float = 0.45,
        pitch: str = "analysis",
        pitch_hidden: int = 128,
        pitch_floor: float = 0.5,
    ) -> None:
        super().__init__(mel.hop_length, "torch", context_width=3 + bands)
        lo, hi = lag_range(mel)
        self.sample_rate, self.bands, self.threshold = mel.sample_rate, int(bands), float(threshold)
        self.periodicity = MelPeriodicity(mel, lo, hi, lag="first")
        self.f0_floor = mel.sample_rate / (hi + 1)  # below the longest lag the analysis returns
        self.controls = SourceControls(mel.n_mels, bands, hidden)
        if pitch not in SOURCE_PITCHES:
            raise ValueError(f"HarmonicSource: pitch expected one of {SOURCE_PITCHES}, got {pitch!r}")
        if not 0 <= pitch_floor < 1:
            raise ValueError(f"HarmonicSource: pitch_floor expected in [0, 1), got {pitch_floor!r}")
        self.pitch, self.pitch_floor = pitch, float(pitch_floor)
        self.pitchnet: MelPitchNet | None = None
        if pitch in PITCH_NET_SOURCES:
            self.pitchnet = MelPitchNet(mel.n_mels, hi - lo + 1, pitch_hidden).requires_grad_(False)
            self.mel_context = RECEPTIVE_FRAMES
        self._centres: dict[str, Tensor] = {"cpu": mel_band_centres(bands, mel.sample_rate)}

    @property
    def state_size(self) -> int:
        return 1

    def extra_repr(self) -> str:
        return f"hop={self.hop}, bands={self.bands}, threshold={self.threshold}, pitch={self.pitch!r}"

    def _centres_on(self, device: torch.device) -> Tensor:
        key = str(device)
        if key not in self._centres:
            self._centres[key] = self._centres["cpu"].to(device)
        return self._centres[key]

    def context(self, mel: Tensor, length: int) -> Tensor:
        """The per-boundary controls for samples ``0 .. length - 1`` of ``mel (B, n_mels, F)``: boundaries
        ``0 .. S`` (``S = ceil(length / hop)``) take mel frames ``0 .. S``, the last frame repeated where the
        mel ends. The pitch (periodicity analysis or learned predictor) runs without autograd in full
        precision over every frame given (the learned predictor reads frames after ``S`` too: streaming's
        lookahead); the control network keeps its gradients."""
        segments = -(-length // self.hop)
        frames = torch.arange(segments + 1, device=mel.device).clamp(max=mel.shape[-1] - 1)
        full = mel.float() if mel.dtype not in (torch.float32, torch.float64) else mel
        if not self.mel_context:  # frame-wise: only the frames used
            full = full[..., : segments + 1]
        logmel = full[..., frames]
        with torch.no_grad(), torch.autocast(device_type=mel.device.type, enabled=False):
            f0, voicing, peak = (v[..., frames] for v in self.frame_pitch(full))
        offsets = self.controls(logmel, f0, voicing, peak)
        amp = voicing.sqrt()[:, None] * torch.exp(offsets[:, : self.bands])
        log_gain = 0.5 * torch.log1p(-_NOISE_FLOOR * voicing) + offsets[:, self.bands]
        return torch.cat([f0[:, None], voicing[:, None], log_gain[:, None], amp], dim=1).transpose(1, 2)

    def frame_pitch(self, logmel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per frame of ``logmel (B, n_mels, F)``: ``(F0 (Hz), voicing in [0, 1], periodicity peak)``, each
        ``(B, F)`` in ``logmel``'s dtype (no autograd needed: call under ``no_grad``)."""
        p = self.periodicity
        lag, peak, rho = p.frame_analysis(logmel)
        dtype = logmel.dtype
        f0 = (self.sample_rate / lag).to(dtype)
        voicing = ((peak - self.threshold) / (1.0 - self.threshold)).clamp(0.0, 1.0).to(dtype)
        if self.pitchnet is None:
            return f0, voicing, peak.to(dtype)
        w = self.pitchnet.out.weight
        feats = lag_features(rho, p.min_lag, p.max_lag).to(w.dtype)
        f0_net, prob = MelPitchNet.decode(self.pitchnet(logmel.to(w.dtype), feats))
        f0_net = f0_net.clamp(min=self.f0_floor).to(dtype)
        voicing_net = ((prob - self.pitch_floor) / (1.0 - self.pitch_floor)).clamp(0.0, 1.0).to(dtype)
        if self.pitch == "learned":
            return f0_net, voicing_net, peak.to(dtype)
        # hybrid: the analysis's F0 (a fractional lag) where both hear a voice and agree within the gross
        # pitch error's 20 %, the predictor's where they disagree (the analysis's first peak at a multiple
        # of the F0) or only the predictor hears one; the analysis's voicing wherever that hears one, the
        # predictor's in the frames it leaves unvoiced
        agree = (voicing > 0) & ((f0 / f0_net).log().abs() <= math.log(_HYBRID_AGREE))
        f0 = torch.where((voicing_net > 0) & ~agree, f0_net, f0)
        return f0, torch.where(voicing > 0, voicing, voicing_net), peak.to(dtype)

    def _source(self, ctx: Tensor, length: int, phase0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(h (B, T), log g (B, T), phase after (B,))`` from a context of ``S + 1`` boundaries."""
        f0, voiced = ctx[..., 0].double(), ctx[..., 1] > 0
        ramp = torch.arange(self.hop, device=ctx.device, dtype=torch.float64) / self.hop
        # a segment with one unvoiced boundary keeps the voiced one's F0 (no glide into a meaningless lag)
        start = torch.where(voiced[:, :-1] | ~voiced[:, 1:], f0[:, :-1], f0[:, 1:])
        end = torch.where(voiced[:, 1:], f0[:, 1:], start)
        f0_n = (start[..., None] + (end - start)[..., None] * ramp).reshape(f0.shape[0], -1)
        amp = per_sample(ctx[..., 3:].transpose(1, 2), length, self.hop)
        h, phase = harmonic_sum(
            f0_n[:, :length], amp, self._centres_on(ctx.device), phase0, self.sample_rate, self.f0_floor
        )
        return h, per_sample(ctx[..., 2], length, self.hop), phase

    def _prepare(self, x: Tensor, context: Tensor | None, state: Tensor | None, what: str) -> Tensor:
        ctx = self._check(x, context, state, what)
        assert ctx is not None
        segments = -(-x.shape[1] // self.hop)
        if ctx.shape[1] < segments + 1:  # a context without the closing boundary: the last one repeated
            ctx = torch.cat([ctx, ctx[:, -1:].expand(-1, segments + 1 - ctx.shape[1], -1)], dim=1)
        return ctx[:, : segments + 1]

    def analysis(
        self, x: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``e (B, T) -> (w (B, T), log|dw/de| (B,), state)``; the harmonic amplitudes enter detached."""
        ctx = self._prepare(x, context, state, "e")
        xw = x.to(work_dtype(x))
        phase0 = self._phase(state, x)
        h, log_g, phase = self._source(
            torch.cat([ctx[..., :3], ctx[..., 3:].detach()], -1), x.shape[1], phase0
        )
        w = (xw - h.to(xw.dtype)) * torch.exp(-log_g).to(xw.dtype)
        logdet = -log_g.sum(dim=1)
        return w.to(x.dtype), logdet.to(x.dtype), phase[:, None].to(x.dtype)

    def synthesis(
        self, y: Tensor, context: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``w (B, T) -> (e (B, T), log|de/dw| (B,), state)``."""
        ctx = self._prepare(y, context, state, "w")
        yw = y.to(work_dtype(y))
        h, log_g, phase = self._source(ctx, y.shape[1], self._phase(state, y))
        e = yw * torch.exp(log_g).to(yw.dtype) + h.to(yw.dtype)
        return e.to(y.dtype), log_g.sum(dim=1).to(y.dtype), phase[:, None].to(y.dtype)

    @staticmethod
    def _phase(state: Tensor | None, like: Tensor) -> Tensor:
        if state is None:
            return like.new_zeros(like.shape[0], dtype=torch.float64)
        return state[:, 0].double()

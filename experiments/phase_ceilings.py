"""What issue 18's bar asks of a vocoder's output: magnitude and phase oracles on dev clips, side by side.

The default-model bar (PESQ-WB >= 2.5, beat Griffin-Lim on MR-STFT and log-mel L1) is graded on magnitude
spectra, yet a vocoder whose excitation is sampled noise cannot put the phase a recording has into its
voiced frames. This script builds signals from a dev clip's own STFT (1024 / 256, Hann: the mel's frames)
and scores them with the evaluation's metrics against the clip, so each row is a ceiling for one kind of
vocoder. Voiced frames are pYIN's (the evaluation's tracker) on the reference.

* ``Griffin-Lim``: the baseline, from the mel (the NNLS magnitude, 60 iterations; as ``waveflow eval``);
* ``exact |X|, true phase voiced``: the clip's own STFT in voiced frames, random phase in the others;
* ``exact |X|, comb phase voiced``: voiced frames take the phase of a zero-phase harmonic comb at pYIN's
  F0 (a pulse train: what a harmonic source with the right F0 and no phase model gives);
* ``exact |X|, random phase``: noise with exactly the clip's STFT magnitude everywhere (the best a
  noise-excited vocoder can do without a phase model);
* ``mel |X|, ...``: the same with the magnitude the mel gives (NNLS, as Griffin-Lim uses) in place of
  the clip's, and ``mel |X|, comb + minimum phase voiced``: the comb's phase plus the minimum phase of
  the mel magnitude's smooth envelope (real cepstrum below 2 ms: a pulse train through a minimum-phase
  filter of the envelope, what an all-pole source-filter synthesis with the right F0 gives);
* ``noise through LPC-16``: unit-variance noise through the mel's LPC envelope (the fixed stages alone);
* ``--model NAME``: a release, sampled at its own settings with the mel projection off (noise seed = clip
  index), and the same sample given the mel's magnitude with its own phase kept (``NAME phase, mel |X|``:
  the mel projection, :mod:`waveflow_py.inference.projection`), and with ``--gl-iters`` Griffin-Lim
  iterations started from that phase (the projection's ``iters``: fast Griffin-Lim on the mel's magnitude,
  the sample's phase kept below ``--lock-hz``).

An ISTFT of a modified STFT is not consistent: its own STFT differs from what went in, which is the gap
between a row's magnitude and what the metrics see (and what Griffin-Lim's iterations close).

    python experiments/phase_ceilings.py ../shared/data/librispeech-mini --clips 12 --seconds 4 \
        --model universal-16k-preview

Written up in docs/quality-per-compute.md, section 15.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import mel_preset
from waveflow_py.evaluation import compute_metrics
from waveflow_py.evaluation.baselines import envelope_noise, griffin_lim, mel_to_linear
from waveflow_py.evaluation.clips import find_clips, read_clip
from waveflow_py.evaluation.pitch import PitchConfig, PitchTrack, track_pitch
from waveflow_py.inference.projection import PHASE_LOCK_HZ, project_to_mel

KEYS = ("mrstft", "mrstft_unseen", "log_mel_l1", "pesq_wb", "stoi", "vuv_f1", "gpe")


def _voiced_frames(track: PitchTrack, frames: int, hop: int, sample_rate: int, pitch_hop: int) -> np.ndarray:
    """pYIN's voicing (10 ms frames) at the STFT frame centres ``f * hop`` (nearest)."""
    idx = np.clip(np.round(np.arange(frames) * hop / pitch_hop).astype(int), 0, track.voiced.size - 1)
    return track.voiced[idx]


def comb(track: PitchTrack, length: int, sample_rate: int, pitch_hop: int) -> np.ndarray:
    """A zero-phase harmonic comb (all harmonics below 0.49 fs, unit amplitude) at pYIN's F0, linearly
    interpolated per sample; 100 Hz where pYIN has no F0 (those frames are not used)."""
    times = np.arange(length) / sample_rate
    at = np.arange(track.f0.size) * pitch_hop / sample_rate
    f0 = np.interp(times, at, np.nan_to_num(track.f0, nan=100.0))
    f0 = np.maximum(f0, 50.0)
    phase = np.cumsum(2 * np.pi * f0 / sample_rate)
    out = np.zeros(length)
    for k in range(1, int(0.49 * sample_rate / 50.0) + 1):
        out += np.cos(k * phase) * (k * f0 < 0.49 * sample_rate)
    return out


def oracle_signals(
    ref: np.ndarray, mel_cfg: Any, mel: np.ndarray, track: PitchTrack, pitch_hop: int, seed: int
) -> dict[str, np.ndarray]:
    """The oracle rows of the module docstring for one clip ``ref (T,)`` and its log-mel ``(n_mels, F)``."""
    n_fft, hop, sr = mel_cfg.n_fft, mel_cfg.hop_length, mel_cfg.sample_rate
    window = torch.hann_window(mel_cfg.win_length, dtype=torch.float64)

    def stft(x: np.ndarray) -> torch.Tensor:
        return torch.stft(torch.from_numpy(x).double(), n_fft, hop, window=window, return_complex=True)

    def istft(z: torch.Tensor) -> np.ndarray:
        return torch.istft(z, n_fft, hop, window=window, length=ref.size).float().numpy()

    def unit(z: torch.Tensor) -> torch.Tensor:
        return z / z.abs().clamp_min(1e-12)

    def minimum_phase(mag: torch.Tensor) -> torch.Tensor:
        """Unit spectra ``(n_fft // 2 + 1, F)`` with the minimum phase of ``mag``'s smooth envelope (real
        cepstrum below 2 ms, folded: the harmonics' ripple left out)."""
        cep = torch.fft.irfft(torch.log(mag.clamp_min(1e-9)), n=n_fft, dim=0)
        cut = int(0.002 * sr)
        fold = torch.zeros(n_fft, 1, dtype=cep.dtype)
        fold[0], fold[1:cut] = 1.0, 2.0
        return unit(torch.exp(1j * torch.fft.rfft(cep * fold, dim=0).imag))

    x = stft(ref)
    rng = np.random.default_rng(seed)
    noise_phase = unit(stft(rng.standard_normal(ref.size)))
    comb_phase = unit(stft(comb(track, ref.size, sr, pitch_hop)))
    voiced = torch.from_numpy(_voiced_frames(track, x.shape[1], hop, sr, pitch_hop))[None, :]
    mel_mag = torch.from_numpy(mel_to_linear(mel, mel_cfg)).double()[:, : x.shape[1]]
    return {
        "exact |X|, true phase voiced": istft(x.abs() * torch.where(voiced, unit(x), noise_phase)),
        "exact |X|, comb phase voiced": istft(x.abs() * torch.where(voiced, comb_phase, noise_phase)),
        "exact |X|, random phase": istft(x.abs() * noise_phase),
        "mel |X|, true phase voiced": istft(mel_mag * torch.where(voiced, unit(x), noise_phase)),
        "mel |X|, comb phase voiced": istft(mel_mag * torch.where(voiced, comb_phase, noise_phase)),
        "mel |X|, comb + minimum phase voiced": istft(
            mel_mag * torch.where(voiced, comb_phase * minimum_phase(mel_mag), noise_phase)
        ),
        "mel |X|, random phase": istft(mel_mag * noise_phase),
        "noise through LPC-16": envelope_noise(mel, mel_cfg, length=ref.size, seed=seed),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--preset", default="16k")
    p.add_argument("--model", action="append", default=[], help="a release to score beside (repeatable)")
    p.add_argument("--gl-iters", type=int, nargs="*", default=[4, 16, 60], help="for --model rows")
    p.add_argument(
        "--lock-hz",
        type=float,
        default=PHASE_LOCK_HZ,
        help="the iterations keep the sample's phase below this",
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mel_cfg = mel_preset(args.preset)
    mel_fn = MelSpectrogram(mel_cfg)
    models = {}
    for name in args.model:
        from waveflow_py import Vocoder

        voc = Vocoder.from_pretrained(name, mel_projection=None, projection_iters=0)
        if voc.mel_config != mel_cfg:
            print(f"phase_ceilings: {name}'s mel settings differ from preset {args.preset}", file=sys.stderr)
            return 2
        models[name] = voc
    rows: dict[str, list[dict[str, float]]] = {}
    speakers: list[str] = []
    started = time.time()
    chosen = find_clips(args.data, "dev", args.clips)
    pcfg = PitchConfig()  # the evaluation's tracker: its hop in the mel's samples
    pitch_hop = round(mel_cfg.sample_rate * pcfg.hop_length / pcfg.sample_rate)
    for i, clip in enumerate(chosen):
        ref = read_clip(clip, mel_cfg.sample_rate, args.seconds or None, mel_cfg.hop_length)
        mel_t = mel_fn(torch.from_numpy(ref).float()[None])
        mel = mel_t[0].numpy()
        track = track_pitch(ref, mel_cfg.sample_rate, pcfg)
        signals = {"Griffin-Lim (60 it.)": griffin_lim(mel, mel_cfg, length=ref.size)}
        signals.update(oracle_signals(ref, mel_cfg, mel, track, pitch_hop, seed=i))
        for name, voc in models.items():
            gen = torch.Generator().manual_seed(1000 + i)
            out = voc.vocode(mel_t, generator=gen)[0, : ref.size].cpu().numpy()
            signals[name] = out
            x = torch.from_numpy(out)[None]
            for iters in [0, *args.gl_iters]:
                more = f", then Griffin-Lim {iters} it." if iters else " (the mel projection)"
                signals[f"{name} phase, mel |X|{more}"] = project_to_mel(
                    x, mel_t, mel_cfg, 1.0, iters=iters, lock_hz=args.lock_hz
                )[0].numpy()
        tracks = {ref.size: track}
        speakers.append(clip.speaker)
        for name, out in signals.items():
            values = compute_metrics(ref, out, mel_cfg.sample_rate, mel_cfg, reference_tracks=tracks).values
            rows.setdefault(name, []).append(values)
        elapsed = time.time() - started
        print(f"clip {i + 1}/{len(chosen)} ({clip.speaker}) {elapsed:.0f} s", file=sys.stderr, flush=True)
    print(f"{len(chosen)} dev clips x {args.seconds:g} s; pYIN voicing of the reference")
    print("| signal | " + " | ".join(KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for name, values in rows.items():
        cells = [f"{np.nanmean([v[k] for v in values]):.3f}" for k in KEYS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    order = sorted(set(speakers))
    print(f"\nPESQ-WB per speaker ({', '.join(f'{s}: {speakers.count(s)}' for s in order)} clips)")
    print("| signal | " + " | ".join(order) + " |")
    print("|---|" + "---|" * len(order))
    for name, values in rows.items():
        per = [
            np.nanmean([v["pesq_wb"] for v, s in zip(values, speakers, strict=True) if s == sp])
            for sp in order
        ]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in per) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

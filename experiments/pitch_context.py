"""The pitch context the harmonic source reads from the mel, per speaker, against pYIN on the reference.

Issue 18 asks for gross pitch error <= 5 % and V/UV F1 >= 0.9 for every dev speaker, on the vocoded
audio *and on the pitch context itself*. The vocoded audio is graded by ``waveflow eval`` (its per-speaker
table); this script grades the context: the F0 and voicing that
:class:`waveflow_py.sourcefilter.harmonic.HarmonicSource` computes from the mel alone (the periodicity's
lag, ``pitch_lag: first``, voiced where the peak is above the threshold), resampled to pYIN's 10 ms frames
and scored with the evaluation's own :func:`~waveflow_py.evaluation.pitch.gross_pitch_error` and
:func:`~waveflow_py.evaluation.pitch.vuv_f1` against pYIN on the reference audio.

    python experiments/pitch_context.py ../shared/data/librispeech-mini --clips 24 --thresholds 0.35 0.45 0.55

No parameters are involved: the context is a fixed function of the mel (the harmonic source's network
only sets amplitudes and noise gains). Written up in docs/quality-per-compute.md, section 13.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import mel_preset
from waveflow_py.evaluation.clips import find_clips, read_clip
from waveflow_py.evaluation.pitch import PitchConfig, PitchTrack, gross_pitch_error, track_pitch, vuv_f1
from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range


def context_track(
    lag: np.ndarray,
    peak: np.ndarray,
    threshold: float,
    sample_rate: int,
    hop: int,
    frames: int,
    pcfg: PitchConfig,
) -> PitchTrack:
    """The context's per-mel-frame F0 and voicing on pYIN's frame times (nearest mel frame; centred)."""
    times = np.arange(frames) * pcfg.hop_length / pcfg.sample_rate
    idx = np.clip(np.round(times * sample_rate / hop).astype(int), 0, lag.size - 1)
    voiced = peak[idx] >= threshold
    f0 = np.where(voiced, sample_rate / lag[idx], np.nan)
    return PitchTrack(f0=f0, voiced=voiced, voiced_prob=voiced.astype(np.float64))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--seconds", type=float, default=0.0, help="0: whole clips")
    p.add_argument("--preset", default="16k")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.45])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = mel_preset(args.preset)
    mel_fn = MelSpectrogram(cfg)
    lo, hi = lag_range(cfg)
    periodicity = MelPeriodicity(cfg, lo, hi, lag="first")
    pcfg = PitchConfig()
    scores: dict[float, dict[str, list[tuple[float, float]]]] = {
        t: defaultdict(list) for t in args.thresholds
    }
    for clip in find_clips(args.data, "dev", args.clips):
        ref = read_clip(clip, cfg.sample_rate, args.seconds or None, cfg.hop_length)
        reference = track_pitch(ref, cfg.sample_rate, pcfg)
        with torch.no_grad():
            lag, peak = periodicity.frame_pitch(mel_fn(torch.from_numpy(ref).float()[None]))
        for t in args.thresholds:
            ctx = context_track(
                lag[0].numpy(), peak[0].numpy(), t, cfg.sample_rate, cfg.hop_length, reference.f0.size, pcfg
            )
            scores[t][clip.speaker].append((gross_pitch_error(reference, ctx), vuv_f1(reference, ctx)))
    print("threshold  speaker   clips   GPE     V/UV F1")
    for t, per in scores.items():
        for speaker, rows in sorted(per.items()):
            gpe, f1 = np.nanmean([r[0] for r in rows]), np.mean([r[1] for r in rows])
            print(f"{t:9.2f}  {speaker:8s}  {len(rows):5d}   {gpe:.3f}   {f1:.3f}")
        all_rows = [r for rows in per.values() for r in rows]
        print(
            f"{t:9.2f}  {'all':8s}  {len(all_rows):5d}   {np.nanmean([r[0] for r in all_rows]):.3f}   "
            f"{np.mean([r[1] for r in all_rows]):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The pitch context the harmonic source reads from the mel, per speaker, against pYIN on the reference.

Issue 18 asks for gross pitch error <= 5 % and V/UV F1 >= 0.9 for every dev speaker, on the vocoded
audio *and on the pitch context itself*. The vocoded audio is graded by ``waveflow eval`` (its per-speaker
table); this script grades the context: the F0 and voicing that
:class:`waveflow_py.sourcefilter.harmonic.HarmonicSource` computes from the mel alone
(:meth:`~waveflow_py.sourcefilter.harmonic.HarmonicSource.frame_pitch`), resampled to pYIN's 10 ms frames
and scored with the evaluation's own :func:`~waveflow_py.evaluation.pitch.gross_pitch_error` and
:func:`~waveflow_py.evaluation.pitch.vuv_f1` against pYIN on the reference audio. Two sources:

* the periodicity analysis (``source_pitch: analysis``: the lag of its first peak, voiced where the peak
  is above each ``--thresholds`` value; no parameters);
* with ``--pitch-net DIR``: also the learned predictor written by ``waveflow train-pitch``
  (``source_pitch: learned``: voiced where its probability is above 0.5), and the two together
  (``source_pitch: hybrid`` at the first threshold, the predictor hearing a voice above ``--floor``).

    python experiments/pitch_context.py ../shared/data/librispeech-mini --clips 24 --thresholds 0.45 \
        --pitch-net recipes/librispeech-mini/pitchnet

Written up in docs/quality-per-compute.md, sections 13, 14 and 17.
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
from waveflow_py.sourcefilter.harmonic import HarmonicSource


def context_track(
    f0: np.ndarray, voiced: np.ndarray, sample_rate: int, hop: int, frames: int, pcfg: PitchConfig
) -> PitchTrack:
    """The context's per-mel-frame F0 and voicing on pYIN's frame times (nearest mel frame; centred)."""
    times = np.arange(frames) * pcfg.hop_length / pcfg.sample_rate
    idx = np.clip(np.round(times * sample_rate / hop).astype(int), 0, f0.size - 1)
    v = voiced[idx]
    return PitchTrack(f0=np.where(v, f0[idx], np.nan), voiced=v, voiced_prob=v.astype(np.float64))


def _sources(cfg, thresholds: list[float], pitch_net: Path | None, floor: float) -> dict[str, HarmonicSource]:
    """The stages whose pitch is graded, by row label."""
    out = {f"analysis {t:.2f}": HarmonicSource(cfg, threshold=t) for t in thresholds}
    if pitch_net is not None:
        from waveflow_py.train.pitch import load_pitch_net

        learned = HarmonicSource(cfg, pitch="learned")
        hybrid = HarmonicSource(cfg, threshold=thresholds[0], pitch="hybrid", pitch_floor=floor)
        for name, stage in (("learned", learned), (f"hybrid {floor:.2f}", hybrid)):
            assert stage.pitchnet is not None
            stage.pitchnet.load_state_dict(load_pitch_net(pitch_net, cfg, stage.pitchnet.hidden))
            out[name] = stage
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--seconds", type=float, default=0.0, help="0: whole clips")
    p.add_argument("--preset", default="16k")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.45])
    p.add_argument("--pitch-net", type=Path, default=None, help="a `waveflow train-pitch` output directory")
    p.add_argument("--floor", type=float, default=0.3, help="the hybrid's source_pitch_floor")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = mel_preset(args.preset)
    mel_fn = MelSpectrogram(cfg)
    pcfg = PitchConfig()
    stages = _sources(cfg, args.thresholds, args.pitch_net, args.floor)
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {k: defaultdict(list) for k in stages}
    for clip in find_clips(args.data, "dev", args.clips):
        ref = read_clip(clip, cfg.sample_rate, args.seconds or None, cfg.hop_length)
        reference = track_pitch(ref, cfg.sample_rate, pcfg)
        logmel = mel_fn(torch.from_numpy(ref).float()[None])
        for name, stage in stages.items():
            with torch.no_grad():
                f0, voicing, _ = stage.frame_pitch(logmel)
            ctx = context_track(
                f0[0].numpy(),
                voicing[0].numpy() > 0,
                cfg.sample_rate,
                cfg.hop_length,
                reference.f0.size,
                pcfg,
            )
            scores[name][clip.speaker].append((gross_pitch_error(reference, ctx), vuv_f1(reference, ctx)))
    print("context        speaker   clips   GPE     V/UV F1")
    for name, per in scores.items():
        for speaker, rows in sorted(per.items()):
            gpe, f1 = np.nanmean([r[0] for r in rows]), np.mean([r[1] for r in rows])
            print(f"{name:13s}  {speaker:8s}  {len(rows):5d}   {gpe:.3f}   {f1:.3f}")
        all_rows = [r for rows in per.values() for r in rows]
        print(
            f"{name:13s}  {'all':8s}  {len(all_rows):5d}   {np.nanmean([r[0] for r in all_rows]):.3f}   "
            f"{np.mean([r[1] for r in all_rows]):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

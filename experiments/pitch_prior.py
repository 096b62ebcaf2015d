"""The pitch prior at zero parameters: likelihood against voicing, measured on real speech.

For each setting of the mel-derived long-term predictor (:mod:`waveflow_py.sourcefilter.periodicity`,
:class:`waveflow_py.sourcefilter.ltp.LongTermPredictor`) after the LPC-16 envelope, on dev clips:

* ``ll``: log-likelihood (nats/sample) of the reference under "Gaussian excitation -> pitch filter ->
  LPC filter" (no learned parameters; ``none`` is the envelope baseline of ``waveflow eval``);
* ``f0 ok``: share of pYIN-voiced segments of the reference whose mel lag is within 50 cents of pYIN;
* ``b voiced`` / ``b unvoiced``: the mean pitch gain on pYIN-voiced / unvoiced segments;
* ``V/UV F1``, ``F0 RMSE`` (cents) and ``MR-STFT`` of unit noise through the same filters (what the
  prior sounds like before a flow is trained on it) against the reference, as ``waveflow eval`` scores.

    python experiments/pitch_prior.py ../shared/data/librispeech-mini --clips 8 --seconds 4 \\
        --settings none 1.0:0.3 1.2:0.3 1.5:0.4

A setting is ``strength:threshold``; ``none`` is the LPC envelope alone.

What it measured (likelihood and voicing pull apart: the likelihood peaks at a weak gain, noise through
the filters only sounds voiced from strength 1.0; the defaults 1.0:0.3 come from it) is written up in
docs/quality-per-compute.md, section 7 ("At zero parameters", and the 24-clip baseline of the trained
comparison).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="corpus root with metadata.csv (or split folders), or a .csv")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--clips", type=int, default=8, help="clips, spread evenly over the split's list")
    ap.add_argument("--seconds", type=float, default=4.0, help="first N seconds of each clip")
    ap.add_argument("--settings", nargs="+", default=["none", "0.6:0.0", "1.0:0.3", "1.2:0.3", "1.5:0.4"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from waveflow_py.config import mel_preset
    from waveflow_py.dtypes import speed_flags
    from waveflow_py.evaluation.clips import find_clips, read_clip
    from waveflow_py.evaluation.pitch import pitch_metrics_from_tracks, track_pitch
    from waveflow_py.evaluation.spectral import log_mel, multi_resolution_stft
    from waveflow_py.sourcefilter.envelope import SpectralEnvelope
    from waveflow_py.sourcefilter.lpc import lpc_synthesize, lpc_whiten
    from waveflow_py.sourcefilter.ltp import LongTermPredictor, ltp_context
    from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range

    torch.set_num_threads(1)
    cfg = mel_preset("16k")
    hop, sr = cfg.hop_length, cfg.sample_rate
    lo, hi = lag_range(cfg)
    env = SpectralEnvelope(cfg, 16)
    ltp = LongTermPredictor(hop, lo, hi)
    print(f"CPU flags: {speed_flags()}; {os.cpu_count()} cores; torch {torch.__version__}")
    clips = find_clips(args.data, split=args.split, max_clips=args.clips)
    print(f"{len(clips)} {args.split} clips, first {args.seconds:g} s; lags {lo}..{hi}; LPC-16, hop {hop}")
    loaded = []
    for clip in clips:
        x = read_clip(clip, sr, args.seconds, multiple_of=hop)
        mel = torch.as_tensor(np.asarray(log_mel(x.astype(np.float32), cfg)))[None]
        ref_track = track_pitch(x, sr)
        seg_t = (np.arange(x.size // hop) + 0.5) * hop / sr
        frame = np.clip(np.round(seg_t / 0.01).astype(int), 0, ref_track.f0.size - 1)
        loaded.append((clip, x, mel, ref_track, frame))

    print("| setting | ll (nats/sample) | f0 ok | b voiced | b unvoiced | V/UV F1 | F0 RMSE (c) | MR-STFT |")
    print("|---|---|---|---|---|---|---|---|")
    gauss = 0.5 * math.log(2 * math.pi)
    for setting in args.settings:
        rows = []
        for _clip, x, mel, ref_track, frame in loaded:
            n_seg = x.size // hop
            a, log_gain = env(mel, n_seg)
            xt = torch.from_numpy(x)[None]
            e, ld, _ = lpc_whiten(xt, a.double(), log_gain.double(), hop)
            voiced = ref_track.voiced[frame]
            gen = torch.Generator().manual_seed(args.seed)
            noise = torch.randn(1, x.size, generator=gen, dtype=torch.float64)
            f0_ok, b_v, b_u = float("nan"), 0.0, 0.0
            if setting == "none":
                u, ld_p, excitation = e, torch.zeros(1, dtype=torch.float64), noise
            else:
                strength, threshold = (float(v) for v in setting.split(":"))
                per = MelPeriodicity(cfg, lo, hi, strength=strength, threshold=threshold)
                lag, gain = per(mel, n_seg)
                ctx = ltp_context(lag, gain).double()
                u, ld_p, _ = ltp.analysis(e, ctx)
                with torch.no_grad():
                    excitation, _, _ = ltp.synthesis(noise, ctx)
                f0_mel = sr / lag[0].numpy()
                if voiced.any():
                    cents = np.abs(1200 * np.log2(f0_mel[voiced] / ref_track.f0[frame][voiced]))
                    f0_ok = float(np.mean(cents < 50))
                g = gain[0].numpy()
                b_v = float(g[voiced].mean()) if voiced.any() else 0.0
                b_u = float(g[~voiced].mean()) if (~voiced).any() else 0.0
            ll = (-0.5 * float(u.square().sum()) - x.size * gauss + float(ld) + float(ld_p)) / x.size
            with torch.no_grad():
                y, _, _ = lpc_synthesize(excitation, a.double(), log_gain.double(), hop)
            y = y[0].numpy()
            pm = pitch_metrics_from_tracks(ref_track, track_pitch(y, sr))
            ms = multi_resolution_stft(x, y)["total"]
            rows.append((ll, f0_ok, b_v, b_u, pm["vuv_f1"], pm["f0_rmse_cents"], ms, x.size))
        r = np.array(rows)
        w = r[:, -1] / r[:, -1].sum()
        ll = float((r[:, 0] * w).sum())
        means = [float(np.nanmean(c)) if np.isfinite(c).any() else float("nan") for c in r.T[1:7]]
        print(
            f"| {setting} | {ll:.3f} | {means[0]:.2f} | {means[1]:.2f} | {means[2]:.2f} | {means[3]:.3f} "
            f"| {means[4]:.0f} | {means[5]:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where the nats are: what a flow on the LPC excitation could still gain, measured on real speech.

The ``lpc`` envelope prior whitens each hop-long segment with the LPC filter and gain the log-mel gives
(:class:`~waveflow_py.sourcefilter.envelope.SpectralEnvelope`); the flow then models the excitation ``e``. Its
log-likelihood is ``LL(e) - mean log g``. This script takes dev clips and prints, per clip and on
average, the log-likelihood (nats/sample) of the reference under the zero-parameter envelope model and
under *oracle* refinements that look at the reference itself (upper bounds on what a model that sees only
the mel and the past samples could learn of each kind):

* ``gain``: each segment's excitation rescaled to unit variance (a perfect per-segment energy: what the
  mel's gain gets wrong);
* ``ltp``: a one-tap long-term (pitch) predictor per segment, ``e[n] - b e[n - L]``, with the lag
  ``L`` in 2.5-20 ms (400-50 Hz) and ``b`` fitted by least squares on the segment (periodicity: the
  harmonics the mel does not resolve), then rescaled as in ``gain``;
* ``laplace``: the ``gain`` excitation scored with a unit-variance Laplace density instead of the
  Gaussian (heavy tails: glottal pulses).

An oracle's fitted parameters cost nothing here, so the gains are upper bounds for the *kind* of
structure, not promises; their sizes say where a flow's capacity should go.

    python experiments/excitation_headroom.py ../shared/data/librispeech-mini --clips 12 --seconds 4

What it measured (about 0.05 nats/sample for oracle energy, 0.08 for an oracle one-tap pitch predictor,
next to nothing for heavy tails: the reason the pitch prior came next) is written up in
docs/quality-per-compute.md, section 3.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch


def segment_scores(e: np.ndarray, hop: int, min_lag: int, max_lag: int) -> dict[str, np.ndarray]:
    """Per-segment log-likelihood sums (nats) of the excitation under each model (module docstring)."""
    n = e.size // hop
    out = {k: np.zeros(n) for k in ("envelope", "gain", "ltp", "laplace")}
    gauss = 0.5 * math.log(2 * math.pi)
    lap = math.log(2.0 / math.sqrt(2.0))  # log(2b) with b = 1/sqrt(2): unit variance
    for s in range(n):
        seg = e[s * hop : (s + 1) * hop]
        out["envelope"][s] = float(-0.5 * np.sum(seg**2)) - hop * gauss
        var = max(float(np.mean(seg**2)), 1e-12)
        out["gain"][s] = -0.5 * hop * (1.0 + math.log(var)) - hop * gauss
        u = seg / math.sqrt(var)
        out["laplace"][s] = float(-math.sqrt(2.0) * np.sum(np.abs(u))) - hop * lap - 0.5 * hop * math.log(var)
        best = var
        start = s * hop
        if start >= max_lag:
            for lag in range(min_lag, max_lag + 1):
                past = e[start - lag : start - lag + hop]
                den = float(np.dot(past, past))
                if den <= 0:
                    continue
                b = float(np.dot(seg, past)) / den
                r = seg - b * past
                best = min(best, max(float(np.mean(r**2)), 1e-12))
        out["ltp"][s] = -0.5 * hop * (1.0 + math.log(best)) - hop * gauss
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="corpus root with metadata.csv (or split folders), or a .csv")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--clips", type=int, default=12, help="clips, spread evenly over the split's list")
    ap.add_argument("--seconds", type=float, default=4.0, help="first N seconds of each clip")
    ap.add_argument("--order", type=int, default=16)
    args = ap.parse_args()

    from waveflow_py.config import mel_preset
    from waveflow_py.evaluation.clips import find_clips, read_clip
    from waveflow_py.evaluation.spectral import log_mel
    from waveflow_py.sourcefilter.envelope import SpectralEnvelope
    from waveflow_py.sourcefilter.lpc import lpc_whiten

    torch.set_num_threads(1)
    cfg = mel_preset("16k")
    hop, sr = cfg.hop_length, cfg.sample_rate
    pick = find_clips(args.data, split=args.split, max_clips=args.clips)  # evenly spaced over the list
    env = SpectralEnvelope(cfg, args.order)
    totals: dict[str, float] = {}
    samples = 0
    from waveflow_py.dtypes import speed_flags

    print(f"CPU flags: {speed_flags()}; {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"{len(pick)} {args.split} clips, first {args.seconds:g} s, LPC order {args.order}, hop {hop}")
    print("| clip | envelope | +gain | +ltp | laplace |")
    print("|---|---|---|---|---|")
    for clip in pick:
        x = read_clip(clip, sr, args.seconds, multiple_of=hop)
        mel = torch.as_tensor(np.asarray(log_mel(x.astype(np.float32), cfg)))[None]
        a, log_gain = env(mel, x.size // hop)
        e, logdet, _ = lpc_whiten(torch.from_numpy(x)[None], a.double(), log_gain.double(), hop)
        scores = segment_scores(e[0].numpy(), hop, sr // 400, sr // 50)
        ll = {k: (float(v.sum()) + float(logdet)) / x.size for k, v in scores.items()}
        for k, v in ll.items():
            totals[k] = totals.get(k, 0.0) + v * x.size
        samples += x.size
        cells = " | ".join(f"{ll[k]:.3f}" for k in ("envelope", "gain", "ltp", "laplace"))
        print(f"| {clip.clip_id} | {cells} |")
    mean = {k: v / samples for k, v in totals.items()}
    print(
        f"| **all ({samples / sr:.0f} s)** | **{mean['envelope']:.3f}** | **{mean['gain']:.3f}** "
        f"| **{mean['ltp']:.3f}** | **{mean['laplace']:.3f}** |"
    )
    print(
        f"oracle headroom over the envelope model (nats/sample): per-segment gain "
        f"{mean['gain'] - mean['envelope']:+.3f}, + pitch predictor {mean['ltp'] - mean['gain']:+.3f}, "
        f"Laplace instead of Gaussian {mean['laplace'] - mean['gain']:+.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

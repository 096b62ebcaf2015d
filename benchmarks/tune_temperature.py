"""Tune a release's sampling temperature on dev clips, side by side, and optionally store it in the release.

For each temperature, every clip is vocoded through the one sampler (``inference.synthesize``, noise seed
``seed + clip index``, the same for every temperature) and scored against its reference: MR-STFT,
log-mel L1, and (unless ``--fast``) V/UV F1 and F0 RMSE. The temperature with the lowest mean MR-STFT is
chosen (ties: log-mel L1); ``--write`` stores it as the release's ``temperature`` (config.json and
weights rewritten atomically by ``save_release``; the weights are unchanged).

    python benchmarks/tune_temperature.py RELEASE --data ../shared/data/librispeech-mini/metadata.csv \
        --split dev --max-clips 12 --temperatures 0.5 0.6 0.7 0.8 0.9 1.0 [--write]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", help="release name or directory")
    ap.add_argument("--data", required=True, help="metadata.csv or a directory of audio files")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-clips", type=int, default=12, help="clips, evenly spaced over the list")
    ap.add_argument("--max-seconds", type=float, default=4.0, help="crop each clip to this length")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast", action="store_true", help="spectral metrics only (no pitch tracking)")
    ap.add_argument("--write", action="store_true", help="store the chosen temperature in the release")
    args = ap.parse_args(argv)

    from waveflow_py.audio import MelSpectrogram, load_audio
    from waveflow_py.evaluation.clips import find_clips
    from waveflow_py.evaluation.pitch import pitch_metrics
    from waveflow_py.evaluation.spectral import log_mel_l1, multi_resolution_stft
    from waveflow_py.inference.synthesis import synthesize
    from waveflow_py.pretrained import load_release, save_release

    model, info = load_release(args.release)
    cfg = info.config.mel
    front = MelSpectrogram(cfg)
    clips = find_clips(args.data, split=args.split, max_clips=args.max_clips)
    refs = []
    for clip in clips:
        audio, _ = load_audio(clip.path, cfg.sample_rate, resample=True)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)[: int(args.max_seconds * cfg.sample_rate)]
        refs.append(audio)
    rows = []
    for temp in args.temperatures:
        scores: dict[str, list[float]] = {"mrstft": [], "log_mel_l1": [], "vuv_f1": [], "f0_rmse_cents": []}
        for i, ref in enumerate(refs):
            with torch.no_grad():
                mel = front(torch.from_numpy(ref)[None])
                gen = torch.Generator().manual_seed(args.seed + i)
                out, _ = synthesize(model, mel, temperature=temp, generator=gen)
            deg = out[0, : ref.size].numpy()
            scores["mrstft"].append(multi_resolution_stft(ref, deg)["total"])
            scores["log_mel_l1"].append(log_mel_l1(ref, deg, cfg.sample_rate, cfg))
            if not args.fast:
                p = pitch_metrics(ref, deg, cfg.sample_rate)
                scores["vuv_f1"].append(p["vuv_f1"])
                scores["f0_rmse_cents"].append(p["f0_rmse_cents"])
        means = {k: float(np.nanmean(v)) if v else math.nan for k, v in scores.items()}
        rows.append((temp, means))
        print(f"temperature {temp:.2f}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()), flush=True)
    best = min(rows, key=lambda r: (r[1]["mrstft"], r[1]["log_mel_l1"]))
    print("\n| temperature | MR-STFT | log-mel L1 | V/UV F1 | F0 RMSE (cents) |\n|---|---|---|---|---|")
    for temp, m in rows:
        mark = " (chosen)" if temp == best[0] else ""
        print(f"| {temp:.2f}{mark} | {m['mrstft']:.4f} | {m['log_mel_l1']:.4f} | {m['vuv_f1']:.3f} | "
              f"{m['f0_rmse_cents']:.1f} |")
    print(f"\nchosen temperature: {best[0]} ({len(refs)} {args.split} clips of <= {args.max_seconds} s)")
    if args.write:
        save_release(info.path, model, provenance=info.provenance, temperature=best[0])
        print(f"stored temperature {best[0]} in {info.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

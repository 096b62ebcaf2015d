"""Tune a release's sampling settings (temperature, noise truncation, excitation level) on dev clips, side
by side, and optionally store them in the release.

For each (temperature, truncation, excitation RMS) of the grid, every clip is vocoded through the one sampler
(``inference.synthesize``, noise seed ``seed + clip index``, the same for every setting) and scored
against its reference: MR-STFT, log-mel L1, peak |sample| and (unless ``--fast``) V/UV F1 and F0 RMSE.
The setting with the lowest mean MR-STFT is chosen (ties: log-mel L1), among those whose loudest sample
stays within ``--max-peak`` when given (e.g. 1.0: no clipped samples in a 16-bit file); ``--write``
stores it as the release's ``temperature``, ``truncation`` and ``excitation_rms`` (config.json and
weights rewritten atomically by ``save_release``; the weights are unchanged). Truncation
(``StandardNormal.truncation``) squeezes the same noise draws into the normal truncated to +-C standard
deviations, at unit variance; the excitation RMS (envelope priors, ``inference.core.level_frames``) sets
every frame of the generated excitation to that level; ``none`` turns either off.

    python benchmarks/tune_temperature.py RELEASE --data ../shared/data/librispeech-mini/metadata.csv \
        --split dev --max-clips 12 --temperatures 0.98 0.99 1.0 --truncations none 2.5 \
        --excitation-rms none 1.0 1.25 [--max-peak 1.0] [--write]
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
    ap.add_argument("--truncations", nargs="+", default=["none"], metavar="C",
                    help="noise truncations to try, in standard deviations, or 'none' (default: none)")
    ap.add_argument("--excitation-rms", nargs="+", default=["none"], metavar="R",
                    help="per-frame excitation levels to try (envelope priors), or 'none' (default: none)")
    ap.add_argument("--max-peak", type=float, default=None, metavar="P",
                    help="choose only among settings whose loudest output sample is <= P (e.g. 1.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast", action="store_true", help="spectral metrics only (no pitch tracking)")
    ap.add_argument("--write", action="store_true", help="store the chosen temperature in the release")
    args = ap.parse_args(argv)
    from waveflow_py.flows.distributions import check_truncation
    from waveflow_py.inference.core import check_excitation_rms

    def values(texts: list[str], check, flag: str) -> list[float | None]:
        try:
            return [None if c.lower() in ("none", "off") else check(c) for c in texts]
        except ValueError as e:
            ap.error(f"{flag}: {e}")

    truncations = values(args.truncations, check_truncation, "--truncations")
    levels = values(args.excitation_rms, check_excitation_rms, "--excitation-rms")

    from waveflow_py.audio import MelSpectrogram, load_audio
    from waveflow_py.evaluation.clips import find_clips
    from waveflow_py.evaluation.pitch import pitch_metrics
    from waveflow_py.evaluation.spectral import log_mel_l1, multi_resolution_stft
    from waveflow_py.inference.synthesis import synthesize
    from waveflow_py.pretrained import load_release, save_release

    model, info = load_release(args.release)
    if any(r is not None for r in levels):
        try:
            check_excitation_rms(1.0, model)
        except ValueError as e:
            ap.error(f"--excitation-rms: {e}")
    cfg = info.config.mel
    front = MelSpectrogram(cfg)
    clips = find_clips(args.data, split=args.split, max_clips=args.max_clips)
    refs = []
    for clip in clips:
        audio, _ = load_audio(clip.path, cfg.sample_rate, resample=True)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)[: int(args.max_seconds * cfg.sample_rate)]
        refs.append(audio)
    rows = []
    grid = [(t, c, r) for t in args.temperatures for c in truncations for r in levels]
    for temp, trunc, level in grid:
        model.prior.truncation, model.excitation_rms = trunc, level
        scores: dict[str, list[float]] = {
            "mrstft": [], "log_mel_l1": [], "peak": [], "vuv_f1": [], "f0_rmse_cents": []
        }
        for i, ref in enumerate(refs):
            with torch.no_grad():
                mel = front(torch.from_numpy(ref)[None])
                gen = torch.Generator().manual_seed(args.seed + i)
                out, _ = synthesize(model, mel, temperature=temp, generator=gen)
            deg = out[0, : ref.size].numpy()
            scores["mrstft"].append(multi_resolution_stft(ref, deg)["total"])
            scores["log_mel_l1"].append(log_mel_l1(ref, deg, cfg.sample_rate, cfg))
            scores["peak"].append(float(np.abs(deg).max()))
            if not args.fast:
                p = pitch_metrics(ref, deg, cfg.sample_rate)
                scores["vuv_f1"].append(p["vuv_f1"])
                scores["f0_rmse_cents"].append(p["f0_rmse_cents"])
        means = {k: float(np.nanmean(v)) if v else math.nan for k, v in scores.items()}
        means["peak"] = max(scores["peak"])  # the loudest sample of any clip
        rows.append((temp, trunc, level, means))
        print(f"temperature {temp:.2f}, truncation {_name(trunc)}, excitation RMS {_name(level)}: "
              + ", ".join(f"{k} {v:.4f}" for k, v in means.items()), flush=True)
    allowed = [r for r in rows if args.max_peak is None or r[3]["peak"] <= args.max_peak]
    if not allowed:
        print(f"no setting keeps the peak within {args.max_peak}: widen the grid (smaller truncations)")
        return 1
    best = min(allowed, key=lambda r: (r[3]["mrstft"], r[3]["log_mel_l1"]))
    print("\n| temperature | truncation | excitation RMS | MR-STFT | log-mel L1 | peak | V/UV F1 | "
          "F0 RMSE (cents) |\n|---|---|---|---|---|---|---|---|")
    for temp, trunc, level, m in rows:
        mark = " (chosen)" if (temp, trunc, level) == best[:3] else ""
        print(f"| {temp:.2f}{mark} | {_name(trunc)} | {_name(level)} | {m['mrstft']:.4f} | "
              f"{m['log_mel_l1']:.4f} | {m['peak']:.3f} | {m['vuv_f1']:.3f} | {m['f0_rmse_cents']:.1f} |")
    limit = "" if args.max_peak is None else f", peak <= {args.max_peak:g}"
    print(f"\nchosen: temperature {best[0]}, truncation {_name(best[1])}, excitation RMS {_name(best[2])} "
          f"({len(refs)} {args.split} clips of <= {args.max_seconds} s{limit})")
    if args.write:
        model.prior.truncation, model.excitation_rms = best[1], best[2]
        save_release(info.path, model, provenance=info.provenance, temperature=best[0], truncation=best[1],
                     excitation_rms=best[2])
        print(f"stored temperature {best[0]}, truncation {_name(best[1])} and excitation RMS "
              f"{_name(best[2])} in {info.path}")
    return 0


def _name(truncation: float | None) -> str:
    return "none" if truncation is None else f"{truncation:g}"


if __name__ == "__main__":
    sys.exit(main())

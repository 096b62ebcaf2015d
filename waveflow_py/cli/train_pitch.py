"""``waveflow train-pitch DATA --out DIR``: train the learned pitch predictor of the harmonic source.

DATA is a corpus with a train split (``metadata.csv`` with a ``split`` column, or ``train/`` and ``dev/``
folders); pYIN labels are computed once per file and cached in ``DIR/labels``. The mel settings come from
``--preset``, ``--model`` (a release) or the default model. Prints the dev split's V/UV F1 and gross pitch
error per speaker; a vocoder run uses the result with ``--set train.pitch_net=DIR`` and
``model.source_filter.source_pitch=learned`` (:mod:`waveflow_py.train.pitch`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

HELP = "train the learned pitch/voicing predictor of the harmonic source (pYIN labels)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="corpus directory (train split; dev split scored) or metadata .csv")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (weights, report, label cache)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default=None, help="mel preset (default: the default model's settings)")
    source.add_argument("--model", default=None, metavar="NAME_OR_DIR", help="use a release's mel settings")
    parser.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    parser.add_argument("--hidden", type=int, default=128, help="channels (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    import torch

    from waveflow_py.cli.mel import mel_settings
    from waveflow_py.train.pitch import PitchTrainConfig, train_pitch_net

    cfg = PitchTrainConfig(steps=args.steps, minutes=args.minutes, hidden=args.hidden, seed=args.seed)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: expected a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    mel, why = mel_settings(args)
    print(f"mel settings: {why}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    meta = train_pitch_net(args.data, out, mel, cfg, progress=not args.quiet)
    print(f"trained {meta['steps']} steps on {meta['train_files']} files in {meta['minutes']} min: {out}")
    if meta["dev"]:
        print("dev (mel frames vs pYIN on the reference):")
        print(f"  {'speaker':<12} {'V/UV F1':>8} {'GPE':>7} {'voiced frames':>14}")
        for speaker, row in sorted(meta["dev"].items(), key=lambda kv: (kv[0] == "all", kv[0])):
            f1, gpe, frames = _fmt(row["vuv_f1"]), _fmt(row["gpe"]), int(row["frames_voiced"])
            print(f"  {speaker:<12} {f1:>8} {gpe:>7} {frames:>14}")
    return 0

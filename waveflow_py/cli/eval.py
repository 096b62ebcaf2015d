"""``waveflow eval``: objective evaluation of a vocoder release on reference clips, written as a report.

Example::

    waveflow eval --model pretrained/my-release --data ../shared/data/librispeech-mini --split dev \\
        --max-clips 6 -o reports/dev
"""

from __future__ import annotations

import argparse
import logging

from waveflow_py.cli import add_temperature_argument

HELP = "evaluate a vocoder against reference audio (PESQ, STOI, MR-STFT, MCD, pitch, NLL) and write a report"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, help="release name or release directory")
    parser.add_argument(
        "--data", "-d", required=True, help="metadata.csv (path,split,...) or a directory of audio files"
    )
    parser.add_argument("--split", default=None, help="evaluate only rows/folder of this split (e.g. dev)")
    parser.add_argument(
        "--max-clips",
        type=int,
        default=None,
        metavar="N",
        help="N clips evenly spaced over the list (all speakers of a corpus sorted by speaker)",
    )
    add_temperature_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="noise seed (clip i uses seed + i)")
    parser.add_argument(
        "--gl-iters", type=int, default=60, metavar="N", help="Griffin-Lim iterations (default 60)"
    )
    parser.add_argument("--figures", type=int, default=3, metavar="N", help="spectrogram figures (default 3)")
    parser.add_argument("--device", default=None, help="torch device for the model (default: cpu)")
    parser.add_argument("--output", "-o", required=True, help="report directory (created)")


def run(args: argparse.Namespace) -> int:
    from waveflow_py.evaluation import evaluate
    from waveflow_py.evaluation.report import speaker_overview, summaries

    if args.gl_iters < 1:
        raise ValueError(f"--gl-iters: expected a positive integer, got {args.gl_iters}")
    if args.figures < 0:
        raise ValueError(f"--figures: expected >= 0, got {args.figures}")
    try:
        from waveflow_py.evaluation.perceptual import require

        require("pesq", "pesq")
        require("pystoi", "pystoi")
    except ImportError as e:  # a one-line CLI error that names the extra to install
        raise ValueError(str(e)) from e
    result = evaluate(
        args.model,
        args.data,
        args.output,
        split=args.split,
        max_clips=args.max_clips,
        temperature=args.temperature,
        seed=args.seed,
        gl_iters=args.gl_iters,
        n_figures=args.figures,
        progress=True,
        device=args.device,
        truncation=args.truncation,
        excitation_rms=args.excitation_rms,
    )
    summ = summaries(result)
    if result.clips:
        voc, gl, env = summ["vocoder"], summ["griffin_lim"], summ["envelope"]
        print(
            f"{len(result.clips)} clips ({len(result.failed)} failed) in {result.wall_seconds:.1f} s: "
            f"vocoder PESQ {voc['pesq_wb'].mean:.2f}, STOI {voc['stoi'].mean:.3f}, "
            f"MCD {voc['mcd'].mean:.2f} dB, "
            f"NLL {voc['nll_nats'].mean:.3f} nats/sample; Griffin-Lim PESQ {gl['pesq_wb'].mean:.2f}, "
            f"STOI {gl['stoi'].mean:.3f}; envelope baseline PESQ {env['pesq_wb'].mean:.2f}, "
            f"NLL {env['nll_nats'].mean:.3f} nats/sample"
        )
        print("\n".join(speaker_overview(result)))
    print(f"report: {args.output}/report.md")
    if not result.clips:
        logger.error("no clip could be evaluated; see the failed clips in the report")
        return 1
    return 0

"""``waveflow eval``: objective evaluation of a vocoder release on reference clips, written as a report.

Example::

    waveflow eval --model pretrained/my-release --data ../shared/data/librispeech-mini --split dev \\
        --max-clips 6 -o reports/dev

The report directory follows the rules of ``waveflow vocode``, checked before the evaluation runs: it
must be writable; files of an earlier ``waveflow eval`` report there (its ``metrics.json``) are replaced,
anyone else's ``report.md``, ``metrics.json``, figures or audio only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from waveflow_py.cli import add_temperature_argument
from waveflow_py.cli._outputs import add_overwrite_argument, check_outputs

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
    add_overwrite_argument(parser)


def _is_report(out: Path) -> bool:
    """Whether ``out`` holds an earlier ``waveflow eval`` report (its metrics.json)."""
    try:
        data = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"settings", "summary", "clips"} <= set(data)


def _check_output(args: argparse.Namespace) -> None:
    """Before the evaluation: OUT is (or can be made) a writable directory, and the report would replace
    no file that an earlier report did not write, unless ``--overwrite``."""
    from waveflow_py.evaluation.runner import SYSTEMS

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: expected a directory, found a file")
    targets = [out / "report.md", out / "metrics.json", out / "figures" / "distributions.png"]
    targets += [out / "figures" / f"spectrogram_{i}.png" for i in range(args.figures)]
    targets += [out / "audio" / f"{i}_{s}.wav" for i in range(args.figures) for s in SYSTEMS]
    earlier = _is_report(out)
    check_outputs("eval", targets, [Path(args.data)], overwrite=args.overwrite, ours=lambda _: earlier)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"-o {out}: cannot write there ({e.strerror or e})") from e


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
    from waveflow_py.pretrained import load_release_config

    load_release_config(args.model)  # a missing or broken release is named before OUT is created
    if not Path(args.data).exists():
        raise ValueError(f"--data {args.data}: no such file or directory")
    _check_output(args)
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
        pitch_strength=args.pitch_strength,
        mel_projection=args.mel_projection,
        projection_iters=args.projection_iters,
        projection_fit=args.projection_fit,
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

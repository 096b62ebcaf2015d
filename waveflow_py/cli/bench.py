"""``waveflow bench``: synthesis speed of the plain, cached and GPU-fused inverse side by side."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = "benchmark synthesis speed (kHz, x real time, RTF): plain vs cached vs GPU-fused inverse"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="r=64 h=16 batch 1 only, short audio (about a minute on 2 CPU cores)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--r", type=int, nargs="+", help="WaveFlow residual channels (default 64 128)")
    p.add_argument("--h", type=int, nargs="+", help="WaveFlow heights n_group (default 16 64)")
    p.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 1 16)")
    p.add_argument(
        "--dtype",
        nargs="+",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="default fp32 auto (auto: bf16 where measured faster for the model and within tolerance, "
        "else fp32; the measurement is printed)",
    )
    p.add_argument(
        "--methods", nargs="+", choices=["plain", "cached", "fused"], default=["plain", "cached", "fused"]
    )
    p.add_argument("--seconds", type=float, help="audio per item for cached/fused (default 1.0, quick 0.25)")
    p.add_argument(
        "--plain-seconds",
        type=float,
        help="audio per item for the slow plain inverse (default 0.05, quick 0.01)",
    )
    p.add_argument("--repeats", type=int, help="timed runs, the best is kept (default 2, quick 1)")
    p.add_argument(
        "--models",
        nargs="+",
        choices=["waveflow", "waveglow"],
        default=["waveflow"],
        help="WaveFlow grid and/or WaveGlow at the paper's size (default waveflow)",
    )
    p.add_argument(
        "--precision",
        action="store_true",
        help="also measure each bf16/fp16 case's audio error against fp32 (same noise)",
    )
    p.add_argument("--results", metavar="PATH", help="write table, command, hardware to PATH")
    p.add_argument("--append", action="store_true", help="append to --results, not replace")
    p.add_argument("--note", action="append", default=[], help="a note for the results file (repeatable)")


def run(args: argparse.Namespace) -> int:
    import torch

    from waveflow_py.inference.bench import (
        bench_cases,
        format_table,
        hardware_info,
        run_benchmarks,
        write_results,
    )

    if args.threads < 1:
        raise ValueError(f"--threads: expected >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    seconds = args.seconds or (0.25 if args.quick else 1.0)
    plain = args.plain_seconds or (0.01 if args.quick else 0.05)
    repeats = args.repeats or (1 if args.quick else 2)
    cases = bench_cases(args.quick, args.r, args.h, args.batch, args.dtype, args.models, device=device)
    results = run_benchmarks(
        cases,
        args.methods,
        device=device,
        seconds=seconds,
        plain_seconds=plain,
        repeats=repeats,
        precision=args.precision,
    )
    table = format_table(results)
    print(table)
    autos = list(dict.fromkeys(r.auto for r in results if r.auto))
    for line in autos:
        print(f"dtype auto on {device}, {line}")
    if args.results:
        argv = [Path(sys.argv[0]).name if not sys.argv[0].endswith(".py") else sys.argv[0], *sys.argv[1:]]
        command = ("python " if argv[0].endswith(".py") else "") + " ".join(shlex.quote(a) for a in argv)
        notes = [
            f"cached/fused: {seconds} s of audio per item; plain: {plain} s per item (it re-runs the WaveNet "
            "for every row, O(h^2) rows of work), reported as rates, which do not depend on the length",
            f"best of {repeats} timed run(s) after one warm-up; random weights "
            "(speed does not depend on them)",
            *(f"dtype auto on {device}, {line}" for line in autos),
            *args.note,
        ]
        write_results(args.results, table, hardware_info(device), command, notes, append=args.append)
        print(f"wrote {args.results}")
    return 0

"""Peak memory (RSS) of resynthesising one long file versus its length: audio -> mel -> audio.

Each case runs in a fresh subprocess (peak RSS = ``ru_maxrss`` of that process, so cases cannot
inflate each other): it builds the model with random weights (memory does not depend on them), makes
``seconds`` of a synthetic speech-like signal at 22.05 kHz, computes its mel with
:class:`~waveflow_py.audio.MelSpectrogram`, drops the waveform (as ``waveflow vocode`` does) and vocodes
the mel with :meth:`waveflow_py.vocoder.Vocoder.vocode` (default compute dtype ``auto``).

``--mode chunked`` is the library's default (mel and synthesis in chunks, bounded working memory);
``--mode oneshot`` turns both off (``chunk_frames=None``, ``max_frames=None``), as before this change.
``--stop-after N`` (chunked only) stops synthesis after ``N`` chunks: every buffer whose size follows
the input (audio, mel, noise, output) is allocated, the per-chunk working set has been reached, but the
rest of the input is not synthesised (for a paper-size model on a 1 h input, which would take about an
hour of CPU). The table says which rows did this.

Usage::

    python benchmarks/bench_memory.py --model paper --seconds 10 60 --modes oneshot chunked
    python benchmarks/bench_memory.py --model tiny --seconds 10 60 600 3600 --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shlex
import subprocess
import sys
import time
from typing import Any

SR = 22050


class _Stop(Exception):
    """Raised to end synthesis after ``--stop-after`` chunks."""


def _model(kind: str) -> Any:
    import torch

    from waveflow_py.config import WaveFlowConfig
    from waveflow_py.models import build_model

    torch.manual_seed(0)
    if kind == "paper":
        cfg = WaveFlowConfig()  # the paper's WaveFlow: h=16, r=64, 8 flows x 8 layers (5.95 M parameters)
    else:  # the tiny demo architecture (pretrained.tiny)
        cfg = WaveFlowConfig(n_group=8, n_flows=2, n_layers=2, residual_channels=8)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if not bool(p.any()):
                p.normal_(0.0, 0.02)
    return model.eval()


def _signal(seconds: float) -> Any:
    """A speech-like test signal (an amplitude-modulated harmonic tone plus noise), made in pieces."""
    import torch

    n = int(seconds * SR)
    out = torch.empty(n)
    gen = torch.Generator().manual_seed(0)
    step = SR * 10
    for a in range(0, n, step):
        t = torch.arange(a, min(n, a + step), dtype=torch.float64) / SR
        tone = torch.sin(2 * math.pi * 140 * t) + 0.5 * torch.sin(2 * math.pi * 280 * t)
        env = 0.5 * (1 + torch.sin(2 * math.pi * 3 * t))
        out[a : a + len(t)] = (0.2 * tone * env).float() + 0.01 * torch.randn(len(t), generator=gen)
    return out


def child(args: argparse.Namespace) -> None:
    import torch

    from waveflow_py.inference import streaming
    from waveflow_py.vocoder import Vocoder

    torch.set_num_threads(args.threads)
    seconds = float(args.seconds[0])
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 - MiB on Linux
    model = _model(args.model)
    oneshot = args.mode == "oneshot"
    vocoder = Vocoder(model, compute_dtype=args.dtype, max_frames=None if oneshot else args.max_frames)
    base = rss()
    audio = _signal(seconds)
    t0 = time.perf_counter()
    with torch.inference_mode():
        from waveflow_py.audio import MelSpectrogram

        mel = MelSpectrogram(vocoder.mel_config)(audio, chunk_frames=None if oneshot else 4096)[0]
    del audio  # as `waveflow vocode` does: only the mel (and the length) is kept
    chunks = {"n": 0}
    if args.stop_after:
        real = streaming.StreamingSynthesizer._emit

        def emit(self, n):  # count the synthesis steps, stop after --stop-after of them
            chunks["n"] += 1
            if chunks["n"] > args.stop_after:
                raise _Stop
            return real(self, n)

        streaming.StreamingSynthesizer._emit = emit
    done = True
    try:
        out = vocoder.vocode(mel, mel_format="model", generator=torch.Generator().manual_seed(0))
        assert out.shape[0] == mel.shape[-1] * vocoder.hop_length and bool(torch.isfinite(out).all())
    except _Stop:
        done = False
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "model": args.model,
                "seconds": seconds,
                "mode": args.mode,
                "dtype": str(vocoder.compute_dtype),
                "peak_rss_mib": rss(),
                "after_model_mib": base,
                "wall_s": wall,
                "completed": done,
                "chunks_run": chunks["n"] if args.stop_after else None,
                "params": sum(p.numel() for p in model.parameters()),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["paper", "tiny"], default="tiny")
    p.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600, 3600])
    p.add_argument("--modes", nargs="+", choices=["chunked", "oneshot"], default=["chunked"])
    p.add_argument("--dtype", default="auto", help="compute dtype (auto, fp32, bf16)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=768, help="synthesis chunk in frames (library default)")
    p.add_argument("--stop-after", type=int, default=0, help="stop synthesis after N chunks (0: run all)")
    p.add_argument("--results", help="append the table to this markdown file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    for mode in args.modes:
        for s in args.seconds:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--model",
                args.model,
                "--seconds",
                str(s),
                "--mode",
                mode,
                "--dtype",
                args.dtype,
                "--threads",
                str(args.threads),
                "--max-frames",
                str(args.max_frames),
                "--stop-after",
                str(args.stop_after if mode == "chunked" else 0),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                tail = (res.stderr.strip().splitlines() or ["?"])[-1]
                rows.append({"model": args.model, "seconds": s, "mode": mode, "error": tail})
            else:
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    table = [
        "| model | input | mode | compute dtype | peak RSS | RSS after model build | wall | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        secs = f"{r['seconds']:g} s"
        if "error" in r:
            table.append(f"| {r['model']} | {secs} | {r['mode']} | - | failed: {r['error']} | - | - | - |")
            continue
        note = "" if r["completed"] else f"synthesis stopped after {r['chunks_run'] - 1} chunks"
        table.append(
            f"| {r['model']} ({r['params'] / 1e6:.2f} M) | {secs} | {r['mode']} | {r['dtype']} | "
            f"{r['peak_rss_mib']:.0f} MiB | {r['after_model_mib']:.0f} MiB | {r['wall_s']:.1f} s "
            f"| {note} |"
        )
    text = "\n".join(table)
    print(text)
    if args.results:
        command = "python benchmarks/bench_memory.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(f"\n## Peak memory vs input length, run of {stamp}\n\n")
            f.write(f"Command:\n\n```\n{command}\n```\n\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()

"""Synthesis speed: plain vs cached vs GPU-fused inverse, side by side, with random weights.

Speed does not depend on the weights, so models are built from their configs with random weights. Each
case synthesises ``batch`` items of ``seconds`` of audio and reports the rate in kHz (output samples
per second of wall time), times real time (``xRT`` = audio seconds / wall seconds) and the real-time
factor ``RTF = 1 / xRT``. The plain (reference) inverse of WaveFlow re-runs the whole WaveNet for every
row (``O(h^2)`` rows of work), so it is timed on shorter audio and reported as a rate (which does not
depend on the length: the inverse is parallel along time). The GPU-fused column needs CUDA: it replays
the cached inverse captured in a CUDA graph (:mod:`waveflow_py.inference.cuda`; eager, with a note in the
table, when capture fails). The fused Triton gate kernels (:mod:`waveflow_py.inference.triton_kernels`)
are ready but only run where a row step calls :func:`~waveflow_py.inference.ops.select_gate_ops`.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from waveflow_py.atomic import atomic_write_text
from waveflow_py.config import WaveFlowConfig, WaveGlowConfig
from waveflow_py.dtypes import is_auto, parse_dtype, short_name
from waveflow_py.inference.core import DEFAULT_TEMPERATURE, run_inverse

__all__ = [
    "BenchCase",
    "BenchResult",
    "bench_cases",
    "run_case",
    "run_benchmarks",
    "format_table",
    "hardware_info",
    "write_results",
]

log = logging.getLogger(__name__)
METHODS = ("plain", "cached", "fused")


@dataclass(frozen=True)
class BenchCase:
    """One configuration; ``model`` is ``"waveflow"`` (``r`` residual channels, ``h`` = n_group) or
    ``"waveglow"`` (``r`` residual channels, ``h`` = n_group); ``dtype`` is ``fp32``, ``bf16``, ``fp16`` or
    ``auto`` (measured for the case's model, :func:`waveflow_py.inference.precision.choose_dtype`)."""

    model: str
    r: int
    h: int
    batch: int
    dtype: str


@dataclass
class BenchResult:
    case: BenchCase
    method: str
    params: int
    audio_s: float = 0.0  # total audio synthesised per timed run (batch x seconds)
    wall_s: float = math.nan  # best wall time of the timed runs
    note: str = ""
    device: str = "cpu"
    sample_rate: int = 22050
    error: dict[str, float] | None = None  # precision_error against float32 (cached, same noise)
    auto: str = ""  # for dtype auto: what was measured (DtypeChoice.reason)

    @property
    def khz(self) -> float:
        return self.audio_s * self.sample_rate / self.wall_s / 1000.0 if self.wall_s > 0 else math.nan

    @property
    def xrt(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s > 0 else math.nan


def bench_cases(
    quick: bool,
    rs: Sequence[int] | None = None,
    hs: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    dtypes: Sequence[str] | None = None,
    models: Sequence[str] = ("waveflow",),
    device: torch.device | str | None = None,
) -> list[BenchCase]:
    """The grid: WaveFlow ``r x h x batch x dtype`` (quick: r=64, h=16, batch 1); WaveGlow at the paper's
    size (r=256, groups of 8) for each batch and dtype. ``dtypes``: names (``fp32``, ``bf16``, ``fp16``) or
    ``auto`` (measured per model when the case runs); default fp32 and auto."""
    rs = rs or ([64] if quick else [64, 128])
    hs = hs or ([16] if quick else [16, 64])
    batches = batches or ([1] if quick else [1, 16])
    names: list[str] = []
    for d in dtypes or ["fp32", "auto"]:
        name = "auto" if is_auto(d) else short_name(parse_dtype(d) or torch.float32)
        if name not in ("fp32", "bf16", "fp16", "auto"):
            raise ValueError(f"dtype: expected auto, fp32, bf16 or fp16, got {d!r}")
        if name not in names:
            names.append(name)
    dtypes = names
    for m in models:
        if m not in ("waveflow", "waveglow"):
            raise ValueError(f"models: expected 'waveflow' or 'waveglow', got {m!r}")
    cases = []
    if "waveflow" in models:
        cases += [BenchCase("waveflow", r, h, b, d) for r in rs for h in hs for b in batches for d in dtypes]
    if "waveglow" in models:
        cases += [BenchCase("waveglow", 256, 8, b, d) for b in batches for d in dtypes]
    return cases


def build_model(case: BenchCase, device: torch.device) -> nn.Module:
    """A randomly initialised model for ``case`` (flows perturbed away from the identity)."""
    if case.model == "waveflow":
        from waveflow_py.models.waveflow import WaveFlow

        model: nn.Module = WaveFlow(WaveFlowConfig(n_group=case.h, residual_channels=case.r))
    elif case.model == "waveglow":
        from waveflow_py.models.waveglow import WaveGlow

        model = WaveGlow(WaveGlowConfig(n_group=case.h, residual_channels=case.r))
    else:
        raise ValueError(f"model: expected 'waveflow' or 'waveglow', got {case.model!r}")
    with torch.no_grad():
        for name, mod in model.named_modules():
            if name.endswith("end_conv"):
                mod.weight.normal_(0.0, 0.01)
    return model.eval().to(device)


def _time(fn, repeats: int, device: torch.device) -> float:
    best = math.inf
    for _ in range(max(1, repeats)):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def run_case(
    case: BenchCase,
    method: str,
    *,
    device: torch.device,
    seconds: float,
    plain_seconds: float,
    repeats: int = 2,
    model: nn.Module | None = None,
) -> BenchResult:
    """Time one ``method`` (``plain``, ``cached`` or ``fused``) of ``case`` (after one warm-up run)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    model = model if model is not None else build_model(case, device)
    params = sum(p.numel() for p in model.parameters())
    sr, hop = int(model.sample_rate), int(model.hop_length)
    res = BenchResult(case, method, params, device=str(device), sample_rate=sr)
    dtype, res.auto = case_dtype(case, model, device)
    if case.dtype == "auto":
        res.note = f"auto: {short_name(dtype)}"
    if method == "fused" and device.type != "cuda":
        res.note = "needs CUDA"
        return res
    if method == "plain" and dtype == torch.float16 and device.type == "cpu":
        res.note = "fp16 autocast unsupported on CPU"
        return res
    secs = plain_seconds if method == "plain" else seconds
    frames = max(1, round(secs * sr / hop))
    gen = torch.Generator().manual_seed(0)
    mel = torch.randn(case.batch, model.config.mel.n_mels, frames, generator=gen).to(device)
    z = torch.randn(case.batch, frames * hop, generator=gen).to(device)
    compute = None if dtype == torch.float32 else dtype
    if method == "fused":
        from waveflow_py.inference.cuda import fast_inverse

        graphs: dict = {}

        def fn() -> None:
            fast_inverse(model, z, mel, dtype=compute, graphs=graphs)

        fn()  # captures the graph
        if graphs and not next(iter(graphs.values())).graphed:
            res.note = ", ".join(filter(None, [res.note, "graph capture failed: eager"]))
    else:

        def fn() -> None:
            run_inverse(model, z, mel, cached=method == "cached", dtype=compute)

        fn()
    res.wall_s = _time(fn, repeats, device)
    res.audio_s = case.batch * frames * hop / sr
    return res


def case_dtype(case: BenchCase, model: nn.Module, device: torch.device) -> tuple[torch.dtype, str]:
    """The compute dtype of ``case`` and, for ``auto`` (measured for ``model`` on ``device``, cached),
    what was measured."""
    if case.dtype != "auto":
        return parse_dtype(case.dtype) or torch.float32, ""
    from waveflow_py.inference.precision import choose_dtype

    choice = choose_dtype(model, device)
    return choice.dtype, f"{case.model} r={case.r} h={case.h}: {short_name(choice.dtype)} ({choice.reason})"


def run_benchmarks(
    cases: Sequence[BenchCase],
    methods: Sequence[str],
    *,
    device: torch.device,
    seconds: float,
    plain_seconds: float,
    repeats: int,
    precision: bool = False,
) -> list[BenchResult]:
    """Run every method of every case (one model per case); log each result as it comes. ``precision``:
    also measure the audio error of each non-float32 case against float32 (same noise, cached inverse,
    ``seconds`` of audio, first item of the batch)."""
    out = []
    for case in cases:
        torch.manual_seed(0)
        model = build_model(case, device)
        timed = []
        for method in methods:
            r = run_case(
                case,
                method,
                device=device,
                seconds=seconds,
                plain_seconds=plain_seconds,
                repeats=repeats,
                model=model,
            )
            log.info("%s %s: %s", case, method, f"RTF {r.rtf:.3f}" if r.audio_s else r.note)
            timed.append(r)
        if precision and case.dtype != "fp32" and timed:
            timed[0].error = _precision(model, case, seconds, device)
        out += timed
    return out


def _precision(model: nn.Module, case: BenchCase, seconds: float, device: torch.device) -> dict[str, float]:
    from waveflow_py.inference.precision import precision_error

    frames = max(1, round(seconds * model.sample_rate / model.hop_length))
    gen = torch.Generator().manual_seed(1)
    mel = torch.randn(1, model.config.mel.n_mels, frames, generator=gen).to(device)
    dtype, _ = case_dtype(case, model, device)
    return precision_error(model, mel, dtype, temperature=DEFAULT_TEMPERATURE, generator=gen)


def _cell(r: BenchResult | None) -> str:
    if r is None:
        return "-"
    if not r.audio_s:
        return f"n/a ({r.note})"
    return f"{r.khz:.2f} kHz, {r.xrt:.3g}x RT, RTF {r.rtf:.3g}" + (f" ({r.note})" if r.note else "")


def format_table(results: Sequence[BenchResult]) -> str:
    """Markdown: one row per configuration, the methods side by side, plus the cached/plain speed-up."""
    methods = [m for m in METHODS if any(r.method == m for r in results)]
    cases: dict[BenchCase, dict[str, BenchResult]] = {}
    for r in results:
        cases.setdefault(r.case, {})[r.method] = r
    head = ["model", "r", "h", "batch", "dtype", "params"] + methods
    if {"plain", "cached"} <= set(methods):
        head.append("cached / plain")
    with_error = any(r.error for r in results)
    if with_error:
        head.append("error vs fp32 (rel. RMS, SNR)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, by in cases.items():
        params = next(iter(by.values())).params
        row = [case.model, str(case.r), str(case.h), str(case.batch), case.dtype, f"{params / 1e6:.2f} M"]
        row += [_cell(by.get(m)) for m in methods]
        if "cached / plain" in head:
            p, c = by.get("plain"), by.get("cached")
            ok = p and c and p.audio_s and c.audio_s
            row.append(f"{p.wall_s / p.audio_s / (c.wall_s / c.audio_s):.1f}x" if ok else "-")
        if with_error:
            err = next((r.error for r in by.values() if r.error), None)
            row.append(f"{err['rel_rms']:.2e}, {err['snr_db']:.1f} dB" if err else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def hardware_info(device: torch.device) -> dict[str, str]:
    """CPU model (from /proc/cpuinfo), threads, torch version, load average; the GPU name on CUDA."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical cpus": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "device": str(device),
    }
    try:
        info["load average (1/5/15 min) at the end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_results(
    path: str,
    table: str,
    info: dict[str, str],
    command: str,
    notes: Sequence[str] = (),
    *,
    append: bool = False,
) -> None:
    """Write ``path`` (markdown): the exact command, the hardware, notes and the table; ``append`` adds a
    section after the existing content instead of replacing it."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"## Run of {stamp}", "", "Command:", "", "```", command, "```", "", "Hardware:", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes] + ["", table, ""]
    old = ""
    if append and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read().rstrip("\n") + "\n\n"
    else:
        old = "# Synthesis benchmark\n\n"
    atomic_write_text(path, old + "\n".join(lines))

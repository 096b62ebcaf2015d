"""Low precision, measured: the audio error of bfloat16 synthesis against float32, and ``dtype="auto"``.

Whether bfloat16 is faster than float32 cannot be read from CPU flags: two CPUs with the same flags
(``avx512_bf16``, no AMX) ran the same model's cached inverse about twice as fast and about twice as slow
in bfloat16 (docs/quickstart.md, "Precision"). So :func:`choose_dtype` measures, once per machine and
model: it synthesises :data:`PROBE_SECONDS` of a speech-like mel through
:func:`~waveflow_py.inference.synthesize` (the path every caller uses) in float32 and with the networks
in bfloat16, from the same noise, in :data:`PROBE_REPEATS` interleaved pairs (up to three times as many
for a fast model, while under :data:`PROBE_BUDGET_S` seconds). bfloat16 is kept only when its speed-up
is at least :data:`MIN_SPEEDUP` by both the median over the pairs and the ratio of the best times (two
estimates that a load spike on a shared machine does not move together), **and** its audio is within
:data:`MAX_REL_RMS` (relative RMS difference, i.e. an SNR of at least 40 dB) of the float32 audio;
otherwise float32, so ``auto`` is never slower.

The result is cached in ``dtype_auto.json`` in the user's cache directory (``WAVEFLOW_CACHE_DIR``, else
``$XDG_CACHE_HOME/waveflow_py``, else ``~/.cache/waveflow_py``), keyed by the device (CPU model, or GPU
name), the torch version and thread count, and the model (its config and a fingerprint of its weights).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from waveflow_py.inference.core import DEFAULT_TEMPERATURE, draw_noise
from waveflow_py.inference.synthesis import batch_mels, synthesize
from waveflow_py.sampling import resolve_sampling, sampling_of

__all__ = [
    "precision_error",
    "DtypeChoice",
    "choose_dtype",
    "resolve_dtype",
    "decide",
    "cache_dir",
    "device_name",
    "MAX_REL_RMS",
    "MIN_SPEEDUP",
    "PROBE_SECONDS",
]

logger = logging.getLogger(__name__)

ENV_CACHE = "WAVEFLOW_CACHE_DIR"
CACHE_FILE = "dtype_auto.json"
MAX_REL_RMS = 0.01  # bf16 audio within 1 % RMS of fp32 (SNR >= 40 dB); measured 0.1-0.4 % on CPUs
MIN_SPEEDUP = 1.1  # bf16 must be at least 10 % faster: timing noise never picks a slower dtype
PROBE_SECONDS = 0.5
PROBE_REPEATS = 3  # interleaved timed pairs at least; more (up to 3x) while under PROBE_BUDGET_S
PROBE_BUDGET_S = 2.0


def _error(low: Tensor, ref: Tensor) -> dict[str, float]:
    diff = (low - ref).double()
    rms_ref = float(ref.double().pow(2).mean().sqrt())
    rel = float(diff.pow(2).mean().sqrt()) / rms_ref if rms_ref > 0 else math.inf
    return {
        "max_abs": float(diff.abs().max()),
        "rms_ref": rms_ref,
        "rel_rms": rel,
        "snr_db": -20 * math.log10(rel) if rel > 0 else math.inf,
    }


@torch.no_grad()
def precision_error(
    model: nn.Module,
    mel: Tensor,
    dtype: torch.dtype = torch.bfloat16,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    generator: torch.Generator | None = None,
    cached: bool = True,
) -> dict[str, float]:
    """Synthesise ``mel`` (``(B, n_mels, F)``) in float32 and with the networks in ``dtype`` from the same
    noise; return ``max_abs`` (largest sample difference), ``rms_ref`` (RMS of the float32 audio),
    ``rel_rms`` (RMS difference / ``rms_ref``) and ``snr_db`` (``-20 log10 rel_rms``)."""
    if dtype not in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        raise ValueError(f"dtype: expected a floating dtype such as torch.bfloat16, got {dtype}")
    mel, lengths = batch_mels(mel, None)
    hop = int(model.hop_length)
    settings = resolve_sampling(sampling_of(model), temperature=temperature)
    z = draw_noise(model, lengths * hop, mel.shape[-1] * hop, settings, generator)
    ref, _ = synthesize(model, mel, z=z, cached=cached)
    low, _ = synthesize(model, mel, z=z, cached=cached, dtype=dtype)
    return _error(low, ref)


# ----------------------------------------------------------------------------- dtype="auto"
@dataclass
class DtypeChoice:
    """What ``dtype="auto"`` chose and what it measured (seconds for :data:`PROBE_SECONDS` of audio) on
    which ``machine`` (device name, threads, torch version)."""

    dtype: torch.dtype
    machine: str
    fp32_s: float | None = None  # best time
    bf16_s: float | None = None
    rel_rms: float | None = None
    cached: bool = False
    note: str = ""
    speedups: list[float] = field(default_factory=list)  # fp32 / bf16 time of each interleaved pair

    @property
    def reason(self) -> str:
        """One line: the measurement and the rule that decided."""
        if self.fp32_s is None or self.bf16_s is None:
            return self.note
        best = self.fp32_s / self.bf16_s if self.bf16_s > 0 else math.inf
        pairs = self.speedups or [best]
        err = self.rel_rms if self.rel_rms is not None else math.inf
        snr = -20 * math.log10(err) if 0 < err < math.inf else math.inf
        median = statistics.median(pairs)
        return (
            f"measured on {self.machine} for {PROBE_SECONDS:g} s of audio: fp32 {self.fp32_s:.3g} s, bf16 "
            f"{self.bf16_s:.3g} s (best of {len(pairs)}; bf16 speed-up median {median:.2f}x, "
            f"best-time ratio {best:.2f}x), bf16 audio {snr:.1f} dB SNR vs fp32 (needs "
            f"both >= {MIN_SPEEDUP:g}x and >= {-20 * math.log10(MAX_REL_RMS):.0f} dB)"
            + ("; cached" if self.cached else "")
        )


def cache_dir() -> Path:
    """Where ``dtype="auto"`` keeps its measurements (see the module docstring)."""
    if os.environ.get(ENV_CACHE, "").strip():
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "waveflow_py"


def device_name(device: torch.device) -> str:
    """The CPU model (``/proc/cpuinfo``'s model name) or the GPU name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _model_key(model: nn.Module) -> str:
    """The model's architecture (config) and a cheap fingerprint of its weights."""
    from waveflow_py.config import to_dict

    config = getattr(model, "config", None)
    arch = json.dumps(to_dict(config), sort_keys=True, default=str) if config is not None else ""
    with torch.no_grad():
        sums = [f"{float(p.detach().double().sum()):.12g}" for p in model.parameters()]
    text = f"{type(model).__name__}|{arch}|{'|'.join(sums)}"
    return f"{type(model).__name__}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _machine_key(device: torch.device) -> str:
    """E.g. ``"AMD EPYC (cpu, 2 threads, torch 2.13.0+cpu)"``: what the cache is keyed by."""
    where = f"cpu, {torch.get_num_threads()} threads" if device.type == "cpu" else str(device)
    return f"{device_name(device)} ({where}, torch {torch.__version__})"


def _probe_mel(model: nn.Module, device: torch.device) -> Tensor:
    """The model-convention mel of :data:`PROBE_SECONDS` of a harmonic tone with noise (speech-like)."""
    from waveflow_py.audio import MelSpectrogram

    cfg = model.config.mel
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(int(PROBE_SECONDS * cfg.sample_rate), dtype=torch.float64) / cfg.sample_rate
    f0 = 140.0 * (1 + 0.05 * torch.sin(2 * math.pi * 3 * t))
    phase = 2 * math.pi * torch.cumsum(f0, 0) / cfg.sample_rate
    noise = 0.01 * torch.randn(len(t), generator=gen, dtype=torch.float64)
    audio = sum(0.3 / k * torch.sin(k * phase) for k in range(1, 16)) + noise
    return MelSpectrogram(cfg)(audio.float()[None]).to(device)


def _measure(model: nn.Module, device: torch.device) -> DtypeChoice:
    mel = _probe_mel(model, device)
    hop = int(model.hop_length)
    n = mel.shape[-1] * hop
    settings = resolve_sampling(sampling_of(model), temperature=DEFAULT_TEMPERATURE)
    z = draw_noise(model, torch.tensor([n]), n, settings, torch.Generator().manual_seed(1))
    runs: dict[torch.dtype, Callable[[], Tensor]] = {
        d: (lambda d=d: synthesize(model, mel, z=z, dtype=None if d == torch.float32 else d)[0])
        for d in (torch.float32, torch.bfloat16)
    }
    audio = {d: run() for d, run in runs.items()}  # warm-up (and the audio compared)
    times: dict[torch.dtype, list[float]] = {d: [] for d in runs}
    while len(times[torch.float32]) < PROBE_REPEATS or (
        sum(map(sum, times.values())) < PROBE_BUDGET_S and len(times[torch.float32]) < 3 * PROBE_REPEATS
    ):
        for d, run in runs.items():  # interleaved pairs: a change of load hits both of a pair
            times[d].append(_timed(run, device))
    pairs = zip(times[torch.float32], times[torch.bfloat16], strict=True)
    speedups = [a / b if b > 0 else math.inf for a, b in pairs]
    err = _error(audio[torch.bfloat16], audio[torch.float32])["rel_rms"]
    best = {d: min(t) for d, t in times.items()}
    machine = _machine_key(device)
    fp32_s, bf16_s = best[torch.float32], best[torch.bfloat16]
    dtype = decide(speedups, err, fp32_s / bf16_s if bf16_s > 0 else math.inf)
    return DtypeChoice(dtype, machine, fp32_s, bf16_s, err, speedups=speedups)


def decide(speedups: list[float], rel_rms: float, best: float | None = None) -> torch.dtype:
    """The rule: bfloat16 when its speed-up is at least :data:`MIN_SPEEDUP` by both robust estimates,
    the median over the interleaved pairs and the ratio of the best times (``best``; default: the
    median), and its audio is within :data:`MAX_REL_RMS` of float32's; else float32."""
    if not speedups or not rel_rms <= MAX_REL_RMS:
        return torch.float32
    median = statistics.median(speedups)
    fast = median >= MIN_SPEEDUP and (median if best is None else best) >= MIN_SPEEDUP
    return torch.bfloat16 if fast else torch.float32


def _timed(run: Callable[[], Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, machine: str, model: str, choice: DtypeChoice) -> None:
    from waveflow_py.atomic import atomic_write_text

    data = _read_cache(path)
    entry = {k: v for k, v in asdict(choice).items() if k not in ("dtype", "cached", "machine")}
    data.setdefault(machine, {})[model] = {**entry, "dtype": str(choice.dtype).removeprefix("torch.")}
    try:
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as e:  # a read-only home: measure again next time
        logger.warning("cannot cache the dtype measurement in %s (%s)", path, e.strerror or e)


def _from_cache(entry: Any, device: torch.device) -> DtypeChoice | None:
    try:
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[entry["dtype"]]
        times = float(entry["fp32_s"]), float(entry["bf16_s"])
        speedups = [float(x) for x in entry.get("speedups", [])]
        return DtypeChoice(
            dtype, _machine_key(device), *times, float(entry["rel_rms"]), cached=True, speedups=speedups
        )
    except (KeyError, TypeError, ValueError):
        return None


@torch.no_grad()
def choose_dtype(model: nn.Module, device: torch.device | str | None = None) -> DtypeChoice:
    """The compute dtype ``"auto"`` picks for ``model`` on ``device`` (default: the model's), measured
    once and cached (see the module docstring). Devices other than CPU and CUDA get float32."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if dev.type not in ("cpu", "cuda"):
        return DtypeChoice(torch.float32, str(dev), note=f"{dev.type}: fp32 (not measured there)")
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return DtypeChoice(torch.float32, str(dev), note="this CUDA device has no bf16: fp32")
    path = cache_dir() / CACHE_FILE
    machine, key = _machine_key(dev), _model_key(model)
    cached = _from_cache(_read_cache(path).get(machine, {}).get(key), dev)
    if cached is not None:
        return cached
    logger.info("dtype auto: measuring fp32 vs bf16 once on this machine (cached in %s)", path)
    choice = _measure(model, dev)
    _write_cache(path, machine, key, choice)
    return choice


def resolve_dtype(
    requested: torch.dtype | str | None, model: nn.Module, device: torch.device | str | None = None
) -> tuple[torch.dtype | None, str, DtypeChoice | None]:
    """A compute dtype as requested (``"fp32"``, ``torch.bfloat16``, ``None``: the model's), or for
    ``"auto"`` the measured one (:func:`choose_dtype`): ``(dtype, reason, the measurement or None)``."""
    from waveflow_py.dtypes import is_auto, parse_dtype

    if not is_auto(requested):
        return parse_dtype(requested), "requested", None
    choice = choose_dtype(model, device)
    return choice.dtype, choice.reason, choice

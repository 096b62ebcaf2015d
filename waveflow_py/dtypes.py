"""Compute dtypes: the one parser of dtype names, and ``"auto"``: the fastest dtype a device really runs
faster than float32 (never a slower one).

Why per device: WaveFlow's cached inverse is matmul/conv bound. On CPUs with Intel AMX (``amx_bf16`` in
``/proc/cpuinfo``, Sapphire Rapids and later) oneDNN runs bfloat16 on the AMX tiles, faster than
float32; without AMX bfloat16 is converted around float32 kernels, which costs more than it saves. So
``auto`` is bfloat16 only with AMX (the measurements: docs/implementation-notes.md). On CUDA devices
of compute capability 8.0 and later (bf16 tensor cores) it is bfloat16, else float32. Other devices get
float32.
"""

from __future__ import annotations

import functools

import torch

__all__ = [
    "DTYPE_NAMES",
    "parse_dtype",
    "short_name",
    "auto_dtype",
    "resolve_dtype",
    "cpu_flags",
    "speed_flags",
]

DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
}  # fmt: skip

_SHORT = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``"float32"``/``"fp32"``, ``"float16"``/``"fp16"``/``"half"``, ``"bfloat16"``/``"bf16"``,
    ``"float64"`` (or a ``torch.dtype``, or ``None``) -> dtype. ``"auto"`` is not a dtype: see
    :func:`resolve_dtype`."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise ValueError(f"dtype: expected auto or one of {sorted(DTYPE_NAMES)}, got {dtype!r}")
    return DTYPE_NAMES[key]


def short_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16 -> "bf16"`` (``fp32``, ``fp16``, ``fp64``)."""
    return _SHORT.get(dtype, str(dtype).removeprefix("torch."))


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def speed_flags() -> str:
    """The CPU flags that decide fp32 vs bf16 speed (AMX, AVX-512-BF16, AVX-512F, AVX2), space-separated:
    printed beside every speed figure (``"none"`` where there is no /proc/cpuinfo)."""
    shown = sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2")))
    return " ".join(shown) or "none"


def auto_dtype(device: torch.device | str | None = None) -> tuple[torch.dtype, str]:
    """The compute dtype for ``device`` (default CPU) and why (one line)."""
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cpu":
        flags = cpu_flags()
        if "amx_bf16" in flags:
            return torch.bfloat16, "CPU has AMX (amx_bf16): bf16 runs on the AMX tiles, faster than fp32"
        extra = " (avx512_bf16 alone was not measured faster)" if "avx512_bf16" in flags else ""
        return torch.float32, f"CPU has no AMX (amx_bf16): bf16 would be slower than fp32{extra}"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return torch.float32, "CUDA not available: fp32"
        major, minor = torch.cuda.get_device_capability(dev)
        if major >= 8:
            return torch.bfloat16, f"CUDA sm_{major}{minor} has bf16 tensor cores"
        return torch.float32, f"CUDA sm_{major}{minor} has no bf16 tensor cores: fp32"
    return torch.float32, f"{dev.type}: fp32 (no low precision known to be faster there)"


def resolve_dtype(
    dtype: torch.dtype | str | None, device: torch.device | str | None = None
) -> tuple[torch.dtype | None, str]:
    """``"auto"`` -> :func:`auto_dtype` for ``device``; anything else -> :func:`parse_dtype` (reason
    ``"requested"``; ``None`` stays ``None``: the model's own dtype)."""
    if isinstance(dtype, str) and dtype.lower() == "auto":
        return auto_dtype(device)
    return parse_dtype(dtype), "requested"

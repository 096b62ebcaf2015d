"""Compute dtypes: the one parser of dtype names, and the CPU flags printed beside speed figures.

``dtype="auto"`` is not decided here: whether bfloat16 is faster than float32 depends on the machine in
ways its flags do not tell (two CPUs with ``avx512_bf16`` and no AMX measured 2.1x faster and 1.8x slower),
so it is measured on the model's own shapes: :func:`waveflow_py.inference.precision.choose_dtype`.
"""

from __future__ import annotations

import functools

import torch

__all__ = [
    "DTYPE_NAMES",
    "parse_dtype",
    "short_name",
    "is_auto",
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
    ``"float64"`` (or a ``torch.dtype``, or ``None``) -> dtype. ``"auto"`` is not a dtype: it is measured
    per model (:func:`waveflow_py.inference.precision.choose_dtype`)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise ValueError(f"dtype: expected auto or one of {sorted(DTYPE_NAMES)}, got {dtype!r}")
    return DTYPE_NAMES[key]


def is_auto(dtype: object) -> bool:
    """Whether ``dtype`` is the string ``"auto"`` (any case)."""
    return isinstance(dtype, str) and dtype.strip().lower() == "auto"


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
    """The CPU's matrix and vector flags (AMX, AVX-512-BF16, AVX-512F, AVX2), space-separated, printed
    beside every speed figure to describe the machine (``"none"`` where there is no /proc/cpuinfo). They
    decide nothing: ``dtype="auto"`` is measured."""
    shown = sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2")))
    return " ".join(shown) or "none"

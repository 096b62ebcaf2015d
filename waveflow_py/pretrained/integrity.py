"""A release's integrity: the ``SHA256SUMS`` manifest, the safetensors header, and a bounded build.

``SHA256SUMS`` lists the sha256 of ``config.json`` and ``model.safetensors`` in the format of coreutils'
``sha256sum`` (``<64 hex digits>  <file name>`` per line), so ``sha256sum -c SHA256SUMS`` checks a
release without this package. The config is checked against it before it is parsed, the weights before
they are read. A release written before manifests existed has none: its weights are still checked against the
sha256 that its ``config.json`` records, its config is not hash-checked.

Before a model is built, :func:`read_header` reads the names, dtypes and shapes of the weights from the
safetensors header (a few kB: no tensor is read) and checks that the header accounts for the whole file.
:func:`build_within` then builds the model from ``config.json`` under an allocation bound derived from
that header: a tensor larger than twice the largest weight, or more bytes in all than twice the weights
(plus a fixed margin for small buffers), is created on the ``meta`` device instead of in memory. A config
that disagrees with its weights (e.g. ``residual_channels: 200000``) therefore never allocates more than
the weights themselves, and the shape comparison names the tensors that differ.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from waveflow_py.atomic import atomic_write_text, sha256_file
from waveflow_py.nn.state import describe_mismatch
from waveflow_py.pretrained.errors import (
    CONFIG_FILE,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ReleaseChecksumError,
    ReleaseFormatError,
    ReleaseWeightsMismatchError,
)

__all__ = [
    "TensorInfo",
    "write_manifest",
    "read_manifest",
    "check_sha256",
    "read_header",
    "build_within",
]

_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S+)$")
_MANIFEST_NAMES = (CONFIG_FILE, WEIGHTS_FILE)
_MARGIN = 64 << 20  # bytes of small buffers and temporaries a build may make beyond its weights
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
_DTYPE_BYTES.update({"BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8})


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors header: its dtype name (``"F32"``, ...) and shape."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = _DTYPE_BYTES.get(self.dtype, 8)
        for d in self.shape:
            n *= d
        return n


# ----------------------------------------------------------------------------- manifest
def write_manifest(directory: str | Path, config_text: str | None = None) -> Path:
    """Write ``directory/SHA256SUMS`` for its config.json and model.safetensors (atomically);
    ``config_text``: the config.json about to be written (hashed as UTF-8) instead of the file."""
    d = Path(directory)
    digests = {
        name: sha256_file(d / name) for name in _MANIFEST_NAMES if name != CONFIG_FILE or not config_text
    }
    if config_text:
        digests[CONFIG_FILE] = hashlib.sha256(config_text.encode("utf-8")).hexdigest()
    lines = [f"{digests[name]}  {name}\n" for name in _MANIFEST_NAMES]
    atomic_write_text(d / MANIFEST_FILE, "".join(lines))
    return d / MANIFEST_FILE


def read_manifest(directory: Path) -> dict[str, str] | None:
    """``{file name: sha256}`` of ``directory/SHA256SUMS`` (``None`` when there is none: an older
    release); a malformed manifest is a :class:`ReleaseFormatError`."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise ReleaseFormatError(f"{path}: unreadable ({e})") from e
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _LINE.match(line.strip())
        if not m:
            raise ReleaseFormatError(f"{path}: line {n}: expected '<sha256>  <file name>', got {line[:80]!r}")
        sums[m.group(2)] = m.group(1)
    if sorted(sums) != sorted(_MANIFEST_NAMES):
        raise ReleaseFormatError(
            f"{path}: expected the sha256 of {list(_MANIFEST_NAMES)}, got {sorted(sums)}"
        )
    return sums


def check_sha256(path: Path, expected: str, recorded_in: str) -> None:
    """Raise :class:`ReleaseChecksumError` (naming the file and both digests) unless ``path``'s sha256 is
    ``expected``, as ``recorded_in`` (a file name) records it."""
    digest = sha256_file(path)
    if digest != expected:
        if path.name == CONFIG_FILE:
            fix = (
                "edited after the release was written: fetch it again, or after a deliberate edit re-hash it "
                f"(cd {path.parent} && sha256sum {CONFIG_FILE} {WEIGHTS_FILE} > {MANIFEST_FILE})"
            )
        else:
            fix = "corrupt or altered download: fetch the release again"
        raise ReleaseChecksumError(
            f"{path}: sha256 mismatch: {recorded_in} records {expected}, the file has {digest} ({fix})"
        )


# ----------------------------------------------------------------------------- header
def read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of a safetensors file from its header alone; :class:`ReleaseFormatError` when the
    header is unreadable or does not account for exactly the file's bytes."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > size - 8:
            raise ReleaseFormatError(
                f"{path}: cannot read safetensors (header length {n}, file {size} bytes)"
            )
        try:
            header = json.loads(f.read(n))
            tensors = {
                k: (TensorInfo(str(v["dtype"]), tuple(int(d) for d in v["shape"])), v["data_offsets"])
                for k, v in header.items()
                if k != "__metadata__"
            }
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:
            raise ReleaseFormatError(f"{path}: cannot read safetensors (unreadable header: {e})") from e
    end = max((int(off[1]) for _, off in tensors.values()), default=0)
    if 8 + n + end != size or any(t.nbytes != int(o[1]) - int(o[0]) for t, o in tensors.values()):
        raise ReleaseFormatError(
            f"{path}: cannot read safetensors (the header describes {8 + n + end} bytes, the file has {size})"
        )
    return {k: t for k, (t, _) in tensors.items()}


# ----------------------------------------------------------------------------- bounded build
class _Bounded(TorchFunctionMode):
    """Factory calls without an explicit device allocate normally while each tensor stays under
    ``each`` bytes and all of them under ``total``; beyond that they are made on ``meta``."""

    def __init__(self, each: int, total: int) -> None:
        super().__init__()
        from torch.utils._device import _device_constructors

        self.factories = _device_constructors()
        self.each, self.left, self.deferred = each, total, 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in self.factories or kwargs.get("device") is not None:
            return func(*args, **kwargs)
        probe = func(*args, **{**kwargs, "device": "meta"})
        nbytes = probe.numel() * probe.element_size()
        if nbytes <= self.each and nbytes <= self.left:
            self.left -= nbytes
            return func(*args, **kwargs)
        self.deferred += 1
        return probe


def _shapes(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, device="meta") for k, v in model.state_dict().items()}


def build_within(build: Callable[[], nn.Module], header: Mapping[str, TensorInfo], where: Path) -> nn.Module:
    """``build()`` under the allocation bound of ``header`` (see the module docstring), its names and
    shapes checked against the header; :class:`ReleaseWeightsMismatchError` (one line, naming the
    tensors) when they differ. Returns the model, in memory."""
    largest = max((t.nbytes for t in header.values()), default=0)
    total = sum(t.nbytes for t in header.values())
    guard = _Bounded(2 * largest + _MARGIN, 2 * total + _MARGIN)
    try:
        with guard:
            model = build()
    except (RuntimeError, NotImplementedError) as e:  # an op that needs values of a deferred tensor
        if not guard.deferred:
            raise
        raise ReleaseWeightsMismatchError(
            f"{where}: {CONFIG_FILE} describes a model far larger than its weights "
            f"({total / 1e6:.1f} MB, largest tensor {largest / 1e6:.1f} MB): config and weights disagree"
        ) from e
    given = {k: torch.empty(t.shape, device="meta") for k, t in header.items()}
    problem = describe_mismatch(_shapes(model), given, source="weights")
    if problem:
        raise ReleaseWeightsMismatchError(
            f"{where}: the weights do not fit the model built from {CONFIG_FILE}: {problem}"
        )
    if guard.deferred:  # the shapes fit after all (a build with large temporaries): build it for real
        model = build()
    return model

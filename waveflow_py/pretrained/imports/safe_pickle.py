"""A restricted unpickler for other projects' checkpoints: it never runs code from the file.

A pickle is a small program: every ``GLOBAL`` it names is imported and may be called (``REDUCE``), so
loading a stranger's ``.pt``/``.pdparams`` with plain ``pickle``/``torch.load(weights_only=False)`` can run
anything (``os.system``, ``builtins.eval``, ...). :class:`RestrictedUnpickler` resolves every global
itself, from a fixed table:

* tensors: torch's storage protocol (``persistent_load`` of ``('storage', FloatStorage, key, location,
  numel)``, data read as raw bytes from the zip entry ``<archive>/data/<key>`` or, for the legacy
  (pre-1.6) format, from the stream after the pickle) and ``torch._utils._rebuild_tensor(_v2)`` /
  ``_rebuild_parameter`` -> plain CPU tensors; the location (e.g. ``cuda:0``) is ignored;
* numpy arrays (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``), for
  paddle's ``.pdparams``; object arrays are refused;
* plain containers (``collections.OrderedDict``, ``set``, ``tuple``, ...);
* module classes the caller lists (e.g. ``glow.WaveGlow``, ``torch.nn.modules.conv.Conv1d``,
  ``torch.nn.utils.weight_norm.WeightNorm``) -> inert :class:`ObjectRecord` objects that only store
  their pickled ``__dict__``; :func:`module_state_dict` walks them like ``nn.Module.state_dict``.

Any other global is refused with :class:`UnsafeCheckpointError` before anything is called.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveflow_py.pretrained.imports.errors import CheckpointImportError, UnsafeCheckpointError

__all__ = ["ObjectRecord", "RestrictedUnpickler", "load_torch_file", "load_pickle_file", "module_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}  # fmt: skip


class ObjectRecord:
    """An inert stand-in for a pickled object of an allowed class: ``class_path`` and ``state`` (the
    pickled ``__dict__``) only; no method of the original class exists or runs."""

    class_path = ""
    args: tuple[Any, ...]
    state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> ObjectRecord:
        obj = object.__new__(cls)
        obj.args, obj.state = args, {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {"_state": state}

    def __repr__(self) -> str:
        return f"<record of {self.class_path}>"


class _Frozen:
    """Shared markers: a pickle may not modify them (``BUILD`` on one is refused)."""

    def __setstate__(self, state: Any) -> None:
        raise UnsafeCheckpointError(f"refusing to modify {self!r} from a pickle")


class _StorageType(_Frozen):
    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _TypeMarker(_Frozen):
    def __init__(self, name: str) -> None:
        self.name = name


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise CheckpointImportError(f"malformed tensor record: storage is a {type(storage).__name__}")
    size, stride = tuple(size), tuple(stride)
    need = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1 if all(size) else 0
    if need > storage.numel():
        raise CheckpointImportError(
            f"malformed tensor record: {size} at offset {offset} overruns its storage"
        )
    return storage.as_strided(size, stride, offset)  # a view: legacy files fill the storage afterwards


def _rebuild_parameter(data: torch.Tensor, *_: Any) -> torch.Tensor:
    return data


def _rebuild_from_type_v2(func: Callable[..., Any], new_type: Any, args: tuple, state: Any) -> Any:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise UnsafeCheckpointError(
            "refusing _rebuild_from_type_v2 with a function other than a tensor rebuild"
        )
    return func(*args)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    if isinstance(cls, type) and issubclass(cls, ObjectRecord):
        return cls.__new__(cls)
    if cls is collections.OrderedDict:
        return collections.OrderedDict()
    raise UnsafeCheckpointError(f"refusing copyreg._reconstructor of {cls!r}")


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError(f"refusing numpy _reconstruct of {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _np_dtype(dtype))


def _np_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dt = np.dtype(obj) if not isinstance(obj, str) else np.dtype(obj, align, copy)
    if dt.hasobject:
        raise UnsafeCheckpointError("refusing a numpy array of Python objects (dtype 'O')")
    return dt


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    dt = _np_dtype(dtype)
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafeCheckpointError("refusing a numpy scalar without raw bytes")
    return np.frombuffer(bytes(data), dtype=dt, count=1)[0]


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, 'latin1')``: only that is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("refusing _codecs.encode other than str -> latin1 bytes")
    return text.encode("latin1")


_SAFE: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("__builtin__", "object"): object,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TypeMarker("torch.Tensor"),
    ("torch.nn.parameter", "Parameter"): _TypeMarker("torch.nn.Parameter"),
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
    **{(m, "_reconstruct"): _np_reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _np_scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _np_dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle with every global looked up in a fixed table; ``records``: class paths
    (``"module.Class"``) to rebuild as inert :class:`ObjectRecord` objects. ``storage``: called with
    ``(key, dtype, numel)`` for each tensor storage, returns a flat tensor (``None``: no tensors)."""

    def __init__(
        self,
        file: Any,
        *,
        records: Iterable[str] = (),
        storage: Callable[[str, torch.dtype, int], torch.Tensor] | None = None,
        what: str = "checkpoint",
    ) -> None:
        super().__init__(file)
        self._records = {path: type(path, (ObjectRecord,), {"class_path": path}) for path in records}
        self._storage = storage
        self._what = what
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        path = f"{module}.{name}"
        if path in self._records:
            return self._records[path]
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        raise UnsafeCheckpointError(
            f"{self._what}: refusing to load: the pickle references {path}, which is not a tensor, array, "
            "plain container or known module class (a pickle can run code; nothing from it was run)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointImportError(f"{self._what}: malformed persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and len(pid) >= 2:  # legacy format: (module, class, source file, source)
            return pid[1]
        if kind != "storage" or self._storage is None or len(pid) < 5:
            raise CheckpointImportError(f"{self._what}: unexpected persistent id {kind!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointImportError(f"{self._what}: unsupported storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = self._storage(key, storage_type.dtype, numel)
        flat = self._storages[key]
        view = pid[5] if len(pid) > 5 else None
        if view:  # legacy: (view key, offset, size)
            _, offset, size = view
            return flat[int(offset) : int(offset) + int(size)]
        return flat


def _unpickle(data: bytes | io.BufferedIOBase, what: str, records: Iterable[str], storage: Any) -> Any:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return RestrictedUnpickler(stream, records=records, storage=storage, what=what).load()
    except (UnsafeCheckpointError, CheckpointImportError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
        RuntimeError,
    ) as e:
        raise CheckpointImportError(f"{what}: truncated or corrupt pickle ({type(e).__name__}: {e})") from e


def load_torch_file(path: str | Path, records: Iterable[str] = ()) -> Any:
    """Read a ``torch.save`` file (zip or legacy format) with :class:`RestrictedUnpickler`: tensors come
    back on the CPU; module objects of the listed classes as :class:`ObjectRecord`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        return _load_zip(path, tuple(records))
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise CheckpointImportError(f"{path}: truncated or corrupt zip checkpoint (no central directory)")
    return _load_legacy(path, tuple(records))


def _load_zip(path: Path, records: tuple[str, ...]) -> Any:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if not pkl:
                kind = "a TorchScript archive" if any(n.endswith("constants.pkl") for n in names) else "a zip"
                raise CheckpointImportError(f"{path}: {kind} without data.pkl, not a torch.save checkpoint")
            prefix = pkl[0][: -len("data.pkl")]
            order = zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
            if order != "little":
                raise CheckpointImportError(f"{path}: big-endian checkpoints are not supported")

            def storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
                name = f"{prefix}data/{key}"
                if name not in names:
                    raise CheckpointImportError(f"{path}: tensor data {name} is missing (truncated file?)")
                raw = bytearray(zf.read(name))
                nbytes = numel * torch.empty((), dtype=dtype).element_size()
                if len(raw) < nbytes:
                    raise CheckpointImportError(f"{path}: tensor data {name} is truncated")
                return (
                    torch.frombuffer(raw, dtype=dtype, count=numel) if numel else torch.empty(0, dtype=dtype)
                )

            return _unpickle(zf.read(pkl[0]), str(path), records, storage)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise CheckpointImportError(f"{path}: truncated or corrupt zip checkpoint ({e})") from e


def _load_legacy(path: Path, records: tuple[str, ...]) -> Any:
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if len(head) < 2 or head[0] != 0x80:
            raise CheckpointImportError(f"{path}: not a torch checkpoint (neither a zip nor a pickle)")
        what = str(path)
        if _unpickle(f, what, (), None) != _LEGACY_MAGIC:
            raise CheckpointImportError(f"{path}: a pickle, but not a torch.save file (no magic number)")
        if _unpickle(f, what, (), None) != _LEGACY_PROTOCOL:
            raise CheckpointImportError(f"{path}: unknown legacy torch protocol version")
        _unpickle(f, what, (), None)  # sys info
        storages: dict[str, torch.Tensor] = {}

        def storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
            storages[key] = torch.empty(numel, dtype=dtype)
            return storages[key]

        result = _unpickle(f, what, records, storage)
        keys = _unpickle(f, what, (), None)
        if not isinstance(keys, list):
            raise CheckpointImportError(f"{path}: malformed storage key list")
        for key in keys:
            flat = storages.get(str(key))
            if flat is None:
                raise CheckpointImportError(f"{path}: storage {key!r} is listed but never used")
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointImportError(f"{path}: truncated (storage {key!r} is missing)")
            numel = struct.unpack("<q", head)[0]
            nbytes = numel * flat.element_size()
            raw = f.read(nbytes)
            if numel != flat.numel() or len(raw) < nbytes:
                raise CheckpointImportError(f"{path}: truncated or corrupt storage {key!r}")
            if numel:
                flat.view(torch.uint8).copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    return result


def load_pickle_file(path: str | Path) -> Any:
    """Read a plain pickle of containers and numpy arrays (paddle's ``.pdparams``) restrictively."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head == b"PK":
            raise CheckpointImportError(
                f"{path}: a zip archive (a torch checkpoint?), not a paddle .pdparams pickle"
            )
        if head[:1] != b"\x80":
            raise CheckpointImportError(f"{path}: not a pickle file, so not a paddle .pdparams pickle")
        return _unpickle(f, str(path), (), None)


def module_state_dict(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """``nn.Module.state_dict()`` of a tree of :class:`ObjectRecord` (``_parameters``, ``_buffers`` and
    ``_modules`` of every record, names joined by dots); a plain mapping of tensors is returned as is."""
    if not isinstance(obj, ObjectRecord):
        raise CheckpointImportError(f"expected a pickled module, got {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    state = obj.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}."))
    return out

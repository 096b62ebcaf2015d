"""Training checkpoints: one directory per step, written atomically, no pickles.

Layout of ``<run>/checkpoints/step_00001000/``::

    model.safetensors      model weights
    ema.safetensors        EMA weights (only when EMA is on)
    optimizer.safetensors  optimizer tensors (``state.<param index>.<name>``)
    state.json             plain state: step, optimizer param groups, GradScaler, RNG states of every rank
                           (python, numpy, torch CPU/CUDA as byte lists), data sampler position, metrics
    config.yaml            the full experiment config (the model part is checked on resume)

The directory is written under a temporary name, every file and the directory are fsynced, then it is
moved into place with ``os.replace``; ``<run>/checkpoints/latest`` (a one-line text file, also replaced
atomically) names the newest one. Only the last ``keep_last_k`` step directories are kept.

``state.json`` also records the size and sha256 of every other file (``files``). On resume,
:func:`resolve_checkpoint` verifies a checkpoint (sizes, hashes, safetensors headers, JSON/YAML) before
it is used: given a run directory it falls back to the newest intact checkpoint, with a warning naming
each damaged one; given one step directory, a damaged one is a :class:`CheckpointCorrupt` error.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from waveflow_py.atomic import atomic_write_text, fsync_path, sha256_file
from waveflow_py.config import MODEL_CONFIGS, from_dict, nest_model_section, to_dict
from waveflow_py.nn.state import describe_mismatch

__all__ = [
    "CheckpointCorrupt",
    "CheckpointMismatch",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_config",
    "resolve_checkpoint",
    "find_checkpoint",
    "verify_checkpoint",
    "load_model_weights",
    "capture_rng",
    "restore_rng",
    "optimizer_to_files",
    "optimizer_from_files",
]

logger = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointMismatch(ValueError):
    """A checkpoint does not fit the model or config it is loaded into (names the tensor or key)."""


class CheckpointCorrupt(ValueError):
    """A checkpoint directory is damaged (truncated, altered or unreadable files); names the problem."""


# ----------------------------------------------------------------------------- RNG state
def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch (CPU and every CUDA device) RNG states as JSON-safe data."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda])


# ----------------------------------------------------------------------------- optimizer state
def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
    """Split an optimizer state dict into tensors (for safetensors) and plain param groups (for JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    for pid, pstate in sd["state"].items():
        for name, value in pstate.items():
            t = value if isinstance(value, Tensor) else torch.tensor(value)
            tensors[f"state.{pid}.{name}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def optimizer_from_files(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, Tensor], groups: list[dict[str, Any]]
) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in groups]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ----------------------------------------------------------------------------- model weights
def _plain_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def load_model_weights(module: nn.Module, tensors: Mapping[str, Tensor], what: str = "model") -> None:
    """Strict load that names every missing/unexpected tensor and every shape mismatch."""
    problem = describe_mismatch(module.state_dict(), tensors, source="checkpoint", limit=5)
    if problem:
        raise CheckpointMismatch(f"{what} weights do not fit: {problem}")
    module.load_state_dict(dict(tensors), strict=True)


def step_dirs(ckpt_root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoint directories under ``ckpt_root``, oldest first."""
    if not ckpt_root.is_dir():
        return []
    out = []
    for p in ckpt_root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def save_checkpoint(
    ckpt_root: str | Path,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: Mapping[str, Any],
    state: Mapping[str, Any],
    ema: Mapping[str, Tensor] | None = None,
    keep_last_k: int = 3,
    damaged: Sequence[Path] = (),
) -> Path:
    """Write ``step_<step>/`` atomically, update ``latest`` and prune to ``keep_last_k``. Returns the dir.

    ``damaged``: checkpoints found damaged when the run resumed (:func:`find_checkpoint`); they are
    removed first, so that pruning never drops an intact checkpoint to keep a damaged, newer-numbered one.
    """
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    for stale in root.glob(".step_*.tmp-*"):  # left by a writer that crashed (only rank 0 writes)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        _write_step(tmp, step, model=model, optimizer=optimizer, config=config, state=state, ema=ema)
    except BaseException:  # Ctrl-C or SIGTERM mid-write: no half-written directory is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for d in damaged:  # before the move: the new checkpoint may take a damaged one's name
        if d.parent == root and _STEP_DIR.match(d.name) and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            logger.warning("removed the damaged checkpoint %s (resumed from an earlier one)", d)
    _move_into_place(tmp, final, root)
    for _, old_dir in step_dirs(root)[:-keep_last_k]:
        shutil.rmtree(old_dir, ignore_errors=True)
        logger.debug("removed old checkpoint %s", old_dir)
    return final


def _write_step(
    tmp: Path,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: Mapping[str, Any],
    state: Mapping[str, Any],
    ema: Mapping[str, Tensor] | None,
) -> None:
    opt_tensors, groups = optimizer_to_files(optimizer)
    save_file(_plain_state(model), str(tmp / "model.safetensors"))
    if ema is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    files = {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(tmp.iterdir())}
    full_state = {"format_version": 1, "step": step, "optimizer_param_groups": groups, **state}
    full_state["files"] = files
    (tmp / "state.json").write_text(json.dumps(full_state), encoding="utf-8")
    for f in tmp.iterdir():
        fsync_path(f)
    fsync_path(tmp)


def _move_into_place(tmp: Path, final: Path, root: Path) -> None:
    if final.exists():  # re-saving the same step (e.g. after a resume): move the old one out of the way
        old = root / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    fsync_path(root)
    atomic_write_text(root / "latest", final.name + "\n")


def _safetensors_problem(path: Path) -> str | None:
    """Structural check of a safetensors file without reading its tensors: the header parses and the
    file is exactly as long as the header says (catches truncation and appended junk)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name}: truncated ({size} bytes)"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"{path.name}: header length {n} exceeds the file ({size} bytes)"
        try:
            header = json.loads(f.read(n))
            ends = (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__")
            end = max(ends, default=0)
        except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError):
            return f"{path.name}: unreadable safetensors header"
    if 8 + n + end != size:
        return f"{path.name}: {size} bytes but its header describes {8 + n + end}"
    return None


def verify_checkpoint(step_dir: str | Path) -> str | None:
    """``None`` if ``step_dir`` is an intact checkpoint, else a one-line description of what is wrong.

    Checks that state.json and config.yaml parse, the weight files exist and are well-formed
    safetensors, and, for checkpoints that record them (``state["files"]``), every file's size and
    sha256. Reads each file once; loads no tensors.
    """
    d = Path(step_dir)
    try:
        state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            return "state.json: no step recorded"
        yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        return f"{Path(str(e.filename)).name}: missing"
    except (OSError, ValueError, yaml.YAMLError) as e:
        return f"unreadable state.json/config.yaml ({type(e).__name__}: {str(e).splitlines()[0]})"
    recorded: dict[str, Any] = state.get("files") or {}
    needed = {"model.safetensors", "optimizer.safetensors", *recorded}
    for name in sorted(needed):
        f = d / name
        if not f.is_file():
            return f"{name}: missing"
        want = recorded.get(name)
        if want is not None:
            if f.stat().st_size != want["bytes"]:
                return f"{name}: {f.stat().st_size} bytes, {want['bytes']} recorded"
            if sha256_file(f) != want["sha256"]:
                return f"{name}: sha256 differs from the one recorded (the file was altered or damaged)"
        if name.endswith(".safetensors"):
            problem = _safetensors_problem(f)
            if problem:
                return problem
    return None


def _candidates(p: Path) -> tuple[Path, list[Path]] | None:
    """For a run or ``checkpoints`` directory: (its checkpoints root, step directories newest first,
    the one ``latest`` names leading)."""
    for root in (p, p / "checkpoints"):
        dirs = [d for _, d in reversed(step_dirs(root))]
        latest = root / "latest"
        if latest.is_file():
            named = root / latest.read_text(encoding="utf-8").strip()
            if (named / "state.json").is_file():
                dirs = [named] + [d for d in dirs if d != named]
        if dirs:
            return root, dirs
    return None


def resolve_checkpoint(path: str | Path, verify: bool = True) -> Path:
    """A step directory from: a step directory, a ``checkpoints`` directory, or a run directory.

    With ``verify`` (the default) the checkpoint is checked with :func:`verify_checkpoint`. For a run
    or ``checkpoints`` directory the newest intact one is returned, with a warning naming each damaged
    newer one; :class:`CheckpointCorrupt` if none is intact, or if ``path`` is itself a damaged step
    directory (a checkpoint named explicitly is never swapped for another).
    """
    return find_checkpoint(path, verify)[0]


def find_checkpoint(path: str | Path, verify: bool = True) -> tuple[Path, list[Path]]:
    """:func:`resolve_checkpoint`, and the damaged newer checkpoints it skipped (to be pruned first)."""
    p = Path(path)
    if (p / "state.json").is_file():
        problem = verify_checkpoint(p) if verify else None
        if problem:
            intact = _candidates(p.parent)
            hint = ""
            if intact is not None:
                ok = next((d for d in intact[1] if d != p and verify_checkpoint(d) is None), None)
                hint = f"; the newest intact one is {ok}" if ok is not None else ""
            raise CheckpointCorrupt(f"checkpoint {p} is damaged: {problem}{hint}")
        return p, []
    found = _candidates(p)
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint found at {p} (expected a step_* directory, or a run directory)"
        )
    root, dirs = found
    if not verify:
        return dirs[0], []
    damaged: list[Path] = []
    for d in dirs:
        problem = verify_checkpoint(d)
        if problem is None:
            if damaged:
                logger.warning("resuming from %s, the newest intact checkpoint", d)
            return d, damaged
        damaged.append(d)
        logger.warning("checkpoint %s is damaged, skipped: %s", d, problem)
    raise CheckpointCorrupt(
        f"no intact checkpoint in {root}: " + "; ".join(f"{d.name} ({verify_checkpoint(d)})" for d in damaged)
    )


def read_checkpoint_config(step_dir: str | Path) -> dict[str, Any]:
    """The experiment config (plain data) saved in a checkpoint's step directory, its ``model`` in
    today's layout (a run saved before the ``source_filter`` block resumes against today's config)."""
    path = Path(step_dir) / "config.yaml"
    return nest_model_section(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))


def load_checkpoint(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read a checkpoint directory into plain data: ``model``, ``optimizer`` and (maybe) ``ema`` tensors,
    ``state`` (JSON) and ``config`` (dict). Nothing is unpickled. ``path`` is resolved (and verified,
    falling back to an older intact checkpoint of a run) by :func:`resolve_checkpoint`; a file that
    still cannot be read is a :class:`CheckpointCorrupt` error naming it. ``verify=False`` skips the
    hashing, for a step directory that :func:`resolve_checkpoint` has just verified."""
    from safetensors import SafetensorError

    d = resolve_checkpoint(path, verify=verify)
    try:
        out: dict[str, Any] = {
            "path": d,
            "model": load_file(str(d / "model.safetensors")),
            "optimizer": load_file(str(d / "optimizer.safetensors")),
            "state": json.loads((d / "state.json").read_text(encoding="utf-8")),
            "config": read_checkpoint_config(d),
        }
        if (d / "ema.safetensors").is_file():
            out["ema"] = load_file(str(d / "ema.safetensors"))
    except (SafetensorError, OSError, ValueError, yaml.YAMLError) as e:
        raise CheckpointCorrupt(f"checkpoint {d} cannot be read: {type(e).__name__}: {e}") from e
    return out


def model_with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with its ``model`` read as today's typed model config and written back, so
    keys a later version added (with defaults that keep the old behaviour: ``source: none``,
    ``pitch_lag: highest``, ...) compare equal to a config that states them; a ``model`` that does not
    parse is returned as is and the comparison names the difference."""
    out = dict(config)
    cls = MODEL_CONFIGS.get(out.get("model_type", "waveflow"))
    if cls is not None and isinstance(out.get("model"), Mapping):
        try:
            out["model"] = to_dict(from_dict(cls, out["model"], "checkpoint model"))
        except (TypeError, ValueError):
            pass
    return out


def check_config_matches(saved: Mapping[str, Any], current: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Raise :class:`CheckpointMismatch` naming each differing entry of ``keys`` (dotted paths); the
    saved ``model`` is compared with the defaults of keys added since filled in
    (:func:`model_with_defaults`)."""
    saved = model_with_defaults(saved)
    diffs: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
        elif a != b:
            diffs.append(f"{where}: checkpoint {a!r} vs config {b!r}")

    for key in keys:
        walk(saved.get(key), current.get(key), key)
    if diffs:
        raise CheckpointMismatch("checkpoint was trained with a different config: " + "; ".join(diffs[:8]))

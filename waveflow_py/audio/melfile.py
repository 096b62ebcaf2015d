"""Mel files that carry their settings, so a mel is never reinterpreted with other ones.

=========  =====================================================================================
suffix     what is stored
=========  =====================================================================================
``.npy``   a float32 ``(n_mels, F)`` array; its settings in ``mel_config.json`` in the same folder
``.pt``    ``{"mel": float32 tensor (n_mels, F), "mel_config": {...}}`` (``torch.load(weights_only=True)``)
``.npz``   arrays ``mel`` and ``mel_config`` (the settings as JSON text, a 0-d string array)
=========  =====================================================================================

The settings are a :class:`~waveflow_py.config.MelConfig` as plain data (``to_dict``): the features
(rate, hop, FFT, bands, power, padding) and their encoding (log base, clamp, mean/std), i.e. the model
convention of that config. :func:`save_mel` writes them (``waveflow mel``); :func:`load_mel` reads them
(``waveflow vocode``), and :func:`mel_for_model` turns a loaded file into the model's convention: exactly
when only the encoding differs, refused with both settings named when the features differ (see
:func:`waveflow_py.audio.conventions.carried_to_model`). A file without settings (a ``.npy`` from another
front end, a plain tensor) is a *bare* mel: its convention must be stated (``mel_format``).
Untrusted files are read without pickle; integer arrays are refused (a log mel is never an integer).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from waveflow_py.atomic import atomic_write, atomic_write_text
from waveflow_py.audio.conventions import describe_mel
from waveflow_py.config import MelConfig, from_dict, to_dict

__all__ = [
    "MEL_EXTENSIONS",
    "SETTINGS_FILE",
    "MelFile",
    "save_mel",
    "load_mel",
    "read_settings",
    "write_settings",
    "mel_for_model",
]

MEL_EXTENSIONS: tuple[str, ...] = (".npy", ".pt", ".npz")
SETTINGS_FILE = "mel_config.json"


@dataclass
class MelFile:
    """A mel read from a file: ``mel`` float32 ``(n_mels, F)``, and its ``config`` when the file carries
    one (``None``: a bare mel), with ``source`` saying where the settings came from."""

    path: Path
    mel: Tensor
    config: MelConfig | None
    source: str = ""


class _Unusable(ValueError):
    """A file that was read but holds no usable mel (the message says why); other read errors mean a
    corrupt file."""


# ----------------------------------------------------------------------------- settings
def _config_from(data: Any, where: str) -> MelConfig:
    if not isinstance(data, dict):
        raise _Unusable(f"{where}: expected mel settings (a JSON object), got {type(data).__name__}")
    try:
        return from_dict(MelConfig, data, path="mel_config")
    except (TypeError, ValueError) as e:
        raise _Unusable(f"{where}: not valid mel settings ({e})") from None


def read_settings(directory: str | os.PathLike[str]) -> MelConfig | None:
    """The settings in ``directory/mel_config.json`` (``None`` when there is none); a file that is not
    valid mel settings is a ``ValueError`` naming it."""
    path = Path(directory) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _Unusable(f"{path}: unreadable mel settings ({e})") from None
    return _config_from(data, str(path))


def write_settings(directory: str | os.PathLike[str], cfg: MelConfig, *, replace: bool = False) -> Path:
    """Write ``directory/mel_config.json``; refuses to replace one that holds other settings (the mels
    already beside it would be misread); ``replace``: write over whatever is there."""
    path = Path(directory) / SETTINGS_FILE
    old = read_settings(directory) if path.is_file() and not replace else None
    if old is not None and old != cfg:
        raise ValueError(
            f"{path} holds other mel settings ({describe_mel(old)}) than these ({describe_mel(cfg)}): the "
            "mels beside it would be misread; write to another folder"
        )
    if old is None:
        atomic_write_text(path, json.dumps(to_dict(cfg), indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- write
def save_mel(path: str | os.PathLike[str], mel: Tensor, cfg: MelConfig) -> Path:
    """Write ``mel`` (``(n_mels, F)``) with its settings ``cfg`` (see the module docstring), atomically."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in MEL_EXTENSIONS:
        raise ValueError(f"{path}: expected a {', '.join(MEL_EXTENSIONS)} file name")
    data = mel.detach().to("cpu", torch.float32).contiguous()
    if kind == ".npy":
        path.parent.mkdir(parents=True, exist_ok=True)
        write_settings(path.parent, cfg)
        atomic_write(path, lambda tmp: np.save(tmp, data.numpy(), allow_pickle=False))
    elif kind == ".pt":
        payload = {"mel": data.clone(), "mel_config": to_dict(cfg)}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    else:
        text = np.array(json.dumps(to_dict(cfg)))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
                np.savez(f, mel=data.numpy(), mel_config=text)

        atomic_write(path, write)
    return path


# ----------------------------------------------------------------------------- read
def _float_tensor(obj: Any, what: str) -> Tensor:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind != "f":
            raise _Unusable(
                f"expected a float mel array, got dtype {obj.dtype}: an integer or text array is not a log "
                "mel (a log mel has fractional and negative values)"
            )
        return torch.from_numpy(obj.astype(np.float32, copy=False))
    if not isinstance(obj, Tensor):
        raise _Unusable(f"expected a tensor (or a dict with a 'mel' tensor) in the {what} file")
    if not obj.is_floating_point():
        raise _Unusable(
            f"expected a float mel tensor, got dtype {obj.dtype}: an integer, boolean or complex tensor is "
            "not a log mel"
        )
    return obj.float()


def _read_pt(path: Path) -> tuple[Tensor, MelConfig | None]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        settings = obj.get("mel_config")
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        mel = tensors.get("mel", next(iter(tensors.values())) if len(tensors) == 1 else None)
        cfg = None if settings is None else _config_from(settings, f"{path} (mel_config)")
        return _float_tensor(mel, ".pt"), cfg
    return _float_tensor(obj, ".pt"), None


def _read_npz(path: Path) -> tuple[Tensor, MelConfig | None]:
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if "mel" not in names and len([n for n in names if n != "mel_config"]) != 1:
            raise _Unusable(f"expected an array named 'mel' in the .npz file, found {names}")
        mel = npz["mel"] if "mel" in names else npz[next(n for n in names if n != "mel_config")]
        settings = str(npz["mel_config"][()]) if "mel_config" in names else None
    cfg = None if settings is None else _config_from(json.loads(settings), f"{path} (mel_config)")
    return _float_tensor(mel, ".npz"), cfg


def load_mel(path: str | os.PathLike[str]) -> MelFile:
    """Read a mel file (``.npy``, ``.pt``, ``.npz``) and the settings it carries; a ``ValueError`` naming
    the problem for a corrupt file, a non-float array or a shape other than ``(n_mels, F)`` /
    ``(1, n_mels, F)``."""
    path = Path(path)
    kind = path.suffix.lower()
    try:
        if kind == ".npy":
            mel, cfg = _float_tensor(np.load(path, allow_pickle=False), ".npy"), None
        elif kind == ".pt":
            mel, cfg = _read_pt(path)
        elif kind == ".npz":
            mel, cfg = _read_npz(path)
        else:
            raise _Unusable(f"expected a mel file ({', '.join(MEL_EXTENSIONS)}), got {kind or 'no suffix'!r}")
    except _Unusable:
        raise
    except Exception as e:  # an untrusted file: numpy/pickle/zip readers raise many types, all "bad file"
        raise _corrupt(kind, e) from e
    source = "inside the file" if cfg is not None else ""
    if kind == ".npy":
        cfg = read_settings(path.parent)
        source = f"{SETTINGS_FILE} beside it" if cfg is not None else ""
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise ValueError(f"expected a mel of shape (n_mels, frames), got {tuple(mel.shape)}")
    return MelFile(path, mel, cfg, source)


def _corrupt(kind: str, e: Exception) -> ValueError:
    first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]
    return ValueError(
        f"cannot read the {kind} file, it is corrupt or not a mel ({type(e).__name__}: {first})"
    )


# ----------------------------------------------------------------------------- to the model
def mel_for_model(
    melfile: MelFile,
    model: MelConfig,
    mel_format: str | None = None,
    *,
    approximate: bool = False,
    **fmt_params: Any,
) -> Tensor:
    """``melfile``'s mel in ``model``'s convention, ``(1, n_mels, F)`` float32.

    A file that carries settings is converted from them (exact when only the encoding differs; features
    that differ raise :class:`~waveflow_py.audio.conventions.MelSettingsError` unless ``approximate``);
    a stated ``mel_format`` or format parameters that contradict the carried settings are refused. A bare
    mel is converted from ``mel_format`` (default ``"ln"``) with ``fmt_params``, as
    :func:`~waveflow_py.audio.conventions.to_model_mel` does.
    """
    from waveflow_py.audio.conventions import carried_to_model, resolve_format, to_model_mel

    cfg = melfile.config
    if cfg is None:
        return to_model_mel(melfile.mel, mel_format or "ln", model, approximate=approximate, **fmt_params)
    stated = None if mel_format is None else resolve_format(mel_format)
    given = sorted(fmt_params) + (
        [f"mel_format={mel_format!r}"] if stated not in (None, "model", cfg.log) else []
    )
    if given:
        raise ValueError(
            f"the file carries its mel settings ({melfile.source}: {describe_mel(cfg)}), which "
            f"{', '.join(given)} would contradict: drop those options for this file"
        )
    return carried_to_model(melfile.mel, cfg, model, approximate=approximate)

"""Audio file I/O with soundfile (wav, flac, ogg, ...), resampling with soxr (librosa fallback).

Every problem with an input file is an :class:`AudioError` (a ``ValueError``) whose message names
the file and what is wrong: missing, not audio / corrupt, truncated, empty, silent, non-finite
samples, or a sample rate other than the one required.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from waveflow_py.atomic import atomic_write

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "audio_software",
    "find_audio_files",
    "list_audio_files",
    "load_audio",
    "resample_audio",
    "save_audio",
]

logger = logging.getLogger(__name__)

#: File suffixes treated as audio when a directory is searched (:func:`find_audio_files`).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".w64", ".mp3")


class AudioError(ValueError):
    """An audio file or signal that cannot be used; the message names the file and the problem.

    ``option``: the :func:`load_audio` keyword that would accept it (``"resample"``, ``"allow_silent"``),
    so a command line can name its own flag instead (``problem`` is the message without the hint).
    """

    def __init__(self, problem: str, *, option: str | None = None, hint: str = "") -> None:
        super().__init__(f"{problem}; {hint}" if hint else problem)
        self.problem, self.option = problem, option

    def with_hint(self, hints: dict[str, str]) -> str:
        """The message with the hint a command line gives for :attr:`option` (e.g. ``"--resample"``)."""
        if self.option in hints:
            return f"{self.problem}; {hints[self.option]}"
        return str(self)


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(T,)`` or ``(T, C)`` float audio from ``orig_sr`` to ``target_sr`` Hz.

    Uses soxr (high quality) when installed, else ``librosa.resample``. Returns float32.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio
    import soxr  # a core dependency

    return np.asarray(soxr.resample(audio, orig_sr, target_sr, quality="HQ"), dtype=np.float32)


def _wav_truncation(path: Path) -> str | None:
    """For RIFF/WAVE files: a message when the ``data`` chunk is shorter than its header says.

    libsndfile reads such files without complaint (it returns what is there), which hides a cut
    download or an interrupted copy. Unknown-length headers (0 or 0xFFFFFFFF, streaming writers)
    are accepted.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                available = size - pos - 8
                if available < chunk_size:
                    return (
                        f"truncated: the WAV header declares {chunk_size} bytes of audio but the file "
                        f"holds {available}"
                    )
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _read(path: Path) -> tuple[np.ndarray, int]:
    """``(T, C)`` float32 samples and the rate; soundfile errors become :class:`AudioError`."""
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file (a FIFO, device or socket), expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        with path.open("rb") as f:  # a file object: any file name, also one that is not valid UTF-8
            data, sr = sf.read(f, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(
            f"{path}: cannot decode audio, the file is corrupt, truncated or not audio ({e})"
        ) from e
    problem = _wav_truncation(path)
    if problem:
        raise AudioError(f"{path}: {problem}")
    return data, int(sr)


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    resample: bool = False,
    mono: bool = True,
    peak_normalize: bool = False,
    allow_silent: bool = False,
) -> tuple[Tensor, int]:
    """Read an audio file as float32 samples in [-1, 1].

    Args:
        path: any format libsndfile reads (wav, flac, ogg/vorbis, aiff, ...).
        sample_rate: the rate the caller needs; ``None`` keeps the file's rate.
        resample: resample to ``sample_rate`` when the file differs (else that is an error).
        mono: average the channels (``(T,)`` result; a multi-channel file logs one warning naming
            it); ``False`` returns ``(C, T)``.
        peak_normalize: scale so that the largest absolute sample is 0.95 (0.95 leaves headroom).
        allow_silent: accept an all-zero signal (by default it is an error: silence usually means a
            broken export, and its log-mel is a constant).

    Returns:
        ``(audio, sr)``: a float32 tensor ``(T,)`` (``(C, T)`` if ``mono=False``) and its rate.

    Raises:
        AudioError: missing/empty/corrupt/truncated file, no samples, NaN/inf samples, silence, or a
            different rate than ``sample_rate`` with ``resample=False``.
    """
    path = Path(path)
    data, sr = _read(path)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples (0 frames)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} sample(s) are NaN or infinite")
    if mono and data.shape[1] > 1:
        logger.warning("%s: %d channels averaged to mono", path, data.shape[1])
        data = data.mean(axis=1, keepdims=True)
    if sample_rate is not None and sr != sample_rate:
        if not resample:
            raise AudioError(
                f"{path}: sample rate is {sr} Hz but {sample_rate} Hz is required",
                option="resample",
                hint="pass resample=True to convert it",
            )
        logger.debug("resampling %s from %d to %d Hz", path, sr, sample_rate)
        data = resample_audio(data, sr, sample_rate)
        sr = sample_rate
    peak = float(np.abs(data).max())
    if peak == 0.0 and not allow_silent:
        raise AudioError(
            f"{path}: the audio is silent (all samples are zero)",
            option="allow_silent",
            hint="pass allow_silent=True to accept it",
        )
    if peak_normalize and peak > 0.0:
        data = data * (0.95 / peak)
    out = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))
    return (out[0] if mono else out), sr


def save_audio(
    path: str | os.PathLike[str],
    audio: Tensor | np.ndarray,
    sample_rate: int,
    *,
    subtype: str | None = None,
    software: str | None = None,
) -> Path:
    """Write ``(T,)`` or ``(C, T)`` float audio atomically (temp file in the same folder, then rename).

    The format follows the suffix (``.wav``, ``.flac``, ``.ogg``, ...); ``subtype`` defaults to
    soundfile's default for the format (16-bit PCM for wav and flac). Samples outside [-1, 1] are
    clipped (with a warning) for integer subtypes. ``software`` is stored in the file's metadata
    (read back by :func:`audio_software`), e.g. the command that wrote it.
    """
    path = Path(path)
    if isinstance(audio, Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(audio)
    if data.ndim not in (1, 2) or data.size == 0:
        raise ValueError(f"save_audio: expected non-empty audio of shape (T,) or (C, T), got {data.shape}")
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"save_audio: expected float samples in [-1, 1], got dtype {data.dtype}")
    if not np.isfinite(data).all():
        raise ValueError(f"save_audio: {path}: audio contains NaN or infinite samples")
    if int(sample_rate) <= 0:
        raise ValueError(f"save_audio: expected a positive sample rate, got {sample_rate}")
    data = data.astype(np.float32).T  # soundfile wants (T, C)
    fmt = sf.default_subtype(path.suffix.lstrip(".").upper()) if path.suffix else None
    if fmt is None:
        raise ValueError(f"save_audio: {path}: unknown audio format {path.suffix!r} (use .wav/.flac/.ogg)")
    chosen = subtype or fmt
    if "FLOAT" not in chosen and "DOUBLE" not in chosen and np.abs(data).max() > 1.0:
        logger.warning("%s: %d samples outside [-1, 1] are clipped", path, int((np.abs(data) > 1).sum()))
        data = np.clip(data, -1.0, 1.0)

    def write(tmp: Path) -> None:
        channels = 1 if data.ndim == 1 else data.shape[1]
        with sf.SoundFile(tmp, "w", int(sample_rate), channels, subtype=subtype) as f:
            if software:
                f.software = software
            f.write(data)

    atomic_write(path, write)
    return path


def audio_software(path: str | os.PathLike[str]) -> str | None:
    """The ``software`` metadata of an audio file (see :func:`save_audio`); ``None`` if it has none or
    is not a readable audio file."""
    try:
        with open(path, "rb") as raw, sf.SoundFile(raw) as f:
            return f.software or None
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return None


def list_audio_files(
    directory: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[Path]:
    """Files under ``directory`` (recursively, sorted) whose lower-cased suffix is in ``extensions``."""
    suffixes = tuple(extensions)
    return sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def find_audio_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files and directories -> audio files: a directory is searched recursively (sorted) for
    :data:`AUDIO_EXTENSIONS`; a named file is kept whatever its suffix (so its error is reported)."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(list_audio_files(p))
        else:
            found.append(p)
    return found

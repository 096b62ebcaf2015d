"""Which reference clips to evaluate: a ``metadata.csv`` (``path,split,...``) or a folder of audio files.

* ``metadata.csv`` (a file, or a directory that holds one): rows whose ``split`` column equals
  ``split`` (all rows when ``split`` is None); ``path`` is relative to the CSV's directory.
* A directory without ``metadata.csv``: every audio file below it (sorted), or below ``DIR/split``
  when ``split`` is given.

Clip ids are the paths relative to the data root, so reports name files unambiguously. Each clip's
speaker is the CSV's ``speaker`` column where it has one (and the row a value), else the file name's
prefix before the first ``-`` or ``_`` (:func:`speaker_from_name`: LibriSpeech ``103-1240-0000.flac`` ->
``103``, VCTK ``p225_001.wav`` -> ``p225``; a name without either is its own speaker).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from waveflow_py.audio import AUDIO_EXTENSIONS, list_audio_files

__all__ = ["EvalClip", "METADATA_FILE", "find_clips", "read_clip", "speaker_from_name"]

METADATA_FILE = "metadata.csv"


def speaker_from_name(path: str | Path) -> str:
    """The speaker a file name implies: its stem up to the first ``-`` or ``_`` (the whole stem if none)."""
    stem = Path(path).stem
    return re.split(r"[-_]", stem, maxsplit=1)[0] or stem


@dataclass(frozen=True)
class EvalClip:
    """One reference clip: ``clip_id`` (path relative to the data root), the file's path and its speaker
    (given, else :func:`speaker_from_name` of the path)."""

    clip_id: str
    path: Path
    speaker: str = ""

    def __post_init__(self) -> None:
        if not self.speaker:
            object.__setattr__(self, "speaker", speaker_from_name(self.path))


def _from_metadata(csv_path: Path, split: str | None) -> list[EvalClip]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if "path" not in fields:
            raise ValueError(f"{csv_path}: expected a 'path' column (path,split,...), got columns {fields}")
        if split is not None and "split" not in fields:
            raise ValueError(f"{csv_path}: --split {split!r} given but the CSV has no 'split' column")
        rows = list(reader)
    clips = [
        EvalClip(row["path"], csv_path.parent / row["path"], (row.get("speaker") or "").strip())
        for row in rows
        if split is None or row.get("split") == split
    ]
    if not clips:
        splits = sorted({row.get("split", "") for row in rows})
        raise ValueError(f"{csv_path}: no rows with split {split!r}; splits present: {splits}")
    return clips


def find_clips(data: str | Path, split: str | None = None, max_clips: int | None = None) -> list[EvalClip]:
    """The clips to evaluate; ``max_clips`` of them evenly spaced over the file order (so a corpus sorted by
    speaker is sampled across every speaker, not the first one's files); ValueError when there are none."""
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips: expected a positive integer, got {max_clips}")
    root = Path(data).expanduser()
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise ValueError(f"{root}: expected a directory or a metadata .csv file")
        clips = _from_metadata(root, split)
    elif root.is_dir():
        if (root / METADATA_FILE).is_file():
            clips = _from_metadata(root / METADATA_FILE, split)
        else:
            base = root / split if split is not None else root
            if not base.is_dir():
                raise ValueError(f"{root}: no {METADATA_FILE} and no {split!r} subfolder for --split")
            files = list_audio_files(base)
            if not files:
                raise ValueError(f"{base}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
            clips = [EvalClip(p.relative_to(root).as_posix(), p) for p in files]
    else:
        raise FileNotFoundError(f"evaluation data not found: {root}")
    if max_clips is None or max_clips >= len(clips):
        return clips
    if max_clips == 1:
        return clips[:1]
    return [clips[round(i * (len(clips) - 1) / (max_clips - 1))] for i in range(max_clips)]


def read_clip(
    clip: EvalClip, sample_rate: int, seconds: float | None = None, multiple_of: int = 1
) -> np.ndarray:
    """The clip's audio ``(T,)`` float64 at ``sample_rate`` (other rates resampled), its first ``seconds``
    (all when ``None``), cut to a whole number of ``multiple_of`` samples (e.g. the hop, so frames and
    samples line up); ``AudioError`` for an unreadable file (see :func:`waveflow_py.audio.load_audio`)."""
    from waveflow_py.audio import load_audio

    audio, _ = load_audio(clip.path, sample_rate, resample=True)
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if seconds is not None:
        x = x[: int(seconds * sample_rate)]
    return x[: x.size // multiple_of * multiple_of]

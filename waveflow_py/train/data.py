"""Training data: corpus listing, audio scanning (with reported skips), random segments and dev utterances.

Segments are a pure function of ``(seed, index)``: item ``k`` of :class:`SegmentDataset` draws its file
(weighted by duration, i.e. uniform over the audio) and its offset from ``numpy.random.default_rng((seed,
k))``. The sampler state is therefore just the global step, which makes ``--resume`` exact and DDP sharding
trivial (:class:`StepSampler`). Mels are *not* computed here: the loop computes them on the training device.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from waveflow_py.audio import list_audio_files, load_audio
from waveflow_py.config import DataConfig

__all__ = [
    "AudioItem",
    "ScanResult",
    "list_corpus",
    "scan_audio",
    "SegmentDataset",
    "StepSampler",
    "DevSet",
]

logger = logging.getLogger(__name__)


@dataclass
class AudioItem:
    """One usable file: its path, its length in samples (at the training rate) and, if cached, its audio."""

    path: Path
    num_samples: int
    audio: Tensor | None = None


@dataclass
class ScanResult:
    """The usable items of a split and the files that were skipped, with the reason for each."""

    items: list[AudioItem]
    skipped: list[tuple[Path, str]]

    def summary(self, split: str) -> str:
        seconds = sum(i.num_samples for i in self.items)
        return f"{split}: {len(self.items)} file(s) ({seconds} samples), {len(self.skipped)} skipped"


def _detect_source(root: Path) -> str:
    meta = root / "metadata.csv"
    if not meta.is_file():
        return "folder"
    with meta.open(encoding="utf-8") as f:
        first = f.readline()
    if "|" in first:
        return "ljspeech"
    header = [h.strip() for h in first.split(",")]
    if "path" in header:
        return "csv"
    raise ValueError(
        f"{meta}: cannot tell its layout: expected a header with a 'path' column (csv) or "
        f"'id|text|normalized' lines (ljspeech), got {first.strip()[:80]!r}"
    )


def _list_csv(root: Path, split: str) -> list[Path]:
    with (root / "metadata.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ValueError(f"{root / 'metadata.csv'}: expected a header with a 'path' column")
        has_split = "split" in reader.fieldnames
        return [root / row["path"] for row in reader if not has_split or row["split"] == split]


def _list_ljspeech(root: Path, split: str, train_split: str, dev_split: str, dev_count: int) -> list[Path]:
    ids = []
    with (root / "metadata.csv").open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            ids.append(line.split("|", 1)[0].strip())
    ids.sort()
    if dev_count >= len(ids):
        raise ValueError(f"data.dev_count ({dev_count}) leaves no training items out of {len(ids)}")
    if split == train_split:
        chosen = ids[: len(ids) - dev_count]
    elif split == dev_split:
        chosen = ids[len(ids) - dev_count :]
    else:
        raise ValueError(f"ljspeech layout has splits {train_split!r} and {dev_split!r}, not {split!r}")
    return [root / "wavs" / f"{i}.wav" for i in chosen]


def _list_folder(root: Path, split: str) -> list[Path]:
    base = root / split
    if not base.is_dir():
        raise FileNotFoundError(f"folder layout: expected audio files under {base}")
    return list_audio_files(base)


def list_corpus(cfg: DataConfig, split: str) -> list[Path]:
    """Audio paths of ``split`` (``cfg.train_split`` or ``cfg.dev_split``) in a stable order."""
    root = Path(cfg.root)
    if not cfg.root or not root.is_dir():
        raise FileNotFoundError(f"data.root: corpus directory not found: {cfg.root!r}")
    source = _detect_source(root) if cfg.source == "auto" else cfg.source
    if source == "csv":
        paths = _list_csv(root, split)
    elif source == "ljspeech":
        paths = _list_ljspeech(root, split, cfg.train_split, cfg.dev_split, cfg.dev_count)
    else:
        paths = _list_folder(root, split)
    if cfg.max_items is not None:
        paths = paths[: cfg.max_items]
    return paths


def scan_audio(
    paths: list[Path], sample_rate: int, min_samples: int, *, cache: bool, peak_normalize: bool = False
) -> ScanResult:
    """Decode every file once (resampling to ``sample_rate``); unreadable or short files are skipped.

    Every skip is logged with its reason and returned in ``ScanResult.skipped``; nothing is dropped silently.
    """
    items: list[AudioItem] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            audio, _ = load_audio(path, sample_rate, resample=True, peak_normalize=peak_normalize)
        except (ValueError, OSError, RuntimeError) as e:  # AudioError is a ValueError
            skipped.append((path, f"unreadable: {e}"))
            continue
        n = int(audio.shape[-1])
        if n < min_samples:
            skipped.append((path, f"too short: {n} samples < {min_samples}"))
            continue
        items.append(AudioItem(path, n, audio.contiguous() if cache else None))
    for path, why in skipped:
        logger.warning("skipped %s (%s)", path, why)
    if skipped:
        logger.warning("%d of %d file(s) skipped (see skipped.txt)", len(skipped), len(paths))
    return ScanResult(items, skipped)


def _load_item(item: AudioItem, sample_rate: int, peak_normalize: bool) -> Tensor:
    if item.audio is not None:
        return item.audio
    audio, _ = load_audio(item.path, sample_rate, resample=True, peak_normalize=peak_normalize)
    return audio


class SegmentDataset(Dataset):
    """Random fixed-length training segments; item ``k`` is a pure function of ``(seed, k)``.

    Returns a float32 tensor of shape ``(segment_length,)``. Files are drawn with probability proportional
    to their length; every file is at least ``segment_length`` long (shorter ones are skipped in the scan).
    """

    def __init__(
        self, items: list[AudioItem], segment_length: int, seed: int, sample_rate: int, peak_normalize: bool
    ) -> None:
        if not items:
            raise ValueError("no usable training audio (every file was skipped or the split is empty)")
        short = [i.path for i in items if i.num_samples < segment_length]
        if short:
            raise ValueError(f"{len(short)} item(s) shorter than segment {segment_length}: {short[:3]}")
        self.items = items
        self.segment_length = segment_length
        self.seed = seed
        self.sample_rate = sample_rate
        self.peak_normalize = peak_normalize
        lengths = np.array([i.num_samples for i in items], dtype=np.float64)
        self._cdf = np.cumsum(lengths / lengths.sum())

    def __len__(self) -> int:  # indices are unbounded in practice; the sampler decides which are used
        return 2**62

    def locate(self, index: int) -> tuple[int, int]:
        """``(file index, offset)`` of item ``index``."""
        rng = np.random.default_rng((self.seed, index))
        f = int(min(np.searchsorted(self._cdf, rng.random(), side="right"), len(self.items) - 1))
        offset = int(rng.integers(0, self.items[f].num_samples - self.segment_length + 1))
        return f, offset

    def __getitem__(self, index: int) -> Tensor:
        f, offset = self.locate(int(index))
        audio = _load_item(self.items[f], self.sample_rate, self.peak_normalize)
        return audio[offset : offset + self.segment_length].clone()


class StepSampler(Sampler[int]):
    """Indices for steps ``start_step, start_step + 1, ...`` of this rank: step ``s`` of rank ``r`` uses
    items ``(s * world + r) * batch_size + j``. Resuming at step ``s`` replays exactly the same data."""

    def __init__(self, batch_size: int, start_step: int, end_step: int, rank: int = 0, world_size: int = 1):
        self.batch_size = batch_size
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            base = (step * self.world_size + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)


class DevSet:
    """Full dev utterances (cropped to ``max_samples``, trimmed to a multiple of ``hop``) in a fixed order."""

    def __init__(
        self,
        items: list[AudioItem],
        hop: int,
        max_samples: int | None,
        sample_rate: int,
        peak_normalize: bool,
    ) -> None:
        self.items = items
        self.hop = hop
        self.max_samples = max_samples
        self.sample_rate = sample_rate
        self.peak_normalize = peak_normalize

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, Tensor]:
        item = self.items[i]
        audio = _load_item(item, self.sample_rate, self.peak_normalize)
        n = audio.shape[-1] if self.max_samples is None else min(audio.shape[-1], self.max_samples)
        n -= n % self.hop
        return item.path.stem, audio[:n].clone()


def collate_segments(batch: list[Tensor]) -> Tensor:
    """``[(T,)] * B -> (B, T)``."""
    return torch.stack(batch, 0)

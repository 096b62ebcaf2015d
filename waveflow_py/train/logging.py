"""Run logs: a JSONL metrics file always, TensorBoard when installed (imported lazily), rank 0 only.

Each JSONL line is ``{"step": int, "split": "train"|"dev", <name>: float, ...}``. Without TensorBoard a single
warning says so and the JSONL log is still written. Audio and spectrogram images go to TensorBoard only
(images need matplotlib, also imported lazily).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["MetricsLogger", "bits_per_sample"]

logger = logging.getLogger(__name__)


def bits_per_sample(nats: float) -> float:
    """Nats per sample -> bits per sample (divide by ln 2)."""
    return nats / math.log(2.0)


class MetricsLogger:
    """Writes ``metrics.jsonl`` in ``out_dir`` and (optionally) TensorBoard events in ``out_dir/tb``."""

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self._tb: Any = None
        self._file = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = (self.out_dir / "metrics.jsonl").open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed
                logger.warning(
                    "tensorboard is not installed: no TensorBoard logs (metrics still go to %s); "
                    "pip install tensorboard to get them",
                    self.out_dir / "metrics.jsonl",
                )
            else:
                self._tb = SummaryWriter(log_dir=str(self.out_dir / "tb"))

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        assert self._file is not None
        record = {"step": step, "split": split, **{k: float(v) for k, v in values.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{split}/{k}", float(v), step)

    def audio(self, step: int, tag: str, audio: Tensor, sample_rate: int) -> None:
        if self.enabled and self._tb is not None:
            a = audio.detach().float().cpu().clamp(-1.0, 1.0)
            self._tb.add_audio(tag, a, step, sample_rate=sample_rate)

    def spectrogram(self, step: int, tag: str, log_mels: list[Tensor], titles: list[str]) -> None:
        """A figure of stacked log-mel images (e.g. reference vs generated)."""
        if not (self.enabled and self._tb is not None):
            return
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, axes = plt.subplots(len(log_mels), 1, figsize=(8, 2.2 * len(log_mels)), squeeze=False)
        for ax, m, title in zip(axes[:, 0], log_mels, titles, strict=True):
            ax.imshow(m.detach().float().cpu().numpy(), origin="lower", aspect="auto")
            ax.set_title(title)
        fig.tight_layout()
        self._tb.add_figure(tag, fig, step)
        plt.close(fig)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """All records of a ``metrics.jsonl`` file."""
        with Path(path).open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

"""Training of flow vocoders: data sets, the loop (AMP, DDP, EMA, compile), checkpoints, logs, export.

Entry points: :func:`train` (``waveflow train CONFIG``), :class:`Trainer`, and the checkpoint helpers in
:mod:`waveflow_py.train.checkpoint`. The experiment schema is :class:`waveflow_py.config.ExperimentConfig`.
"""

from __future__ import annotations

from waveflow_py.train.checkpoint import CheckpointMismatch, load_checkpoint, resolve_checkpoint
from waveflow_py.train.loop import NonFiniteLossError, Trainer, TrainResult, train
from waveflow_py.train.release_writer import export_checkpoint

__all__ = [
    "train",
    "Trainer",
    "TrainResult",
    "NonFiniteLossError",
    "CheckpointMismatch",
    "load_checkpoint",
    "resolve_checkpoint",
    "export_checkpoint",
]

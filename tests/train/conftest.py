"""Fixtures for the training tests: a synthetic corpus on disk, tiny experiment configs, a stand-in model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from torch import nn
from train_standin import StandIn

from waveflow_py.config import ExperimentConfig, from_dict

SR = 8000
TINY_MEL = {
    "sample_rate": SR,
    "n_fft": 256,
    "hop_length": 64,
    "win_length": 256,
    "n_mels": 16,
    "fmin": 0.0,
    "fmax": 4000.0,
}


def harmonic_clip(rng: np.random.Generator, seconds: float, sr: int = SR) -> np.ndarray:
    """A speech-like test signal: a few harmonics of a gliding f0 under an envelope, plus a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / seconds, 1.0)))
    return (0.3 * env * x + 0.003 * rng.standard_normal(t.shape)).astype(np.float32)


def write_corpus(root: Path, n_train: int = 4, n_dev: int = 2, seconds: float = 1.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("dev", n_dev)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            sf.write(root / split / f"{split}_{i:02d}.wav", harmonic_clip(rng, seconds), SR)
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


def make_experiment(root: Path, out_dir: Path, **train: Any) -> ExperimentConfig:
    data = {
        "root": str(root),
        "segment_length": 512,
        "min_seconds": 0.1,
        "dev_max_items": 2,
        "dev_max_seconds": 0.5,
    }
    tr = {
        "steps": 6,
        "batch_size": 2,
        "lr": 1e-3,
        "log_every": 1,
        "val_every": 3,
        "ckpt_every": 3,
        "keep_last_k": 5,
        "val_clips": 1,
        "progress": False,
        "tensorboard": False,
        "export_release": False,
        "out_dir": str(out_dir),
        "seed": 7,
    }
    tr.update(train)
    model = {"n_group": 4, "n_flows": 2, "n_layers": 2, "residual_channels": 8, "mel": TINY_MEL}
    return from_dict(ExperimentConfig, {"model_type": "waveflow", "model": model, "data": data, "train": tr})


@pytest.fixture
def standin() -> Callable[[Any], nn.Module]:
    """The stand-in model class (a ``model_factory`` for :func:`waveflow_py.train.loop.train`)."""
    return StandIn


@pytest.fixture
def tiny_experiment() -> Callable[..., ExperimentConfig]:
    """``tiny_experiment(corpus_root, out_dir, **train_overrides) -> ExperimentConfig``."""
    return make_experiment


@pytest.fixture
def make_corpus() -> Callable[..., Path]:
    """``make_corpus(root, n_train=4, n_dev=2, seconds=1.0, seed=0) -> root``."""
    return write_corpus

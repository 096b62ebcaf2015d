"""Small training helpers: EMA weights and the metrics log without TensorBoard."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from torch import nn

from waveflow_py.train.ema import EMA
from waveflow_py.train.logging import MetricsLogger


def test_ema_update_and_swap() -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(4.0)
    ema.update(model)  # 0.5 * 0 + 0.5 * 4
    ema.update(model)  # 0.5 * 2 + 0.5 * 4
    assert torch.allclose(ema.state_dict()["weight"], torch.full((1, 2), 3.0))
    with ema.swapped_in(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 3.0))
    assert torch.allclose(model.weight, torch.full((1, 2), 4.0))  # live weights restored
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_metrics_without_tensorboard_warns_once_and_writes_jsonl(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with caplog.at_level(logging.WARNING):
        log = MetricsLogger(tmp_path, tensorboard=True)
        log.scalars(1, "train", {"nll": 1.5})
        log.scalars(2, "dev", {"nll": 1.25})
        log.audio(2, "x", torch.zeros(10), 8000)  # silently nothing without TensorBoard
        log.close()
    assert caplog.text.count("tensorboard is not installed") == 1
    records = MetricsLogger.read(tmp_path / "metrics.jsonl")
    assert records == [{"step": 1, "split": "train", "nll": 1.5}, {"step": 2, "split": "dev", "nll": 1.25}]

"""``dtype="auto"``: measured on the model's own shapes once per machine, cached, never from CPU flags."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.inference.conftest import tiny_waveflow
from waveflow_py.inference import precision
from waveflow_py.inference.precision import MAX_REL_RMS, MIN_SPEEDUP, DtypeChoice, choose_dtype, decide


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WAVEFLOW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "dtype_auto.json"


def test_the_rule_needs_both_speed_and_accuracy() -> None:
    assert decide([2.0, 1.9, 2.1], MAX_REL_RMS / 2) == torch.bfloat16
    assert decide([2.0, 1.9, 2.1], MAX_REL_RMS * 2) == torch.float32  # faster, but the audio differs too much
    assert decide([0.99 * MIN_SPEEDUP] * 3, 0.0) == torch.float32  # within timing noise
    assert decide([0.5, 0.6, 0.5], 0.0) == torch.float32  # slower: never chosen
    assert decide([2.0, 1.9, 2.1], 0.0, best=1.05) == torch.float32  # the best times disagree: not trusted
    assert decide([1.05, 1.0, 1.08], 0.0, best=1.5) == torch.float32  # nor do the pairs here
    assert decide([2.0, 2.0, 2.0], math.nan) == torch.float32
    assert decide([], 0.0) == torch.float32


def test_measured_once_then_read_from_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_waveflow()
    first = choose_dtype(model, "cpu")
    assert not first.cached and first.fp32_s > 0 and first.bf16_s > 0 and math.isfinite(first.rel_rms)
    assert len(first.speedups) >= precision.PROBE_REPEATS
    assert first.dtype == decide(first.speedups, first.rel_rms, first.fp32_s / first.bf16_s)
    data = json.loads(cache.read_text())
    (machine,) = data  # keyed by the CPU model, threads and torch version
    assert precision.device_name(torch.device("cpu")) in machine and torch.__version__ in machine
    assert f"{torch.get_num_threads()} threads" in machine

    def no_measuring(*args: object) -> DtypeChoice:
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(precision, "_measure", no_measuring)
    again = choose_dtype(model, "cpu")
    assert again.cached and again.dtype == first.dtype and again.fp32_s == first.fp32_s
    assert again.speedups == first.speedups
    assert "fp32" in again.reason and "bf16" in again.reason and "SNR" in again.reason
    other = tiny_waveflow(residual_channels=16)  # other shapes: its own measurement
    with pytest.raises(AssertionError, match="measured again"):
        choose_dtype(other, "cpu")


def test_an_unwritable_cache_still_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("WAVEFLOW_CACHE_DIR", str(tmp_path / "file" / "cache"))
    choice = choose_dtype(tiny_waveflow(), "cpu")
    assert choice.dtype in (torch.float32, torch.bfloat16) and not choice.cached


def test_no_cpu_flag_logic_remains() -> None:
    root = Path(__file__).resolve().parents[2] / "waveflow_py"
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert '"amx_bf16" in' not in text and "_cpu_has_amx" not in text, path

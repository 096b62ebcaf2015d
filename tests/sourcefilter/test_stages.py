"""The stage assembly (waveflow_py.sourcefilter.stages.SourceFilter) and how a model keeps it: stages
in order, exact inverse with state across chunks, and state_dict keys unchanged from the releases
written before the package (the calibration buffer at the model's root; shipped weights load as is)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tests.models.factories import tiny_mel_config, tiny_waveflow_config
from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import SourceFilterConfig
from waveflow_py.models import WaveFlow
from waveflow_py.pretrained import load_release
from waveflow_py.sourcefilter import SourceFilter, SourceFilterState

ROOT = Path(__file__).resolve().parents[2]
# releases written with the flat keys (the resume points, one of them the preview bundled until
# 2026-12-04); the bundled preview of today stores the nested block
SHIPPED = sorted((ROOT / "recipes" / "librispeech-mini" / "bakeoff" / "resume").glob("*-latest"))

ALL_STAGES = SourceFilterConfig(
    envelope="lpc", lpc_order=6, preemphasis=0.9, pitch="ltp", pitch_threshold=0.0
)


def _signal(frames: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(2, frames * 16, generator=gen, dtype=torch.float64)
    x = 0.1 * (white + 0.8 * torch.roll(white, 1, dims=1))
    return x, MelSpectrogram(tiny_mel_config())(x.float()).double()


def test_stages_in_order_exact_inverse_and_chunks() -> None:
    sf = SourceFilter(tiny_mel_config(), ALL_STAGES)
    assert [name for name, _, _ in sf._stages()] == ["preemphasis", "lpc", "ltp"]
    x, mel = _signal()
    e, ld = sf.analysis(x, mel)
    back, ld_back, state = sf.synthesis(e, mel)
    torch.testing.assert_close(back, x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(ld + ld_back, torch.zeros_like(ld), atol=1e-9, rtol=0)
    assert all(getattr(state, name) is not None for name in ("preemphasis", "lpc", "ltp"))
    first, _, s1 = sf.synthesis(e[:, :64], mel[:, :, :5])  # 4 segments and the next centred frame
    second, _, _ = sf.synthesis(e[:, 64:], mel[:, :, 4:], s1)
    torch.testing.assert_close(torch.cat([first, second], 1), back, atol=1e-8, rtol=1e-8)
    with pytest.raises(ValueError, match="SourceFilterState"):
        sf.synthesis(e, mel, {"lpc": None})  # type: ignore[arg-type]
    off = SourceFilter(tiny_mel_config(), SourceFilterConfig())
    assert not off.active and off.analysis(x, mel)[0] is x
    assert off.synthesis(x, mel, SourceFilterState())[2] == SourceFilterState()


def test_state_dict_keeps_the_calibration_buffer_at_the_model_root() -> None:
    model = WaveFlow(dataclasses.replace(tiny_waveflow_config(8), source_filter=ALL_STAGES))
    with torch.no_grad():
        model.source_filter.envelope_log_scale.fill_(0.25)
    keys = list(model.state_dict())
    assert "envelope_log_scale" in keys and not any(k.startswith("source_filter.") for k in keys)
    assert "source_filter.envelope_log_scale" in dict(model.named_buffers())
    wrapped = nn.ModuleDict({"m": model})  # the same inside a wrapper (DDP's "module.", EMA, compile)
    state = wrapped.state_dict()
    assert state["m.envelope_log_scale"] == 0.25
    fresh = nn.ModuleDict({"m": WaveFlow(model.config)})
    fresh.load_state_dict(state)  # strict
    assert float(fresh["m"].source_filter.envelope_log_scale) == 0.25
    state.pop("m.envelope_log_scale")
    with pytest.raises(RuntimeError, match="envelope_log_scale"):
        fresh.load_state_dict(state)


def test_the_flat_layout_stays_covered() -> None:
    assert any("source_filter" not in json.loads((p / "config.json").read_text())["model"] for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_weights_and_flat_configs_load_unchanged(path: Path) -> None:
    """The resume points written before the nested block (one is the preview bundled until 2026-12-04)
    have the flat keys and the root buffer, later ones the ``source_filter`` block: all load (strictly,
    hashes checked) and the model's state_dict is their file, key for key."""
    model_data = json.loads((path / "config.json").read_text())["model"]
    block = model_data.get("source_filter", model_data)  # the nested block, or the flat keys
    assert "envelope" in block
    if "source_filter" in model_data:
        assert "envelope" not in model_data  # one layout per file
    model, info = load_release(path)
    assert info.config.source_filter.envelope == block["envelope"]
    assert info.config.source_filter.pitch == block.get("pitch", "none")
    stored = load_file(str(path / "model.safetensors"))
    state = model.state_dict()
    assert set(state) == set(stored)
    assert all(torch.equal(state[k], stored[k]) for k in stored)

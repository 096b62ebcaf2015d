"""ExperimentConfig / DataConfig / TrainConfig: strict loading, overlays, overrides, cross-checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveflow_py.config import ExperimentConfig, from_dict, load_yaml
from waveflow_py.train.schedule import lr_at


def test_unknown_keys_are_errors_at_every_level() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        from_dict(ExperimentConfig, {"modle_type": "waveflow"})
    with pytest.raises(ValueError, match=r"train.*unknown key.*'lrr'"):
        from_dict(ExperimentConfig, {"train": {"lrr": 1e-3}})
    with pytest.raises(ValueError, match=r"data.*unknown key.*'segment'"):
        from_dict(ExperimentConfig, {"data": {"segment": 1024}})
    with pytest.raises(ValueError, match=r"model.*unknown key.*'n_flow'"):
        from_dict(ExperimentConfig, {"model": {"n_flow": 4}})


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ValueError, match="precision"):
        from_dict(ExperimentConfig, {"train": {"precision": "fp8"}})
    with pytest.raises(ValueError, match="multiple of the mel hop"):
        from_dict(ExperimentConfig, {"data": {"segment_length": 1000}})
    with pytest.raises(ValueError, match="model_type"):
        from_dict(ExperimentConfig, {"model_type": "wavenet"})
    with pytest.raises(ValueError, match="sample_rate"):
        from_dict(ExperimentConfig, {"mel_preset": "16k", "data": {"sample_rate": 22050}})


def test_mel_preset_then_explicit_mel_keys() -> None:
    exp = from_dict(ExperimentConfig, {"mel_preset": "16k", "model": {"mel": {"n_mels": 64}}})
    mel = exp.model_config().mel
    assert (mel.sample_rate, mel.n_mels, mel.preset) == (16000, 64, "16k")
    assert exp.sample_rate == 16000


def test_yaml_extends_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("model_type: waveglow\ntrain:\n  lr: 0.001\n  steps: 10\n")
    (tmp_path / "over.yaml").write_text("extends: base.yaml\ntrain:\n  steps: 20\n")
    exp = load_yaml(ExperimentConfig, tmp_path / "over.yaml", ["train.batch_size=3", "model.n_flows=4"])
    assert exp.model_type == "waveglow"
    assert (exp.train.lr, exp.train.steps, exp.train.batch_size) == (0.001, 20, 3)
    assert exp.model_config().n_flows == 4
    with pytest.raises(ValueError, match="unknown key"):
        load_yaml(ExperimentConfig, tmp_path / "over.yaml", ["train.bogus=1"])


def test_lr_schedules() -> None:
    base = {"lr": 1.0, "steps": 100, "warmup_steps": 10}
    const = from_dict(ExperimentConfig, {"train": base}).train
    assert lr_at(0, const) == pytest.approx(0.1) and lr_at(9, const) == 1.0 and lr_at(50, const) == 1.0
    step = from_dict(
        ExperimentConfig, {"train": {**base, "lr_schedule": "step", "lr_step_size": 20, "lr_gamma": 0.5}}
    ).train
    assert lr_at(39, step) == 0.5 and lr_at(40, step) == 0.25
    cos = from_dict(ExperimentConfig, {"train": {**base, "lr_schedule": "cosine", "lr_min_ratio": 0.1}}).train
    assert lr_at(10, cos) == pytest.approx(1.0) and lr_at(100, cos) == pytest.approx(0.1)
    assert lr_at(55, cos) == pytest.approx(0.55)


def test_model_config_is_typed_and_resolved_once() -> None:
    from waveflow_py.config import WaveFlowConfig, WaveGlowConfig, to_dict
    from waveflow_py.models import WaveGlow, build_model

    data = {"model_type": "waveglow", "mel_preset": "16k", "model": {"n_flows": 4}}
    exp = from_dict(ExperimentConfig, data)
    assert isinstance(exp.model, WaveGlowConfig) and exp.model.n_flows == 4
    assert exp.model.mel.sample_rate == 16000 and exp.model_config() is exp.model  # no re-resolution
    again = from_dict(ExperimentConfig, to_dict(exp))  # plain data round trip (YAML/checkpoints)
    assert again.model == exp.model
    assert isinstance(build_model(exp.model_type, exp.model), WaveGlow)
    with pytest.raises(ValueError, match="WaveGlowConfig"):
        ExperimentConfig(model_type="waveglow", model=WaveFlowConfig())


def test_val_sigma_is_the_deprecated_name_of_val_temperature() -> None:
    assert from_dict(ExperimentConfig, {}).train.val_temperature is None  # the package default (0.6)
    with pytest.warns(FutureWarning, match="val_temperature"):
        exp = from_dict(ExperimentConfig, {"train": {"val_sigma": 0.7}})
    assert exp.train.val_temperature == 0.7 and exp.train.val_sigma is None
    with pytest.raises(ValueError, match="val_temperature"):
        from_dict(ExperimentConfig, {"train": {"val_temperature": -1.0}})

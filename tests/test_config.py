"""Strict configuration loading: types, unknown keys, overlays, overrides, presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveflow_py.config import (
    MelConfig,
    WaveFlowConfig,
    from_dict,
    load_yaml,
    mel_preset,
    parse_overrides,
    to_dict,
)


def test_round_trip_through_plain_data() -> None:
    cfg = WaveFlowConfig(n_group=32, mel=mel_preset("16k"))
    data = to_dict(cfg)
    assert data["kernel_size"] == [3, 3]  # tuples become lists (JSON safe)
    assert from_dict(WaveFlowConfig, data) == cfg


def test_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_flow'\]"):
        from_dict(WaveFlowConfig, {"n_flow": 4})
    with pytest.raises(ValueError, match="WaveFlowConfig.mel: unknown key"):
        from_dict(WaveFlowConfig, {"mel": {"hop": 256}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n_flows": "eight"}, "expected an integer"),
        ({"n_flows": True}, "expected an integer"),
        ({"kernel_size": [3]}, "expected 2 values"),
        ({"height_dilations": [1, 2]}, "expected 8 values"),
        ({"permutation": "shuffle"}, "permutation"),
    ],
)
def test_wrong_values_are_named(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(WaveFlowConfig, data)


def test_yaml_extends_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("n_flows: 8\nresidual_channels: 64\nmel:\n  n_mels: 80\n")
    (tmp_path / "small.yaml").write_text("extends: base.yaml\nresidual_channels: 32\n")
    cfg = load_yaml(WaveFlowConfig, tmp_path / "small.yaml", ["n_flows=4", "mel.fmax=7600"])
    assert (cfg.n_flows, cfg.residual_channels, cfg.mel.n_mels, cfg.mel.fmax) == (4, 32, 80, 7600.0)


def test_extends_cycle_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_yaml(WaveFlowConfig, tmp_path / "a.yaml")
    with pytest.raises(FileNotFoundError):
        load_yaml(WaveFlowConfig, tmp_path / "missing.yaml")


def test_override_syntax() -> None:
    assert parse_overrides(["a.b=3", "a.c=[1, 2]", "d=bf16"]) == {"a": {"b": 3, "c": [1, 2]}, "d": "bf16"}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


def test_presets() -> None:
    assert mel_preset("tacotron2") == MelConfig()
    assert mel_preset("espnet").log == "log10"
    assert mel_preset("24k").n_mels == 100
    with pytest.raises(ValueError, match="available"):
        mel_preset("nope")
    with pytest.raises(ValueError, match="Nyquist"):
        MelConfig(sample_rate=16000, fmax=11025.0)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "{}\n"])
def test_an_empty_config_is_refused(tmp_path: Path, text: str) -> None:
    """An empty file must not silently mean "all defaults" (a 100,000-step default training run)."""
    from waveflow_py.config import ExperimentConfig

    (tmp_path / "empty.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"empty\.yaml: the config is empty"):
        load_yaml(ExperimentConfig, tmp_path / "empty.yaml")
    (tmp_path / "child.yaml").write_text("extends: empty.yaml\nn_flows: 4\n")
    with pytest.raises(ValueError, match="the config is empty"):  # also as a base of an overlay
        load_yaml(WaveFlowConfig, tmp_path / "child.yaml")


def test_invalid_yaml_is_a_one_line_value_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("n_flows: 4\nmel: [1, 2\nresidual_channels: 8\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: invalid YAML: .* at line \d+, column \d+") as e:
        load_yaml(WaveFlowConfig, tmp_path / "bad.yaml")
    assert "\n" not in str(e.value)
    (tmp_path / "bad.json").write_text('{"n_flows": 4,}')
    with pytest.raises(ValueError, match=r"bad\.json: invalid JSON"):
        load_yaml(WaveFlowConfig, tmp_path / "bad.json")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ValueError, match="not a text file"):
        load_yaml(WaveFlowConfig, tmp_path / "binary.yaml")
    with pytest.raises(ValueError, match="invalid YAML value"):
        parse_overrides(["a=[1, 2"])

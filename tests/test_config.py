"""Strict configuration loading: types, unknown keys, overlays, overrides, presets, and the model
configs' source_filter block with the old flat keys it replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveflow_py.config import (
    SOURCE_FILTER_KEYS,
    ExperimentConfig,
    MelConfig,
    SourceFilterConfig,
    WaveFlowConfig,
    WaveGlowConfig,
    from_dict,
    load_yaml,
    mel_preset,
    nest_source_filter,
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


# ----------------------------------------------------------------------------- the source_filter block
FLAT = {"envelope": "lpc", "lpc_order": 12, "pitch": "ltp", "pitch_strength": 1.5}


@pytest.mark.parametrize("cls", [WaveFlowConfig, WaveGlowConfig])
def test_old_flat_source_filter_keys_load_into_the_block(cls: type) -> None:
    """Releases and checkpoints written before the block hold the six keys flat: they load as the block,
    and what is written back uses the block only."""
    rest = {k: v for k, v in to_dict(cls()).items() if k != "source_filter"}
    cfg = from_dict(cls, rest | FLAT)
    assert cfg.source_filter == SourceFilterConfig(**FLAT)
    assert cfg == from_dict(cls, rest | {"source_filter": FLAT})
    written = to_dict(cfg)
    assert written["source_filter"] == to_dict(SourceFilterConfig(**FLAT))
    assert not set(SOURCE_FILTER_KEYS) & set(written)
    assert nest_source_filter({"n_flows": 4}) == {"n_flows": 4}  # nothing to move: unchanged


def test_flat_and_nested_source_filter_keys_together_are_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"model: flat source-filter key\(s\) \['pitch'\] .* 'source_filter'"
    ):
        from_dict(WaveFlowConfig, {"source_filter": {"envelope": "lpc"}, "pitch": "ltp"}, path="model")
    with pytest.raises(ValueError, match=r"model\.source_filter: unknown key\(s\) \['pitch_gain'\]"):
        from_dict(WaveFlowConfig, {"source_filter": {"pitch_gain": 1.0}}, path="model")
    with pytest.raises(ValueError, match="source_filter.pitch_strength"):
        from_dict(WaveGlowConfig, {"pitch_strength": -1.0})  # the old layout is validated the same way


def test_yaml_layers_mix_flat_and_nested_keys(tmp_path: Path) -> None:
    """Each file and the overrides are nested on their own, then merged: an old flat overlay or a flat
    ``--set model.pitch_strength=...`` works over a recipe written with the block, and vice versa."""
    base = "mel_preset: 16k\nmodel:\n  n_flows: 2\n  source_filter:\n    envelope: lpc\n    pitch: ltp\n"
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "old.yaml").write_text("extends: base.yaml\nmodel:\n  pitch_threshold: 0.2\n")
    sets = ["model.pitch_strength=1.25", "model.source_filter.lpc_order=8"]
    with pytest.raises(ValueError, match=r"overrides: model: flat source-filter key"):
        load_yaml(ExperimentConfig, tmp_path / "old.yaml", sets)  # one layer: one form
    exp = load_yaml(ExperimentConfig, tmp_path / "old.yaml", sets[:1])
    want = SourceFilterConfig(envelope="lpc", pitch="ltp", pitch_strength=1.25, pitch_threshold=0.2)
    assert exp.model.source_filter == want and exp.model.n_flows == 2
    exp = load_yaml(ExperimentConfig, tmp_path / "old.yaml", sets[1:])
    assert exp.model.source_filter.lpc_order == 8 and exp.model.source_filter.pitch_threshold == 0.2
    (tmp_path / "flat.yaml").write_text("mel_preset: 16k\nmodel:\n  envelope: gain\n  preemphasis: 0.5\n")
    (tmp_path / "new.yaml").write_text("extends: flat.yaml\nmodel:\n  source_filter:\n    envelope: lpc\n")
    exp = load_yaml(ExperimentConfig, tmp_path / "new.yaml", ["model.preemphasis=0.25"])
    assert exp.model.source_filter == SourceFilterConfig(envelope="lpc", preemphasis=0.25)
    (tmp_path / "both.yaml").write_text("model:\n  envelope: gain\n  source_filter:\n    pitch: ltp\n")
    with pytest.raises(ValueError, match=r"both\.yaml: model: flat source-filter key\(s\) \['envelope'\]"):
        load_yaml(ExperimentConfig, tmp_path / "both.yaml")


def test_exponent_numbers_without_a_dot_are_numbers() -> None:
    """PyYAML (YAML 1.1) reads ``1e-4`` as a string; float fields accept it (``--set train.lr=1e-4``, the
    CLI's own help example, and ``lr: 1e-4`` in a recipe), other strings stay refused."""
    from waveflow_py.config import TrainConfig, from_dict, parse_overrides

    over = parse_overrides(["train.lr=1e-4", "train.max_minutes=2E+1"])["train"]
    cfg = from_dict(TrainConfig, over)
    assert cfg.lr == 1e-4 and cfg.max_minutes == 20.0
    with pytest.raises(ValueError, match=r"TrainConfig.lr: expected a number, got 'fast'"):
        from_dict(TrainConfig, {"lr": "fast"})
    with pytest.raises(ValueError, match="expected an integer"):
        from_dict(TrainConfig, {"steps": "1e3"})

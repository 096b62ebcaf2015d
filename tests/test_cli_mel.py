"""``waveflow mel``: files and directories in, one (n_mels, F) array per input out; bad inputs reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow_py.audio import MelSpectrogram, load_audio
from waveflow_py.cli import main
from waveflow_py.config import mel_preset


def _tone(sr: int, seconds: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * 330.0 * t)).astype(np.float32)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "spk1").mkdir(parents=True)
    sf.write(root / "spk1" / "a.wav", _tone(16000), 16000)
    sf.write(root / "spk1" / "b.flac", _tone(16000, 0.5), 16000)
    sf.write(root / "c.wav", _tone(22050), 22050)  # another rate: resampled by default
    (root / "notes.txt").write_text("not audio")
    return root


def test_directory_with_preset(inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["mel", str(inputs), "-o", str(out), "--preset", "16k", "-q"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert written == ["c.npy", "spk1/a.npy", "spk1/b.npy"]
    cfg = mel_preset("16k")
    mel = np.load(out / "spk1" / "b.npy")
    audio, _ = load_audio(inputs / "spk1" / "b.flac", 16000)
    expected = MelSpectrogram(cfg)(audio)[0].numpy()
    assert mel.dtype == np.float32 and mel.shape == (80, len(audio) // 256 + 1)
    assert np.abs(mel - expected).max() < 1e-5
    assert np.load(out / "c.npy").shape == (80, int(0.3 * 16000) // 256 + 1)  # resampled to 16 kHz
    assert json.loads((out / "mel_config.json").read_text())["sample_rate"] == 16000
    assert "wrote 3 mel file(s)" in capsys.readouterr().err


def test_bad_inputs_are_reported_and_the_rest_written(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + bytes(50))
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(4000, np.float32), 22050)
    good = inputs / "c.wav"
    out = tmp_path / "out"
    argv = ["mel", str(bad), str(silent), str(good), str(tmp_path / "missing.wav"), "-o", str(out), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{bad}: cannot decode" in err
    assert f"{silent}: the audio is silent" in err
    assert "missing.wav: no such file" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["c.npy"]
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_pt_format_and_strict_rate(inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    wav = inputs / "c.wav"
    assert main(["mel", str(wav), "-o", str(out), "--format", "pt", "--preset", "tacotron2", "-q"]) == 0
    saved = torch.load(out / "c.pt", weights_only=True)  # the mel and its settings, no pickle needed
    mel = saved["mel"]
    assert mel.shape == (80, int(0.3 * 22050) // 256 + 1) and mel.dtype == torch.float32
    assert saved["mel_config"]["preset"] == "tacotron2" and saved["mel_config"]["sample_rate"] == 22050
    argv = ["mel", str(inputs / "spk1" / "a.wav"), "-o", str(out), "--no-resample", "--preset", "tacotron2"]
    assert main([*argv, "-q"]) == 1
    err = capsys.readouterr().err
    assert "16000 Hz but 22050 Hz is required; drop --no-resample to resample it" in err
    assert "resample=True" not in err  # no flag this command does not have


def test_unknown_preset_is_a_usage_error(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mel", str(inputs), "-o", str(tmp_path / "o"), "--preset", "nope"]) == 2
    assert "unknown mel preset 'nope'" in capsys.readouterr().err


def test_model_settings_from_a_release(inputs: Path, tmp_path: Path) -> None:
    pretrained = pytest.importorskip("waveflow_py.pretrained")
    if not hasattr(pretrained, "load_release_config"):
        pytest.skip("waveflow_py.pretrained.load_release_config not available")
    models = pytest.importorskip("waveflow_py.models")
    from waveflow_py.config import WaveFlowConfig

    cfg = WaveFlowConfig(n_group=4, n_flows=2, n_layers=2, residual_channels=8, mel=mel_preset("16k"))
    release = tmp_path / "release"
    pretrained.save_release(release, models.WaveFlow(cfg), provenance={"note": "untrained test release"})
    out = tmp_path / "out"
    assert main(["mel", str(inputs / "spk1" / "a.wav"), "-o", str(out), "--model", str(release), "-q"]) == 0
    assert np.load(out / "a.npy").shape == (80, int(0.3 * 16000) // 256 + 1)


def test_never_overwrites_an_input_or_a_foreign_file(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # an input named like an output: `waveflow mel x.npy -o .` would replace it with its own mel
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "x.npy", _tone(16000), 16000, format="WAV")  # audio under a .npy name
    before = (tmp_path / "x.npy").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["mel", "x.npy", "-o", ".", "-q", *extra]) == 2
        assert "refusing to overwrite an input" in capsys.readouterr().err
        assert (tmp_path / "x.npy").read_bytes() == before and not (tmp_path / "mel_config.json").exists()
    # someone's .npy where an output would go, in a folder that no `waveflow mel` wrote
    out = tmp_path / "feats"
    out.mkdir()
    np.save(out / "c.npy", np.ones(3))
    argv = ["mel", str(inputs / "c.wav"), "-o", str(out), "-q"]
    assert main(argv) == 2
    assert "not written by waveflow mel: pass --overwrite" in capsys.readouterr().err
    assert np.load(out / "c.npy").shape == (3,) and not (out / "mel_config.json").exists()
    assert main([*argv, "--overwrite"]) == 0 and np.load(out / "c.npy").shape[0] == 80
    assert main(argv) == 0  # a re-run into its own output folder needs no --overwrite


def test_unwritable_output_is_a_one_line_error(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["mel", str(inputs), "-o", str(tmp_path / "file" / "sub"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "waveflow mel: error: -o" in err and "cannot write there" in err

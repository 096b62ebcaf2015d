"""A mel is never reinterpreted silently: ``waveflow mel`` writes its settings with every mel, ``waveflow
vocode`` reads them, converts exactly or refuses with both settings and the fix; bare mels are checked on
their raw values; bad options are usage errors reported once."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow_py.cli import main
from waveflow_py.config import mel_preset
from waveflow_py.pretrained import build_random_release, lookup

SR = 16000


def speech(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 * (1 + 0.05 * np.sin(2 * math.pi * 3 * t))
    phase = 2 * math.pi * np.cumsum(f0) / sr
    return (sum(0.2 / k * np.sin(k * phase) for k in range(1, 12)) + 0.003 * np.sin(7 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def release16k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny release with the bundled model's 16 kHz settings, bundled as ``tiny-16k-preview``."""
    return build_random_release(tmp_path_factory.mktemp("bundle") / "tiny-16k-preview", mel=mel_preset("16k"))


@pytest.fixture
def bundle(release16k: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only the 16 kHz preview is bundled (as today: no default model ships)."""
    monkeypatch.setattr(lookup, "_SOURCE_PRETRAINED", tmp_path / "no-source-tree")
    monkeypatch.delenv("WAVEFLOW_DEFAULT_MODEL", raising=False)
    monkeypatch.setenv("WAVEFLOW_PRETRAINED_DIR", str(release16k.parent))
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "clip.flac", speech(0.9), SR)
    return release16k


def _errors(err: str, command: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"waveflow {command}:")]


@pytest.mark.parametrize("fmt", ["npy", "pt", "npz"])
def test_a_mel_of_waveflow_mel_round_trips_through_vocode_at_the_right_duration(
    bundle: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mel", "clip.flac", "-o", "m", "--format", fmt, "-q"]) == 0  # no --preset, no --model
    err = capsys.readouterr().err
    assert "mel settings of tiny-16k-preview (the bundled preview model: no default model ships yet" in err
    assert "16000 Hz, hop 256, 80 mels" in err
    assert main(["vocode", f"m/clip.{fmt}", "-o", "v", "--model", str(bundle), "--quiet"]) == 0
    seconds = sf.info("v/clip.wav").duration
    assert abs(seconds - 0.9) <= 256 / SR  # not 0.9 * 22050 / 16000 s, as a 22.05 kHz mel would give


def test_the_default_model_decides_the_settings_once_one_ships(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    default = build_random_release(tmp_path / "bundle2" / "universal-24k", mel=mel_preset("24k"))
    monkeypatch.setenv("WAVEFLOW_DEFAULT_MODEL", str(default))
    assert main(["mel", "clip.flac", "-o", "m", "-q"]) == 0
    assert f"mel settings of {default} (the default model;" in capsys.readouterr().err
    assert np.load("m/clip.npy").shape[0] == 100  # the 24k preset's 100 bands


@pytest.mark.parametrize("fmt", ["npy", "pt", "npz"])
def test_a_mel_of_other_settings_is_refused_with_both_and_the_fix(
    bundle: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mel", "clip.flac", "-o", "m", "--preset", "tacotron2", "--format", fmt, "-q"]) == 0
    capsys.readouterr()
    rc = main(["vocode", f"m/clip.{fmt}", "-o", "v", "--model", str(bundle), "--quiet"])
    err = capsys.readouterr().err
    (line,) = _errors(err, "vocode")[:1]
    assert rc == 1 and not Path("v/clip.wav").exists()
    assert "computed with tacotron2: 22050 Hz" in line and "model needs 16k: 16000 Hz" in line
    assert (
        "(sample_rate differs: no exact conversion)" in line
        and f"waveflow mel AUDIO -o DIR --model {bundle}" in line
    )
    assert "--mel-approximate" not in line  # another frame rate: not even approximately convertible


def test_only_the_encoding_differs_is_converted_exactly(bundle: Path, tmp_path: Path) -> None:
    """A log10 mel with its settings (same features) gives the same audio as the ln one."""
    from waveflow_py.audio import MelSpectrogram, load_audio, save_mel

    audio, _ = load_audio("clip.flac", SR)
    ln_cfg, log10_cfg = mel_preset("16k"), mel_preset("16k", log="log10")
    save_mel("a/ln.npy", MelSpectrogram(ln_cfg)(audio)[0], ln_cfg)
    save_mel("b/log10.pt", MelSpectrogram(log10_cfg)(audio)[0], log10_cfg)
    for src in ("a/ln.npy", "b/log10.pt"):
        assert main(["vocode", src, "-o", "v", "--model", str(bundle), "--quiet", "--temperature", "0"]) == 0
    ln, log10 = sf.read("v/ln.wav")[0], sf.read("v/log10.wav")[0]
    assert np.abs(ln - log10).max() < 1e-3


def test_stated_options_that_contradict_the_carried_settings_are_refused(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mel", "clip.flac", "-o", "m", "-q"]) == 0
    capsys.readouterr()
    assert main(["vocode", "m/clip.npy", "-o", "v", "--model", str(bundle), "--mel-format", "db", "-q"]) == 1
    (line,) = _errors(capsys.readouterr().err, "vocode")[:1]
    assert "carries its mel settings (mel_config.json beside it: 16k" in line and "mel_format='db'" in line
    assert main(["vocode", "m/clip.npy", "-o", "v", "--model", str(bundle), "--mel-format", "ln", "-q"]) == 0


def test_mel_refuses_an_output_folder_of_other_settings(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mel", "clip.flac", "-o", "m", "-q"]) == 0
    before = Path("m/clip.npy").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["mel", "clip.flac", "-o", "m", "--preset", "tacotron2", "-q", *extra]) == 2
        err = capsys.readouterr().err
        assert "holds mels of other settings (16k: 16000 Hz" in err and "choose another -o" in err
    assert Path("m/clip.npy").read_bytes() == before


def test_mel_in_subfolders_carries_its_settings_there(bundle: Path, tmp_path: Path) -> None:
    Path("in/spk").mkdir(parents=True)
    sf.write("in/spk/a.wav", speech(0.3), SR)
    assert main(["mel", "in", "-o", "m", "-q"]) == 0
    assert Path("m/spk/mel_config.json").is_file() and Path("m/mel_config.json").is_file()
    assert main(["vocode", "m", "-o", "v", "--model", str(bundle), "--quiet"]) == 0
    assert Path("v/spk/a.wav").is_file()


# ----------------------------------------------------------------------------- bare mels: raw values
def test_a_db_mel_under_ln_is_refused_before_the_floor_clamps_it(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    np.save("db.npy", rng.uniform(-80, -6, size=(80, 40)).astype(np.float32))  # a plain dB mel
    assert main(["vocode", "db.npy", "-o", "v", "--model", str(bundle), "--quiet"]) == 1
    (line,) = _errors(capsys.readouterr().err, "vocode")[:1]
    assert "look like decibels: pass --mel-format db" in line and not Path("v/db.wav").exists()


def test_an_integer_mel_is_refused(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save("int.npy", np.arange(80 * 30, dtype=np.int16).reshape(80, 30) % 7)
    torch.save(torch.ones(80, 30, dtype=torch.int64), "int.pt")
    assert main(["vocode", "int.npy", "int.pt", "-o", "v", "--model", str(bundle), "--quiet"]) == 1
    lines = _errors(capsys.readouterr().err, "vocode")
    assert "expected a float mel array, got dtype int16" in lines[0]
    assert "expected a float mel tensor, got dtype torch.int64" in lines[1]


def test_a_power_mel_gets_a_warning(bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    from waveflow_py.audio import MelSpectrogram, load_audio

    audio, _ = load_audio("clip.flac", SR)
    ln_mel = MelSpectrogram(mel_preset("16k"))(audio)[0]
    np.save("power.npy", (2 * ln_mel).numpy())  # ln of |X|^2: twice the log magnitude
    np.save("magnitude.npy", ln_mel.numpy())
    with caplog.at_level(logging.WARNING):
        assert main(["vocode", "magnitude.npy", "-o", "v", "--model", str(bundle), "--quiet"]) == 0
        assert "power mel" not in caplog.text
        main(["vocode", "power.npy", "-o", "v", "--model", str(bundle), "--quiet"])
    assert "mel level looks implausible" in caplog.text and "power mel" in caplog.text


# ----------------------------------------------------------------------------- usage errors, once
@pytest.mark.parametrize(
    "option, message",
    [
        (["--temperature", "-1"], "argument --temperature: expected a finite number >= 0, got '-1'"),
        (["--temperature", "nan"], "argument --temperature: expected a finite number >= 0, got 'nan'"),
        (["--mel-format", "decibel"], "argument --mel-format: unknown mel format 'decibel'"),
        (["--mel-stats", "missing.npy"], "error: stats file not found: missing.npy"),
        (["--denoise", "1e9"], "argument --denoise: expected a strength in [0, 1]"),
        (["--denoise", "-1"], "argument --denoise: expected a strength in [0, 1]"),
        (["--denoise", "nan"], "argument --denoise: expected a strength in [0, 1]"),
        (["--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got '0'"),
    ],
)
def test_bad_options_are_usage_errors_reported_once(
    bundle: Path, option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b", "c"):
        np.save(f"{name}.npy", np.full((80, 10), -5.0, np.float32))
    argv = ["vocode", "a.npy", "b.npy", "c.npy", "-o", "v", "--model", str(bundle), "--quiet", *option]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count(message) == 1 and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1 and not Path("v").exists()


def test_a_file_name_for_several_inputs_is_refused(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        np.save(f"{name}.npy", np.full((80, 10), -5.0, np.float32))
    assert main(["vocode", "a.npy", "b.npy", "-o", "two.wav", "--model", str(bundle), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "-o two.wav is a file name, but 2 inputs were given: pass a directory" in err
    assert not Path("two.wav").exists()

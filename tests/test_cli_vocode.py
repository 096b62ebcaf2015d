"""`waveflow vocode`, `waveflow info` and `waveflow demo` end to end with a tiny random release."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow_py.cli import main
from waveflow_py.pretrained import build_random_release, lookup
from waveflow_py.pretrained.integrity import write_manifest

SR = 22050
HOP = 256


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_release(tmp_path_factory.mktemp("rel") / "tiny")


def tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * math.pi * 220 * t)).astype(np.float32)


def mel_of(release: Path, seconds: float) -> torch.Tensor:
    from waveflow_py.vocoder import Vocoder

    return Vocoder.from_pretrained(release).mel(torch.from_numpy(tone(seconds)))


def test_vocodes_audio_mels_and_directories(release: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", tone(0.3), SR)
    sf.write(src / "sub" / "b.flac", tone(0.2), SR)
    np.save(tmp_path / "m.npy", mel_of(release, 0.25).numpy())
    torch.save(mel_of(release, 0.15)[None], tmp_path / "p.pt")  # (1, n_mels, F) is accepted too
    out = tmp_path / "out"
    argv = ["vocode", str(src), str(tmp_path / "m.npy"), str(tmp_path / "p.pt"), "-o", str(out)]
    rc = main([*argv, "--model", str(release), "--batch-size", "2", "--temperature", "0.3", "--quiet"])
    assert rc == 0
    a, sr = sf.read(out / "a.wav")
    assert sr == SR and len(a) == int(0.3 * SR)  # resynthesis keeps the input's length
    assert len(sf.read(out / "sub" / "b.wav")[0]) == int(0.2 * SR)
    assert len(sf.read(out / "m.wav")[0]) == mel_of(release, 0.25).shape[-1] * HOP
    assert (out / "p.wav").is_file()
    # a normalised log10 (ESPnet-style) mel with its stats file
    mean, std = np.full(80, -2.0), np.full(80, 1.5)
    np.save(tmp_path / "stats.npy", np.stack([mean, std]))
    np.save(
        tmp_path / "e.npy", ((mel_of(release, 0.2).numpy() / math.log(10) - mean[:, None]) / std[:, None])
    )
    argv = ["vocode", str(tmp_path / "e.npy"), "-o", str(out), "--model", str(release), "--quiet"]
    assert main([*argv, "--mel-format", "log10", "--mel-stats", str(tmp_path / "stats.npy")]) == 0
    assert len(sf.read(out / "e.wav")[0]) == mel_of(release, 0.2).shape[-1] * HOP


def test_bad_inputs_are_reported_and_the_rest_complete(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf.write(tmp_path / "good.wav", tone(0.2), SR)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    np.save(tmp_path / "nan.npy", np.full((80, 10), np.nan, dtype=np.float32))
    np.save(tmp_path / "bins.npy", np.zeros((64, 10), dtype=np.float32))
    sf.write(tmp_path / "rate.wav", tone(0.2, 16000), 16000)
    names = ["empty.wav", "good.wav", "corrupt.wav", "nan.npy", "bins.npy", "rate.wav", "missing.wav"]
    out = tmp_path / "out"
    rc = main(
        ["vocode", *[str(tmp_path / n) for n in names], "-o", str(out), "--model", str(release), "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert (out / "good.wav").is_file()
    for bad in ("empty.wav", "corrupt.wav", "nan.npy", "bins.npy", "rate.wav", "missing.wav"):
        lines = [line for line in err.splitlines() if line.startswith("waveflow vocode: ") and bad in line]
        assert len(lines) == 1, (bad, err)
        assert not (out / Path(bad).with_suffix(".wav").name).exists()
    assert "16000 Hz" in err and "80" in err
    # the wrong-rate file works once resampling is asked for
    assert (
        main(
            [
                "vocode",
                str(tmp_path / "rate.wav"),
                "-o",
                str(out / "r.wav"),
                "--model",
                str(release),
                "--resample",
                "--quiet",
            ]
        )
        == 0
    )
    assert sf.info(str(out / "r.wav")).samplerate == SR


def test_unknown_model_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "a.wav", tone(0.1), SR)
    rc = main(["vocode", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o"), "--model", "no-such-model"])
    assert rc == 2 and "unknown release 'no-such-model'; available:" in capsys.readouterr().err


def test_info_prints_what_the_release_holds(release: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(release)]) == 0
    text = capsys.readouterr().out
    sha = json.loads((release / "config.json").read_text())["files"]["model.safetensors"]["sha256"]
    assert f"sha256 {sha} (verified)" in text
    config_sha = hashlib.sha256((release / "config.json").read_bytes()).hexdigest()
    assert f"config.json sha256 {config_sha} (verified, SHA256SUMS)" in text
    assert "waveflow" in text and "n_mels=80" in text and "hop=256" in text and "untrained" in text
    assert "first_row=transform, envelope=none, lpc_order=16" in text  # the stages' block, inline
    assert main(["info", str(release), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] and data["mel"]["sample_rate"] == SR and data["parameters"] > 0
    from waveflow_py.dtypes import short_name
    from waveflow_py.inference.precision import choose_dtype
    from waveflow_py.pretrained import load_release

    choice = choose_dtype(load_release(release)[0], "cpu")  # info measured it: now cached
    assert choice.cached and "measured on" in choice.reason
    dtype, why = choice.dtype, choice.reason
    assert data["dtype_auto"] == {"device": "cpu", "dtype": short_name(dtype), "reason": why}
    assert data["temperature"] == 0.6 and data["sampling_source"]["temperature"] == "release"
    assert data["truncation"] is None and data["excitation_rms"] is None
    assert data["sampling"] == {
        "temperature": 0.6,
        "truncation": None,
        "excitation_rms": None,
        "pitch_strength": None,
        "mel_projection": None,
        "projection_iters": 0,
        "projection_fit": 0,
    }
    main(["info", str(release)])
    text = capsys.readouterr().out
    assert f"dtype auto:  {short_name(dtype)} on cpu ({why})" in text and "temperature: 0.6" in text
    assert "truncation:  none" in text and "excitation:  as the flows give it" in text


def test_info_without_model_lists_bundled(tmp_path: Path, monkeypatch, capsys) -> None:
    build_random_release(tmp_path / "bundle" / "alpha")
    monkeypatch.setenv("WAVEFLOW_PRETRAINED_DIR", str(tmp_path / "bundle"))
    monkeypatch.setattr(lookup, "_SOURCE_PRETRAINED", tmp_path / "none")
    monkeypatch.delenv("WAVEFLOW_DEFAULT_MODEL", raising=False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "bundled releases: alpha" in out and "default:  alpha (used when no model is named)" in out
    build_random_release(tmp_path / "bundle" / "beta")  # two and no DEFAULT file: none, and why
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["releases"] == ["alpha", "beta"] and data["default"] is None


def test_demo_builds_an_untrained_release_when_none_is_bundled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(lookup, "_SOURCE_PRETRAINED", tmp_path / "none")
    monkeypatch.delenv("WAVEFLOW_PRETRAINED_DIR", raising=False)
    monkeypatch.delenv("WAVEFLOW_DEFAULT_MODEL", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "untrained (random weights): this shows the pipeline, not quality" in printed
    assert (out / "untrained-release" / "config.json").is_file()
    wav_in, sr = sf.read(out / "input.wav")
    wav_out, sr_out = sf.read(out / "vocoded.wav")
    assert sr == sr_out == SR and len(wav_in) == len(wav_out) > SR  # the example is a few seconds
    assert (out / "spectrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["demo", "-o", str(out)]) == 0  # the default run again: its own files, no --overwrite


def test_demo_uses_a_bundled_preview_and_labels_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(lookup, "_SOURCE_PRETRAINED", tmp_path / "none")
    monkeypatch.delenv("WAVEFLOW_DEFAULT_MODEL", raising=False)
    preview = build_random_release(tmp_path / "bundle" / "x-preview")
    data = json.loads((preview / "config.json").read_text())
    data["provenance"] = {"steps": 10, "data": "test"}  # trained-looking: not the untrained label
    (preview / "config.json").write_text(json.dumps(data))
    write_manifest(preview)  # a deliberate edit, re-hashed
    monkeypatch.setenv("WAVEFLOW_PRETRAINED_DIR", str(tmp_path / "bundle"))
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"model:   {preview}" in printed and "PREVIEW model" in printed and "untrained" not in printed
    assert not (out / "untrained-release").exists()


def test_demo_with_a_given_model_and_input(release: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", tone(0.3), SR)
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--model", str(release), "--input", str(tmp_path / "x.wav")]) == 0
    assert len(sf.read(out / "vocoded.wav")[0]) == int(0.3 * SR)
    assert not (out / "untrained-release").exists()


def _digest(path: Path) -> bytes:
    import hashlib

    return hashlib.sha256(path.read_bytes()).digest()


@pytest.mark.parametrize("how", ["-o the input file", "-o . in its folder", "dir -o dir"])
def test_vocode_never_overwrites_its_input(
    release: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    rec = tmp_path / "in.wav"
    sf.write(rec, tone(0.2), SR)
    before = _digest(rec)
    monkeypatch.chdir(tmp_path)
    argv = {
        "-o the input file": ["in.wav", "-o", "in.wav"],
        "-o . in its folder": ["in.wav", "-o", "."],
        "dir -o dir": [str(tmp_path), "-o", str(tmp_path)],
    }[how]
    for extra in ([], ["--overwrite"]):  # --overwrite never extends to an input
        rc = main(["vocode", *argv, "--model", str(release), "--quiet", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and "refusing to overwrite an input" in err and "Traceback" not in err
        assert len([x for x in err.splitlines() if "error" in x]) == 1
        assert _digest(rec) == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_vocode_refuses_foreign_files_but_replaces_its_own(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf.write(tmp_path / "a.wav", tone(0.2), SR)
    out = tmp_path / "out"
    out.mkdir()
    sf.write(out / "a.wav", tone(0.1), SR)  # someone's recording, not written by waveflow vocode
    foreign = _digest(out / "a.wav")
    argv = ["vocode", str(tmp_path / "a.wav"), "-o", str(out), "--model", str(release), "--quiet"]
    assert main(argv) == 2
    assert "pass --overwrite" in capsys.readouterr().err and _digest(out / "a.wav") == foreign
    assert main([*argv, "--overwrite"]) == 0 and _digest(out / "a.wav") != foreign
    from waveflow_py.audio import audio_software

    assert (audio_software(out / "a.wav") or "").startswith("waveflow vocode")
    assert main(argv) == 0  # a re-run replaces its own earlier output without --overwrite


def test_one_bad_mel_never_aborts_the_batch(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt .pt and a string-dtype .npy among good mels (one batch): the good ones are written, each
    bad one is named once, a summary counts them, exit 1."""
    good = mel_of(release, 0.2)
    np.save(tmp_path / "g1.npy", good.numpy())
    torch.save(good, tmp_path / "g2.pt")
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated zip, not a tensor")
    np.save(tmp_path / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    torch.save({"mel": good.to(torch.complex64)}, tmp_path / "complex.pt")
    names = ["g1.npy", "bad.pt", "words.npy", "g2.pt", "complex.pt"]
    out = tmp_path / "out"
    rc = main(
        [
            "vocode",
            *[str(tmp_path / n) for n in names],
            "-o",
            str(out),
            "--model",
            str(release),
            "--batch-size",
            "8",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["g1.wav", "g2.wav"]
    for bad, why in (("bad.pt", "corrupt"), ("words.npy", "dtype <U1"), ("complex.pt", "complex")):
        lines = [x for x in err.splitlines() if x.startswith(f"waveflow vocode: {tmp_path / bad}: ")]
        assert len(lines) == 1 and why in lines[0], (bad, err)
    assert f"waveflow vocode: 3 of 5 input(s) failed; 2 written to {out}" in err


def test_vocode_uses_vocode_many(release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from waveflow_py.vocoder import Vocoder

    calls = []
    real = Vocoder.vocode_many

    def spy(self, mels, **kwargs):
        calls.append((len(mels), kwargs["batch_size"]))
        return real(self, mels, **kwargs)

    monkeypatch.setattr(Vocoder, "vocode_many", spy)
    for i in range(3):
        np.save(tmp_path / f"m{i}.npy", mel_of(release, 0.1 + 0.05 * i).numpy())
    out = tmp_path / "out"
    assert (
        main(
            [
                "vocode",
                *[str(tmp_path / f"m{i}.npy") for i in range(3)],
                "-o",
                str(out),
                "--model",
                str(release),
                "--batch-size",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert calls == [(2, 2), (1, 2)]
    assert len(sf.read(out / "m2.wav")[0]) == mel_of(release, 0.2).shape[-1] * HOP


def test_demo_guards_its_input_and_foreign_files_and_reruns(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    sf.write(out / "input.wav", tone(0.3), SR)
    before = _digest(out / "input.wav")
    argv = ["demo", "-o", str(out), "--model", str(release)]
    assert main([*argv, "--input", str(out / "input.wav"), "--overwrite"]) == 2  # the input itself
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert main([*argv, "--input", str(out / "input.wav").replace("input.wav", "../demo/input.wav")]) == 2
    capsys.readouterr()
    (out / "input.wav").rename(tmp_path / "x.wav")
    (out / "spectrograms.png").write_bytes(b"my own figure")
    assert main([*argv, "--input", str(tmp_path / "x.wav")]) == 2  # a foreign file in OUT
    assert "spectrograms.png" in capsys.readouterr().err
    assert (out / "spectrograms.png").read_bytes() == b"my own figure"
    assert _digest(tmp_path / "x.wav") == before
    (out / "spectrograms.png").unlink()
    assert main([*argv, "--input", str(tmp_path / "x.wav")]) == 0
    assert main([*argv, "--input", str(tmp_path / "x.wav")]) == 0  # re-running replaces its own files
    assert sorted(p.name for p in out.iterdir()) == ["input.wav", "spectrograms.png", "vocoded.wav"]


def test_sigma_is_gone_and_temperature_is_checked_when_parsed(capsys: pytest.CaptureFixture[str]) -> None:
    """``--sigma`` (the deprecated alias, see CHANGELOG.md) is no option any more; ``--temperature`` is."""
    from waveflow_py.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["vocode", "x.wav", "-o", "out", "--sigma", "0.4"])
    assert "unrecognized arguments: --sigma" in capsys.readouterr().err
    args = build_parser().parse_args(["vocode", "x.wav", "-o", "out", "--temperature", "0.3"])
    assert args.temperature == 0.3 and args.dtype == "auto"
    assert build_parser().parse_args(["vocode", "x.wav", "-o", "out"]).temperature is None


def test_truncation_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from waveflow_py.cli import build_parser

    parse = lambda *a: build_parser().parse_args(["vocode", "x.wav", "-o", "out", *a])  # noqa: E731
    assert parse().truncation == "release"
    assert parse("--truncation", "2.5").truncation == 2.5 and parse("--truncation", "none").truncation is None
    for bad in ("0", "-1", "inf", "wide"):
        with pytest.raises(SystemExit):
            parse("--truncation", bad)
        assert "--truncation" in capsys.readouterr().err
    assert parse().excitation_rms == "release" and parse("--excitation-rms", "1.2").excitation_rms == 1.2
    assert parse("--excitation-rms", "off").excitation_rms is None
    with pytest.raises(SystemExit):
        parse("--excitation-rms", "0")
    assert "--excitation-rms" in capsys.readouterr().err

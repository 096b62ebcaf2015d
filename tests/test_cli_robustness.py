"""The attack's other findings (issue 19, section 5), one test each: report folders, devices, signals,
special files, non-UTF-8 names, hints that name real flags, export leftovers."""

from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from waveflow_py.cli import main
from waveflow_py.pretrained import build_random_release

SR = 22050


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_release(tmp_path_factory.mktemp("rel") / "tiny")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    t = np.arange(int(0.2 * SR)) / SR
    sf.write(tmp_path / "good.wav", (0.3 * np.sin(2 * math.pi * 220 * t)).astype(np.float32), SR)
    return tmp_path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, err


# ----------------------------------------------------------------------------- eval -o
def test_eval_never_replaces_a_foreign_report_and_checks_writability_first(
    release: Path, here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import waveflow_py.evaluation as evaluation

    calls: list[object] = []

    def evaluate(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise ValueError("the evaluation ran")

    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    monkeypatch.setattr("waveflow_py.evaluation.perceptual.require", lambda *a: None)
    Path("rep").mkdir()
    Path("rep/report.md").write_text("my own notes\n")
    argv = ["eval", "--model", str(release), "--data", str(here), "-o"]
    rc, err = _run([*argv, "rep"], capsys)
    assert rc == 2 and "rep/report.md already exists and was not written by waveflow eval" in err
    assert "pass --overwrite" in err and Path("rep/report.md").read_text() == "my own notes\n"
    Path("a-file").write_text("x")
    rc, err = _run([*argv, "a-file/rep"], capsys)
    assert rc == 2 and "-o a-file/rep: cannot write there" in err
    rc, err = _run([*argv, "a-file"], capsys)
    assert rc == 2 and "-o a-file: expected a directory, found a file" in err
    assert not calls  # refused before the (long) evaluation ran
    rc, err = _run([*argv, "rep", "--overwrite"], capsys)
    assert calls and "the evaluation ran" in err  # --overwrite lets it through


# ----------------------------------------------------------------------------- --device
@pytest.mark.parametrize(
    "device, message",
    [("foo", "--device 'foo': not a torch device"), ("cuda:99", "--device 'cuda:99': not available")],
)
def test_mel_with_a_bad_device_is_one_line(
    here: Path, device: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = _run(["mel", "good.wav", "-o", "m", "--preset", "tacotron2", "--device", device], capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and not Path("m").exists()


# ----------------------------------------------------------------------------- signals
@pytest.mark.parametrize(
    "how, code, line",
    [
        ("sigterm", 143, "waveflow vocode: terminated (SIGTERM); partial files removed"),
        ("ctrl-c", 130, "waveflow vocode: interrupted (Ctrl-C); partial files removed"),
    ],
)
def test_an_interrupted_write_leaves_no_partial_file_and_one_line(
    release: Path,
    here: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
    code: int,
    line: str,
) -> None:
    import soundfile

    real = soundfile.SoundFile.write

    def interrupted(self, data):  # the signal arrives in the middle of writing the audio
        real(self, data[: len(data) // 2])
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(soundfile.SoundFile, "write", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    rc, err = _run(["vocode", "good.wav", "-o", "out", "--model", str(release), "-q"], capsys)
    assert rc == code and err.strip().splitlines()[-1] == line
    assert not Path("out").exists() or not list(Path("out").iterdir())  # no .good.XXXX.wav left
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only


def test_export_onnx_into_a_directory_is_refused_and_leaves_no_partial(
    release: Path, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("dir").mkdir()
    rc, err = _run(["export-onnx", str(release), "-o", "dir", "--force"], capsys)
    assert rc == 2 and "-o dir is a directory: give the .onnx file to write" in err
    assert sorted(p.name for p in here.iterdir()) == ["dir", "good.wav"]  # no dir.partial


def test_export_onnx_failing_midway_removes_its_partial(
    release: Path, here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx")
    import torch

    def broken(model, args, f, **kwargs):
        Path(f).write_bytes(b"half a graph")
        raise ValueError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    rc, err = _run(["export-onnx", str(release), "-o", "m.onnx"], capsys)
    assert rc == 2 and "exporter failed" in err
    assert sorted(p.name for p in here.iterdir()) == ["good.wav"]


# ----------------------------------------------------------------------------- special files and names
@pytest.mark.parametrize("command", ["vocode", "mel"])
def test_a_fifo_or_device_is_not_a_regular_file(
    release: Path, here: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo("pipe.wav")
    inputs = ["pipe.wav"] + (["/dev/zero"] if Path("/dev/zero").exists() else [])
    extra = ["--model", str(release)] if command == "vocode" else ["--preset", "tacotron2"]
    rc, err = _run([command, *inputs, "good.wav", "-o", "out", "-q", *extra], capsys)
    assert rc == 1 and Path("out/good.npy" if command == "mel" else "out/good.wav").is_file()
    for name in inputs:
        (problem,) = [x for x in err.splitlines() if x.startswith(f"waveflow {command}: {name}: ")]
        assert problem.endswith("not a regular file (a FIFO, device or socket)"), problem
        assert "no such file" not in problem


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="file names must be valid Unicode there")
def test_non_utf8_file_names_are_read_and_written(release: Path, here: Path) -> None:
    name = os.fsdecode(b"caf\xe9")  # latin-1 bytes: not valid UTF-8
    try:
        os.link("good.wav", f"{name}.wav")
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    assert main(["mel", f"{name}.wav", "-o", "m", "--preset", "tacotron2", "-q"]) == 0
    assert Path(f"m/{name}.npy").is_file()
    assert main(["vocode", f"m/{name}.npy", f"{name}.wav", "-o", "v", "--model", str(release), "-q"]) == 0
    assert sorted(os.listdir(b"v")) == [b"caf\xe9.wav", b"caf\xe9_2.wav"]


# ----------------------------------------------------------------------------- hints name real flags
def test_hints_name_the_flags_each_command_has(
    release: Path, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf.write("silent.wav", np.zeros(4000, np.float32), SR)
    sf.write("rate.wav", np.full(4000, 0.1, np.float32), 16000)
    rc, err = _run(["vocode", "silent.wav", "rate.wav", "-o", "v", "--model", str(release), "-q"], capsys)
    assert rc == 1 and "silent (all samples are zero); pass --allow-silent to accept it" in err
    assert "16000 Hz but 22050 Hz is required; pass --resample to convert it" in err
    assert "=True" not in err  # no keyword of the Python API in a command's hint
    assert main(["vocode", "silent.wav", "-o", "v", "--model", str(release), "-q", "--allow-silent"]) == 0
    rc, err = _run(["mel", "rate.wav", "-o", "m", "--preset", "tacotron2", "--no-resample", "-q"], capsys)
    assert rc == 1 and "drop --no-resample to resample it" in err and "=True" not in err
    rc, err = _run(["demo", "--input", "silent.wav", "--model", str(release), "-o", "d"], capsys)
    assert rc == 2 and "pass --input with a recording that is not silent" in err and "=True" not in err


# ----------------------------------------------------------------------------- recipes use the venv
def test_recipes_run_the_venvs_python(tmp_path: Path) -> None:
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "recipes" / "stages.sh", tmp_path / "stages.sh")

    def py(env_py: str | None = None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PY"} | ({"PY": env_py} if env_py else {})
        cmd = ["bash", "-c", "source ./stages.sh && echo $PY"]
        return subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert py() == "python"  # no .venv: whatever python is on PATH
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("#!/bin/sh\n")
    (tmp_path / ".venv" / "bin" / "python").chmod(0o755)
    assert py() == ".venv/bin/python"  # `make demo` made one: the recipes use it
    assert py("/opt/py") == "/opt/py"  # PY still overrides
    for script in (repo / "recipes").glob("*/run.sh"):
        text = script.read_text()
        assert "source recipes/stages.sh" in text or '"$PY" -m waveflow_py' in text, script
        assert "\nwaveflow " not in text and "\npython " not in text, script

"""Every ``waveflow`` subcommand on bad input: a one-line error that names the problem (each case states
the message it expects), no traceback, a non-zero exit, and no input file modified. Runs in-process
(``main(argv)``), so an exception escaping ``main`` *is* the traceback a user would see.

The subcommands come from the CLI registry (:data:`waveflow_py.cli.COMMANDS`): each gets the generic
probes (an unknown option, a missing file, a corrupt file as its argument), and
:data:`CASES` holds the specific bad inputs of each; a newly registered subcommand without an entry
there fails :func:`test_every_registered_subcommand_has_specific_cases`.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from waveflow_py.cli import COMMANDS, main
from waveflow_py.pretrained import build_random_release

SR = 22050
TINY_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "config.yaml"  # a valid config


def _shipped() -> list[str]:
    names = []
    for name, modname in COMMANDS.items():
        try:
            importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # registered but not shipped in this build (see build_parser)
                continue
            raise
        names.append(name)
    return names


SHIPPED = _shipped()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_release(tmp_path_factory.mktemp("rel") / "tiny")


@pytest.fixture
def files(tmp_path: Path, release: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Good and bad inputs in ``tmp_path`` (also the working directory, so nothing lands elsewhere)."""
    monkeypatch.chdir(tmp_path)
    t = np.arange(int(0.2 * SR)) / SR
    sf.write(tmp_path / "good.wav", (0.3 * np.sin(2 * math.pi * 220 * t)).astype(np.float32), SR)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 this is not a torch file")
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "corrupt.yaml").write_text("train: [1, 2\nmodel: {\n")
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    bad_release = tmp_path / "bad-release"
    bad_release.mkdir()
    (bad_release / "config.json").write_text("{ not json")
    (bad_release / "model.safetensors").write_bytes(b"\x00" * 16)
    (tmp_path / "a-file").write_text("I am a file, not a directory\n")
    return {
        "release": release,
        "good": tmp_path / "good.wav",
        "corrupt_wav": tmp_path / "corrupt.wav",
        "corrupt_pt": tmp_path / "corrupt.pt",
        "strings": tmp_path / "strings.npy",
        "corrupt_yaml": tmp_path / "corrupt.yaml",
        "empty_yaml": tmp_path / "empty.yaml",
        "bad_release": bad_release,
        "missing": tmp_path / "missing.wav",
        "unwritable": tmp_path / "a-file" / "out",  # a path under a regular file cannot be created
        "tmp": tmp_path,
    }


Argv = Callable[[dict[str, Path]], list[str]]


def _peer() -> str:
    """A project name ``waveflow import --from`` accepts."""
    from waveflow_py.cli.import_peer import PEER_NAMES

    return sorted(PEER_NAMES)[0]


# specific bad inputs per subcommand: (case id, argv builder)
CASES: dict[str, list[tuple[str, Argv, str]]] = {
    "vocode": [
        (
            "file name for several inputs",
            lambda f: [
                "vocode",
                str(f["good"]),
                str(f["corrupt_wav"]),
                "-o",
                "two.wav",
                "--model",
                str(f["release"]),
            ],
            "-o two.wav is a file name, but 2 inputs were given",
        ),
        (
            "bad temperature",
            lambda f: ["vocode", str(f["good"]), "-o", "out", "--temperature", "-1"],
            "argument --temperature: expected a finite number >= 0",
        ),
        (
            "bad denoise",
            lambda f: ["vocode", str(f["good"]), "-o", "out", "--denoise", "1e9"],
            "argument --denoise: expected a strength in [0, 1]",
        ),
        (
            "missing file",
            lambda f: ["vocode", str(f["missing"]), "-o", "out", "--model", str(f["release"])],
            "missing.wav: no such file or directory",
        ),
        (
            "corrupt .pt",
            lambda f: ["vocode", str(f["corrupt_pt"]), "-o", "out", "--model", str(f["release"])],
            "corrupt.pt: cannot read the .pt file, it is corrupt or not a mel",
        ),
        (
            "string .npy",
            lambda f: ["vocode", str(f["strings"]), "-o", "out", "--model", str(f["release"])],
            "strings.npy: expected a float mel array, got dtype <U1",
        ),
        (
            "corrupt wav",
            lambda f: ["vocode", str(f["corrupt_wav"]), "-o", "o", "--model", str(f["release"])],
            "corrupt.wav: cannot decode audio, the file is corrupt, truncated or not audio",
        ),
        (
            "corrupt release",
            lambda f: ["vocode", str(f["good"]), "-o", "out", "--model", str(f["bad_release"])],
            "config.json: not valid JSON",
        ),
        (
            "bad option",
            lambda f: ["vocode", str(f["good"]), "-o", "out", "--batch-size", "0"],
            "argument --batch-size: expected an integer >= 1, got '0'",
        ),
        (
            "output is the input",
            lambda f: ["vocode", str(f["good"]), "-o", str(f["good"]), "--model", str(f["release"])],
            "refusing to overwrite an input",
        ),
        (
            "output dir is the input dir",
            lambda f: ["vocode", str(f["tmp"]), "-o", str(f["tmp"]), "--model", str(f["release"])],
            "refusing to overwrite an input",
        ),
    ],
    "mel": [
        (
            "bad device",
            lambda f: ["mel", str(f["good"]), "-o", "out", "--device", "foo"],
            "--device 'foo': not a torch device",
        ),
        (
            "missing file",
            lambda f: ["mel", str(f["missing"]), "-o", "out"],
            "missing.wav: no such file or directory",
        ),
        (
            "corrupt wav",
            lambda f: ["mel", str(f["corrupt_wav"]), "-o", "out"],
            "corrupt.wav: cannot decode audio, the file is corrupt, truncated or not audio",
        ),
        (
            "bad option",
            lambda f: ["mel", str(f["good"]), "-o", "out", "--preset", "no-such-preset"],
            "unknown mel preset 'no-such-preset'; available:",
        ),
        (
            "unwritable output",
            lambda f: ["mel", str(f["good"]), "-o", str(f["unwritable"])],
            "cannot write there",
        ),
        (
            "corrupt release",
            lambda f: ["mel", str(f["good"]), "-o", "out", "--model", str(f["bad_release"])],
            "config.json: not valid JSON",
        ),
    ],
    "info": [
        (
            "missing release",
            lambda f: ["info", str(f["tmp"] / "no-such-release")],
            "release directory not found",
        ),
        ("corrupt release", lambda f: ["info", str(f["bad_release"])], "config.json: not valid JSON"),
        ("bad option", lambda f: ["info", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
    "train": [
        ("missing config", lambda f: ["train", str(f["tmp"] / "missing.yaml")], "config file not found: "),
        ("invalid YAML", lambda f: ["train", str(f["corrupt_yaml"])], "corrupt.yaml: invalid YAML"),
        ("empty config", lambda f: ["train", str(f["empty_yaml"])], "empty.yaml: the config is empty"),
        (
            "bad override",
            lambda f: ["train", str(TINY_CONFIG), "--set", "no-equals-sign"],
            "no-equals-sign",
        ),
        (
            "resume without checkpoints",
            lambda f: ["train", str(TINY_CONFIG), "--resume", str(f["tmp"])],
            "no checkpoint found at",
        ),
    ],
    "bench": [
        ("bad option", lambda f: ["bench", "--threads", "0"], "--threads: expected >= 1, got 0"),
        ("bad choice", lambda f: ["bench", "--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    ],
    "eval": [
        (
            "missing release",
            lambda f: ["eval", "--model", str(f["tmp"] / "nope"), "--data", str(f["tmp"]), "-o", "rep"],
            "release directory not found",
        ),
        (
            "corrupt release",
            lambda f: ["eval", "--model", str(f["bad_release"]), "--data", str(f["tmp"]), "-o", "rep"],
            "config.json: not valid JSON",
        ),
        (
            "missing data",
            lambda f: ["eval", "--model", str(f["release"]), "--data", str(f["missing"]), "-o", "rep"],
            "missing.wav: no such file or directory",
        ),
        (
            "bad option",
            lambda f: [
                "eval",
                "--model",
                str(f["release"]),
                "--data",
                str(f["tmp"]),
                "-o",
                "rep",
                "--gl-iters",
                "0",
            ],
            "--gl-iters: expected a positive integer, got 0",
        ),
    ],
    "toy2d": [
        (
            "missing config",
            lambda f: ["toy2d", "-o", "toy", "--config", str(f["tmp"] / "missing.yaml")],
            "config file not found: ",
        ),
        (
            "invalid YAML",
            lambda f: ["toy2d", "-o", "toy", "--config", str(f["corrupt_yaml"])],
            "corrupt.yaml: invalid YAML",
        ),
        (
            "empty config",
            lambda f: ["toy2d", "-o", "toy", "--config", str(f["empty_yaml"])],
            "empty.yaml: the config is empty",
        ),
        (
            "bad option",
            lambda f: ["toy2d", "-o", "toy", "--families", "no-such-family"],
            "unknown family 'no-such-family'",
        ),
    ],
    "demo": [
        (
            "missing input",
            lambda f: ["demo", "--input", str(f["missing"]), "--model", str(f["release"])],
            "example input not found: ",
        ),
        (
            "corrupt input",
            lambda f: ["demo", "--input", str(f["corrupt_wav"]), "--model", str(f["release"])],
            "corrupt.wav: cannot decode audio",
        ),
        (
            "corrupt release",
            lambda f: ["demo", "--input", str(f["good"]), "--model", str(f["bad_release"])],
            "config.json: not valid JSON",
        ),
        (
            "unwritable output",
            lambda f: [
                "demo",
                "--input",
                str(f["good"]),
                "--model",
                str(f["release"]),
                "-o",
                str(f["unwritable"]),
            ],
            "cannot write there",
        ),
        (
            "output is the input",
            lambda f: [
                "demo",
                "--input",
                str(f["good"]).replace("good", "input"),
                "--model",
                str(f["release"]),
                "-o",
                str(f["tmp"]),
            ],
            "refusing to overwrite an input",
        ),
    ],
    "import": [
        (
            "missing checkpoint",
            lambda f: ["import", str(f["missing"]), "--from", _peer(), "-o", "imported"],
            "checkpoint not found: ",
        ),
        (
            "corrupt checkpoint",
            lambda f: ["import", str(f["corrupt_pt"]), "--from", _peer(), "-o", "imported"],
            "corrupt.pt: truncated or corrupt torch checkpoint",
        ),
        (
            "bad option",
            lambda f: ["import", str(f["corrupt_pt"]), "--from", "no-such-project", "-o", "x"],
            "argument --from: invalid choice: 'no-such-project'",
        ),
    ],
    "train-pitch": [
        (
            "missing data",
            lambda f: ["train-pitch", str(f["tmp"] / "no-corpus"), "--out", "p", "--preset", "16k"],
            "pitch training data not found: ",
        ),
        (
            "no train split",
            lambda f: ["train-pitch", str(f["tmp"]), "--out", "p", "--preset", "16k"],
            "no train split to learn from",
        ),
        (
            "output is a file",
            lambda f: ["train-pitch", str(f["tmp"]), "--out", str(f["good"]), "--preset", "16k"],
            "exists and is not a directory",
        ),
        (
            "bad option",
            lambda f: ["train-pitch", str(f["tmp"]), "--out", "p", "--steps", "many"],
            "argument --steps: invalid int value: 'many'",
        ),
    ],
    "export-onnx": [
        (
            "output is a directory",
            lambda f: ["export-onnx", str(f["release"]), "-o", str(f["tmp"]), "--force"],
            "is a directory: give the .onnx file to write",
        ),
        (
            "missing release",
            lambda f: ["export-onnx", str(f["tmp"] / "no-such-release"), "-o", "m.onnx"],
            "release directory not found",
        ),
        (
            "corrupt release",
            lambda f: ["export-onnx", str(f["bad_release"]), "-o", "m.onnx"],
            "config.json: not valid JSON",
        ),
        (
            "bad option",
            lambda f: ["export-onnx", str(f["release"]), "-o", "m.onnx", "--opset", "seventeen"],
            "argument --opset: invalid int value: 'seventeen'",
        ),
    ],
}

# the generic probes reach the argument parser (a required argument missing, an unknown one) or the
# command itself, which names the file
GENERIC: list[tuple[str, Argv, str]] = [
    (
        "unknown option",
        lambda f: ["--definitely-not-an-option"],
        r"unrecognized arguments: --definitely-not-an-option|the following arguments are required",
    ),
    (
        "missing file",
        lambda f: [str(f["missing"])],
        r"missing\.wav|the following arguments are required",
    ),
    (
        "corrupt file",
        lambda f: [str(f["corrupt_pt"])],
        r"corrupt\.pt|the following arguments are required",
    ),
]


def _snapshot(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(argv)`` in-process: its exit status and stderr. Any exception other than argparse's
    SystemExit propagates and fails the test: that is a traceback."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    return rc, capsys.readouterr().err


def _check(
    name: str,
    case: str,
    argv: list[str],
    expected: str,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Non-zero exit, no traceback, the problem named (``expected``, a regex) on a line of its own that
    starts with ``waveflow``, and no input file modified."""
    if name == "demo" and case == "output is the input":  # --input is OUT/input.wav
        (files["tmp"] / "input.wav").write_bytes(files["good"].read_bytes())
    before = _snapshot(files["tmp"])
    rc, err = _run(argv, capsys)
    assert rc != 0, (argv, err)
    assert "Traceback" not in err, err
    errors = [
        line for line in err.splitlines() if "error" in line.lower() or line.startswith(f"waveflow {name}: ")
    ]
    assert errors, f"no error message on stderr for {argv}: {err!r}"
    for line in errors:  # each problem on one line of its own, from the command (or its argument parser)
        assert line.startswith("waveflow"), line
    assert any(re.search(expected, line) for line in errors), f"{argv}: expected {expected!r} in {errors}"
    after = _snapshot(files["tmp"])
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"{argv} modified or removed input files: {changed}"
    return err


def test_every_registered_subcommand_has_specific_cases() -> None:
    missing = sorted(set(SHIPPED) - set(CASES))
    assert not missing, f"add bad-input cases for the new subcommand(s) {missing} to CASES in {__file__}"


@pytest.mark.parametrize(
    "name, case",
    [(n, c) for n in SHIPPED for c in GENERIC],
    ids=[f"{n}-{c[0]}" for n in SHIPPED for c in GENERIC],
)
def test_generic_bad_input(name: str, case: tuple[str, Argv, str], files, capsys) -> None:
    _check(name, case[0], [name, *case[1](files)], case[2], files, capsys)


@pytest.mark.parametrize(
    "name, case",
    [(n, c) for n in CASES if n in SHIPPED for c in CASES[n]],
    ids=[f"{n}-{c[0]}" for n in CASES if n in SHIPPED for c in CASES[n]],
)
def test_specific_bad_input(name: str, case: tuple[str, Argv, str], files, capsys) -> None:
    _check(name, case[0], case[1](files), re.escape(case[2]), files, capsys)

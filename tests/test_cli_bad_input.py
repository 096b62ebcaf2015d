"""Every ``waveflow`` subcommand on bad input: a one-line error, no traceback, a non-zero exit, and no
input file modified. Runs in-process (``main(argv)``), so an exception escaping ``main`` *is* the
traceback a user would see.

The subcommands come from the CLI registry (:data:`waveflow_py.cli.COMMANDS`): each gets the generic
probes (an unknown option, a missing file, a corrupt file as its argument), and
:data:`CASES` holds the specific bad inputs of each; a newly registered subcommand without an entry
there fails :func:`test_every_registered_subcommand_has_specific_cases`.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from waveflow_py.cli import COMMANDS, main
from waveflow_py.pretrained import build_random_release

SR = 22050


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
CASES: dict[str, list[tuple[str, Argv]]] = {
    "vocode": [
        ("missing file", lambda f: ["vocode", str(f["missing"]), "-o", "out", "--model", str(f["release"])]),
        (
            "corrupt .pt",
            lambda f: ["vocode", str(f["corrupt_pt"]), "-o", "out", "--model", str(f["release"])],
        ),
        ("string .npy", lambda f: ["vocode", str(f["strings"]), "-o", "out", "--model", str(f["release"])]),
        ("corrupt wav", lambda f: ["vocode", str(f["corrupt_wav"]), "-o", "o", "--model", str(f["release"])]),
        (
            "corrupt release",
            lambda f: ["vocode", str(f["good"]), "-o", "out", "--model", str(f["bad_release"])],
        ),
        ("bad option", lambda f: ["vocode", str(f["good"]), "-o", "out", "--batch-size", "0"]),
        (
            "output is the input",
            lambda f: ["vocode", str(f["good"]), "-o", str(f["good"]), "--model", str(f["release"])],
        ),
        (
            "output dir is the input dir",
            lambda f: ["vocode", str(f["tmp"]), "-o", str(f["tmp"]), "--model", str(f["release"])],
        ),
    ],
    "mel": [
        ("missing file", lambda f: ["mel", str(f["missing"]), "-o", "out"]),
        ("corrupt wav", lambda f: ["mel", str(f["corrupt_wav"]), "-o", "out"]),
        ("bad option", lambda f: ["mel", str(f["good"]), "-o", "out", "--preset", "no-such-preset"]),
        ("unwritable output", lambda f: ["mel", str(f["good"]), "-o", str(f["unwritable"])]),
        ("corrupt release", lambda f: ["mel", str(f["good"]), "-o", "out", "--model", str(f["bad_release"])]),
    ],
    "info": [
        ("missing release", lambda f: ["info", str(f["tmp"] / "no-such-release")]),
        ("corrupt release", lambda f: ["info", str(f["bad_release"])]),
        ("bad option", lambda f: ["info", "--no-such-flag"]),
    ],
    "train": [
        ("missing config", lambda f: ["train", str(f["tmp"] / "missing.yaml")]),
        ("invalid YAML", lambda f: ["train", str(f["corrupt_yaml"])]),
        ("empty config", lambda f: ["train", str(f["empty_yaml"])]),
        ("bad override", lambda f: ["train", str(f["empty_yaml"]), "--set", "no-equals-sign"]),
        (
            "resume without checkpoints",
            lambda f: ["train", str(f["corrupt_yaml"]), "--resume", str(f["tmp"])],
        ),
    ],
    "bench": [
        ("bad option", lambda f: ["bench", "--threads", "0"]),
        ("bad choice", lambda f: ["bench", "--dtype", "int8"]),
    ],
    "eval": [
        (
            "missing release",
            lambda f: ["eval", "--model", str(f["tmp"] / "nope"), "--data", str(f["tmp"]), "-o", "rep"],
        ),
        (
            "corrupt release",
            lambda f: ["eval", "--model", str(f["bad_release"]), "--data", str(f["tmp"]), "-o", "rep"],
        ),
        (
            "missing data",
            lambda f: ["eval", "--model", str(f["release"]), "--data", str(f["missing"]), "-o", "rep"],
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
        ),
    ],
    "toy2d": [
        ("missing config", lambda f: ["toy2d", "-o", "toy", "--config", str(f["tmp"] / "missing.yaml")]),
        ("invalid YAML", lambda f: ["toy2d", "-o", "toy", "--config", str(f["corrupt_yaml"])]),
        ("empty config", lambda f: ["toy2d", "-o", "toy", "--config", str(f["empty_yaml"])]),
        ("bad option", lambda f: ["toy2d", "-o", "toy", "--families", "no-such-family"]),
    ],
    "demo": [
        ("missing input", lambda f: ["demo", "--input", str(f["missing"]), "--model", str(f["release"])]),
        ("corrupt input", lambda f: ["demo", "--input", str(f["corrupt_wav"]), "--model", str(f["release"])]),
        ("corrupt release", lambda f: ["demo", "--input", str(f["good"]), "--model", str(f["bad_release"])]),
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
        ),
    ],
    "import": [
        ("missing checkpoint", lambda f: ["import", str(f["missing"]), "--from", _peer(), "-o", "imported"]),
        (
            "corrupt checkpoint",
            lambda f: ["import", str(f["corrupt_pt"]), "--from", _peer(), "-o", "imported"],
        ),
        ("bad option", lambda f: ["import", str(f["corrupt_pt"]), "--from", "no-such-project", "-o", "x"]),
    ],
    "export-onnx": [
        ("missing release", lambda f: ["export-onnx", str(f["tmp"] / "no-such-release"), "-o", "m.onnx"]),
        ("corrupt release", lambda f: ["export-onnx", str(f["bad_release"]), "-o", "m.onnx"]),
        ("bad option", lambda f: ["export-onnx", str(f["release"]), "-o", "m.onnx", "--opset", "seventeen"]),
    ],
}

GENERIC: list[tuple[str, Argv]] = [
    ("unknown option", lambda f: ["--definitely-not-an-option"]),
    ("missing file", lambda f: [str(f["missing"])]),
    ("corrupt file", lambda f: [str(f["corrupt_pt"])]),
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


def _check(name: str, argv: list[str], files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> str:
    if name == "demo" and "output is the input" in " ".join(argv):  # --input is OUT/input.wav
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
def test_generic_bad_input(name: str, case: tuple[str, Argv], files, capsys) -> None:
    _check(name, [name, *case[1](files)], files, capsys)


@pytest.mark.parametrize(
    "name, case",
    [(n, c) for n in CASES if n in SHIPPED for c in CASES[n]],
    ids=[f"{n}-{c[0]}" for n in CASES if n in SHIPPED for c in CASES[n]],
)
def test_specific_bad_input(name: str, case: tuple[str, Argv], files, capsys) -> None:
    _check(name, case[1](files), files, capsys)

"""The output guard shared by the commands that write files (``vocode``, ``mel``, ``demo``).

Before anything is written: an output that resolves to one of the command's inputs (same path after
symlinks, or the same file through a hard link) is always refused; an existing file that is not an
earlier output of the same command is refused unless ``--overwrite``. Each command says what counts as
its own output (e.g. audio files whose ``software`` tag names the command, see
:func:`waveflow_py.audio.audio_software`), so re-running a command into the same folder just works.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["add_overwrite_argument", "check_outputs", "is_tagged_audio", "software_tag"]


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files that this command did not write (never an input file)",
    )


def software_tag(command: str) -> str:
    """The tag written into audio outputs of ``waveflow <command>``."""
    return f"waveflow {command}"


def is_tagged_audio(path: Path, command: str) -> bool:
    """Whether ``path`` is an audio file written by ``waveflow <command>`` (its software tag)."""
    from waveflow_py.audio import audio_software

    return (audio_software(path) or "").startswith(software_tag(command))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs(
    command: str,
    targets: Iterable[Path],
    inputs: Iterable[Path],
    *,
    overwrite: bool,
    ours: Callable[[Path], bool],
) -> None:
    """Raise ``ValueError`` (one line, nothing written yet) when a target is an input, is a directory,
    or exists and is not ``ours`` while ``overwrite`` is off."""
    inputs = [Path(p) for p in inputs]
    by_path = {Path(os.path.realpath(p)): p for p in inputs}
    by_inode = {ident: p for p in inputs if (ident := _identity(p)) is not None}
    foreign: list[Path] = []
    for target in targets:
        target = Path(target)
        same = by_path.get(Path(os.path.realpath(target)))
        if same is None and target.exists():
            same = by_inode.get(_identity(target))  # type: ignore[arg-type]
        if same is not None:
            raise ValueError(f"output {target} is the input {same}: refusing to overwrite an input")
        if target.is_dir():
            raise ValueError(f"output {target} is an existing directory")
        if target.exists() and not overwrite and not ours(target):
            foreign.append(target)
    if foreign:
        what = (
            f"{foreign[0]} and {len(foreign) - 1} more already exist and were"
            if len(foreign) > 1
            else (f"{foreign[0]} already exists and was")
        )
        raise ValueError(
            f"output {what} not written by waveflow {command}: "
            "pass --overwrite to replace, or choose another -o"
        )

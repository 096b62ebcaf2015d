"""Atomic file writes: a temp file beside the target, fsynced, then ``os.replace``d into place.

A crash at any moment leaves either the old file or the new one, never a torn one. Used for audio,
features, releases, checkpoints and reports alike.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "fsync_path", "sha256_file"]


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a directory (silently skipped where the file system cannot fsync directories)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], mode: int = 0o644) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then move it into place.

    The temp file keeps ``path``'s suffix (writers such as soundfile pick the format from it), gets
    permissions ``mode`` (mkstemp makes 0600 files) and is removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem if _encodable(path.stem) else "partial"  # writers that encode names need valid text
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, mode)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def _encodable(name: str) -> bool:
    """Whether ``name`` is valid text (not a non-UTF-8 file name's surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (releases, checkpoints and imports record it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

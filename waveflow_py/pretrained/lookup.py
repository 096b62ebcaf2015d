"""Where releases are found: a bundled name or a directory -> the release directory.

Search order for names (:func:`release_dirs`), first match wins:

1. every directory in the ``WAVEFLOW_PRETRAINED_DIR`` environment variable (``os.pathsep``-separated);
2. ``pretrained/`` at the root of the source tree, found relative to this package (a git checkout or
   an editable install: ``pip install -e .``; recognised by the ``pyproject.toml`` beside it).

A non-editable install (a wheel) bundles no weights: they are large and versioned separately from the
code. Point ``WAVEFLOW_PRETRAINED_DIR`` at a folder of releases, or pass a release directory's path.

The default release (:func:`default_release`) is the ``WAVEFLOW_DEFAULT_MODEL`` environment variable
(a name or a directory) if set, else the name written in a ``DEFAULT`` file of the first search
directory that has one, else the only bundled release if there is exactly one. A release whose name
ends in ``-preview`` (:data:`PREVIEW_SUFFIX`: trained, but not yet better than Griffin-Lim on dev; its
model card says why) is never picked by that last rule: it is used only when named (``make demo`` names
it through :func:`preview_release`, and labels its output as a preview).
"""

from __future__ import annotations

import os
from pathlib import Path

from waveflow_py.pretrained.errors import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ReleaseFileMissingError,
    ReleaseNotFoundError,
)

__all__ = [
    "ENV_DIR",
    "ENV_DEFAULT",
    "PREVIEW_SUFFIX",
    "release_dirs",
    "list_releases",
    "resolve_release",
    "default_release",
    "preview_release",
    "is_preview_name",
    "default_model",
]

ENV_DIR = "WAVEFLOW_PRETRAINED_DIR"
ENV_DEFAULT = "WAVEFLOW_DEFAULT_MODEL"
PREVIEW_SUFFIX = "-preview"
_SOURCE_PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"


def release_dirs() -> list[Path]:
    """The directories searched for bundled release names, in order (see the module docstring)."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_DIR, "").split(os.pathsep) if p.strip()]
    # only a source tree (pyproject.toml beside the package); in site-packages there is none to use
    if (_SOURCE_PRETRAINED.parent / "pyproject.toml").is_file():
        dirs.append(_SOURCE_PRETRAINED)
    return dirs


def list_releases() -> list[str]:
    """Names of the bundled releases: subfolders of :func:`release_dirs` that hold a config.json."""
    names: list[str] = []
    for d in release_dirs():
        if d.is_dir():
            for sub in sorted(d.iterdir()):
                if (sub / CONFIG_FILE).is_file() and sub.name not in names:
                    names.append(sub.name)
    return names


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.startswith(".") or name.startswith("~")


def resolve_release(name_or_dir: str | os.PathLike[str]) -> Path:
    """A release directory from a directory path or a bundled name; ReleaseNotFoundError otherwise."""
    text = os.fspath(name_or_dir)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ReleaseFileMissingError(
                f"{path} is not a release: expected {CONFIG_FILE} and {WEIGHTS_FILE} in it"
            )
        return path
    if not _looks_like_path(text) and not isinstance(name_or_dir, Path):
        for d in release_dirs():
            if (d / text / CONFIG_FILE).is_file():
                return d / text
        available = list_releases()
        listed = ", ".join(available) if available else "none bundled"
        raise ReleaseNotFoundError(
            f"unknown release {text!r}; available: {listed} (searched {[str(d) for d in release_dirs()]}; "
            f"set {ENV_DIR} or pass a release directory)"
        )
    raise ReleaseNotFoundError(f"release directory not found: {path}")


def default_release() -> str:
    """The name (or directory) used when none is given; ReleaseNotFoundError explains how to get one."""
    env = os.environ.get(ENV_DEFAULT, "").strip()
    if env:
        return env
    for d in release_dirs():
        marker = d / "DEFAULT"
        if marker.is_file():
            name = marker.read_text(encoding="utf-8").strip()
            if name:
                return name
    bundled = list_releases()
    available = [n for n in bundled if not is_preview_name(n)]
    if len(available) == 1:
        return available[0]
    if not available and bundled:
        raise ReleaseNotFoundError(
            f"no default model: only preview releases are bundled ({', '.join(bundled)}): trained, but not "
            "yet better than Griffin-Lim on dev (see each one's README.md); pass one by name to use it"
        )
    if not available:
        raise ReleaseNotFoundError(
            "no default model: no release is bundled (searched "
            f"{[str(d) for d in release_dirs()]}). Train one (`waveflow train`) and save it with "
            "waveflow_py.pretrained.save_release / Vocoder.save_pretrained, then pass its directory, "
            f"or set {ENV_DIR} to a folder of releases or {ENV_DEFAULT} to one release. "
            "`waveflow demo` builds an untrained one to show the pipeline."
        )
    raise ReleaseNotFoundError(
        f"no default model: {len(available)} releases are bundled ({', '.join(available)}); "
        f"pick one by name, or set {ENV_DEFAULT}, or write its name in pretrained/DEFAULT"
    )


def is_preview_name(name: str | os.PathLike[str]) -> bool:
    """Whether a release name (or directory) marks a preview (:data:`PREVIEW_SUFFIX`)."""
    return Path(os.fspath(name)).name.endswith(PREVIEW_SUFFIX)


def preview_release() -> str | None:
    """The first bundled preview release's name (what ``make demo`` uses while there is no default)."""
    return next((n for n in list_releases() if is_preview_name(n)), None)


def default_model() -> tuple[str, str]:
    """The release whose settings apply when a command is given none (``waveflow mel``'s mel settings),
    and why: :func:`default_release` while there is one; while none ships (only previews are bundled), the
    bundled preview, whose features are the ones the bundled model needs. ReleaseNotFoundError otherwise."""
    try:
        return default_release(), "the default model"
    except ReleaseNotFoundError:
        bundled = list_releases()
        preview = preview_release()
        if preview is None or any(not is_preview_name(n) for n in bundled):
            raise
        return preview, "the bundled preview model: no default model ships yet"

"""Errors of the checkpoint importers: every one is a ``ValueError`` with a one-line message."""

from __future__ import annotations

__all__ = ["CheckpointImportError", "UnsafeCheckpointError"]


class CheckpointImportError(ValueError):
    """A peer checkpoint cannot be read or does not fit: truncated/corrupt, the wrong kind of checkpoint,
    a config that disagrees with the tensors, or tensors that cannot be mapped."""


class UnsafeCheckpointError(CheckpointImportError):
    """The pickle asks for a global outside the allowed tensors, containers and module records (it could
    run code); nothing from it was run."""

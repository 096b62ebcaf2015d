"""Release file names, the format version, and the errors raised for a bad or missing release."""

from __future__ import annotations

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "MANIFEST_FILE",
    "ReleaseError",
    "ReleaseNotFoundError",
    "ReleaseFileMissingError",
    "ReleaseChecksumError",
    "ReleaseFormatError",
    "ReleaseWeightsMismatchError",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "SHA256SUMS"  # sha256 of CONFIG_FILE and WEIGHTS_FILE, as `sha256sum` writes them


class ReleaseError(ValueError):
    """A release cannot be found, read or trusted; the message says what was expected and found."""


class ReleaseNotFoundError(ReleaseError):
    """No release of that name (the message lists the available ones) or no such directory."""


class ReleaseFileMissingError(ReleaseError):
    """A file the release needs (config.json, model.safetensors) is not in its directory."""


class ReleaseChecksumError(ReleaseError):
    """A file's sha256 differs from the one recorded in SHA256SUMS or config.json (corrupt or altered)."""


class ReleaseFormatError(ReleaseError):
    """config.json is not valid JSON, has an unknown ``format_version`` or an invalid model config."""


class ReleaseWeightsMismatchError(ReleaseError):
    """The weights do not fit the model built from the config: missing/unexpected keys or shapes."""

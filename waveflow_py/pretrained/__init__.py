"""Releases: a vocoder as a directory of plain data + safetensors weights, loadable by name or path.

A release directory holds exactly three files::

    config.json          plain JSON, written last (a directory with a config.json is complete):
                           format_version  1
                           model_type      a key of ``waveflow_py.models.MODELS`` ("waveflow", "waveglow")
                           model           the model config (``to_dict``), mel settings included, so
                                           features can never mismatch the weights
                           sample_rate     = model.mel.sample_rate (checked on load)
                           provenance      where the weights come from: training data, steps, hardware,
                                           date, git commit -- or {"weights": "untrained (random)"}
                           files           {"model.safetensors": {"sha256": "...", "bytes": N}}
    model.safetensors    the state dict (tensors only: loading never runs pickle)
    SHA256SUMS           the sha256 of config.json and model.safetensors (``sha256sum -c SHA256SUMS``
                         checks them); releases written before it existed still load (their weights are
                         checked against config.json's record, their config is not hash-checked)

Names are looked up in ``WAVEFLOW_PRETRAINED_DIR`` and then in the source tree's ``pretrained/``
folder; a wheel install bundles no weights (see :mod:`waveflow_py.pretrained.lookup`, which also says
how the default release is chosen: ``WAVEFLOW_DEFAULT_MODEL``).

Every failure is a :class:`ReleaseError` (a ``ValueError``) saying what was expected and what was found.
"""

from __future__ import annotations

from waveflow_py.pretrained.errors import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ReleaseChecksumError,
    ReleaseError,
    ReleaseFileMissingError,
    ReleaseFormatError,
    ReleaseNotFoundError,
    ReleaseWeightsMismatchError,
)
from waveflow_py.pretrained.lookup import (
    ENV_DEFAULT,
    ENV_DIR,
    PREVIEW_SUFFIX,
    default_model,
    default_release,
    is_preview_name,
    list_releases,
    preview_release,
    release_dirs,
    resolve_release,
)
from waveflow_py.pretrained.release import (
    ReleaseInfo,
    load_release,
    load_release_config,
    parse_dtype,
    save_release,
)
from waveflow_py.pretrained.tiny import UNTRAINED_LABEL, build_random_release

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "MANIFEST_FILE",
    "ENV_DIR",
    "ENV_DEFAULT",
    "ReleaseError",
    "ReleaseNotFoundError",
    "ReleaseFileMissingError",
    "ReleaseChecksumError",
    "ReleaseFormatError",
    "ReleaseWeightsMismatchError",
    "ReleaseInfo",
    "save_release",
    "load_release",
    "load_release_config",
    "list_releases",
    "release_dirs",
    "resolve_release",
    "default_release",
    "default_model",
    "preview_release",
    "is_preview_name",
    "PREVIEW_SUFFIX",
    "parse_dtype",
    "build_random_release",
    "UNTRAINED_LABEL",
]

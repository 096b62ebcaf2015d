"""Saving and loading one release: config.json (plain data) + model.safetensors + SHA256SUMS over both.

Loading checks before it allocates: the config's sha256 (SHA256SUMS) before it is parsed, the weights'
sha256 before they are read, and the weights' names and shapes (from the safetensors header) against the
model built from the config under an allocation bound (:mod:`waveflow_py.pretrained.integrity`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from waveflow_py.atomic import atomic_write, sha256_file
from waveflow_py.config import MelConfig, from_dict, to_dict
from waveflow_py.dtypes import parse_dtype
from waveflow_py.pretrained.errors import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ReleaseError,
    ReleaseFileMissingError,
    ReleaseFormatError,
)
from waveflow_py.pretrained.integrity import (
    build_within,
    check_sha256,
    read_header,
    read_manifest,
    write_manifest,
)
from waveflow_py.pretrained.lookup import default_release, resolve_release
from waveflow_py.sampling import DEFAULT_SAMPLING, SamplingConfig, check_for_model, sampling_of

__all__ = ["ReleaseInfo", "save_release", "load_release", "load_release_config", "parse_dtype"]

logger = logging.getLogger(__name__)


@dataclass
class ReleaseInfo:
    """What a release holds. ``verified`` is True once the weights' sha256 matched (in load_release);
    ``config_sha256`` is the config's sha256 as SHA256SUMS records it (checked on every read), ``None``
    for a release written before manifests (its config is not hash-checked)."""

    name: str
    path: Path
    model_type: str
    config: Any  # WaveFlowConfig / WaveGlowConfig
    sample_rate: int
    provenance: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    format_version: int = FORMAT_VERSION
    verified: bool = False
    num_parameters: int | None = None
    # the sampling settings of the release (the "release" level of the one rule): its config.json's
    # ``sampling`` block, or for a release written before it, the top-level keys it stored, each missing
    # setting the library default (the pitch strength: the model's ``source_filter.pitch_strength``)
    sampling: SamplingConfig = DEFAULT_SAMPLING
    stored_sampling: dict[str, Any] = field(default_factory=dict)  # the settings config.json names
    config_sha256: str | None = None  # from SHA256SUMS (None: an older release without one)

    @property
    def temperature(self) -> float | None:
        """The temperature config.json stores (``None``: none stored, the library default applies)."""
        return self.stored_sampling.get("temperature")

    @property
    def truncation(self) -> float | None:
        """The noise truncation the release samples with (``None``: untruncated)."""
        return self.sampling.truncation

    @property
    def excitation_rms(self) -> float | None:
        """The per-frame excitation level the release samples with (``None``: off)."""
        return self.sampling.excitation_rms

    @property
    def mel(self) -> MelConfig:
        """The mel settings the model was trained on (features must be computed exactly so)."""
        return self.config.mel

    @property
    def is_preview(self) -> bool:
        """True for a preview release (name ending in ``-preview``, or ``"preview": true`` in the
        provenance): trained, but not yet better than Griffin-Lim on dev."""
        from waveflow_py.pretrained.lookup import is_preview_name

        return is_preview_name(self.path) or bool(self.provenance.get("preview"))

    @property
    def is_untrained(self) -> bool:
        """True when the provenance says the weights are random: a text value mentioning "untrained",
        a ``weights`` entry mentioning "random", or ``steps`` 0 (demo and test releases)."""
        prov = self.provenance
        texts = [str(v).lower() for v in prov.values() if isinstance(v, str)]
        return (
            any("untrained" in t for t in texts)
            or "random" in str(prov.get("weights", "")).lower()
            or prov.get("steps") == 0
        )


# ----------------------------------------------------------------------------- small helpers
def _models() -> dict[str, tuple[type[nn.Module], type]]:
    from waveflow_py.models import MODELS  # models sit below pretrained: imported on use

    return MODELS


def _model_type_of(model: nn.Module) -> str:
    for name, (cls, _cfg) in _models().items():
        if type(model) is cls:
            return name
    for name, (cls, _cfg) in _models().items():
        if isinstance(model, cls):
            return name
    raise ReleaseError(
        f"cannot save a {type(model).__name__}: expected one of {sorted(_models())} "
        "(waveflow_py.models.MODELS)"
    )


# ----------------------------------------------------------------------------- save
def save_release(
    directory: str | os.PathLike[str],
    model: nn.Module,
    *,
    provenance: Mapping[str, Any],
    sampling: SamplingConfig | None = None,
) -> Path:
    """Write ``model`` as a release in ``directory`` (created if needed); returns the directory.

    ``sampling``: the sampling settings the release recommends (:class:`~waveflow_py.sampling.SamplingConfig`;
    ``None``: the model's, ``model.sampling``), stored as the ``sampling`` block of config.json (every
    setting; ``pitch_strength: null`` means the model's ``source_filter.pitch_strength``).

    ``provenance`` must say where the weights come from (e.g. ``{"data": "LJSpeech 1.1", "steps":
    100000, "hardware": "1x H100", "date": "...", "git_commit": "..."}``, or ``{"weights": "untrained
    (random)"}``). Both files are written atomically; config.json last, so a reader never sees a
    config whose weights are not in place; ``SHA256SUMS`` (the sha256 of both) is written before it.
    """
    if not isinstance(provenance, Mapping) or not provenance:
        raise ValueError("provenance: expected a non-empty mapping saying where the weights come from")
    model_type = _model_type_of(model)
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise ReleaseError(f"{type(model).__name__} has no dataclass `.config`; cannot write config.json")
    if sampling is not None and not isinstance(sampling, SamplingConfig):
        raise ValueError(f"sampling: expected a SamplingConfig or None, got {type(sampling).__name__}")
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage; loading restores ties via load_state_dict
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    weights = out / WEIGHTS_FILE
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    model_dict = to_dict(config)
    data = {
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "model": model_dict,
        "sample_rate": int(model_dict["mel"]["sample_rate"]),
        "provenance": json.loads(json.dumps(dict(provenance), default=str)),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "files": {WEIGHTS_FILE: {"sha256": sha256_file(weights), "bytes": weights.stat().st_size}},
    }
    settings = sampling_of(model) if sampling is None else sampling
    data["sampling"] = check_for_model(settings, config).to_dict()
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    write_manifest(out, config_text=text)
    atomic_write(out / CONFIG_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("saved %s release to %s", model_type, out)
    return out


# ----------------------------------------------------------------------------- load
def _read_config(path: Path) -> dict[str, Any]:
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise ReleaseFileMissingError(f"{path}: missing {CONFIG_FILE}")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReleaseFormatError(f"{cfg_path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ReleaseFormatError(f"{cfg_path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ReleaseFormatError(
            f"{cfg_path}: unknown format_version {version!r}; this waveflow_py reads format_version "
            f"{FORMAT_VERSION} (a newer release needs a newer waveflow_py)"
        )
    for key in ("model_type", "model", "files"):
        if key not in data:
            raise ReleaseFormatError(f"{cfg_path}: missing key {key!r}")
    return data


def load_release_config(name_or_dir: str | os.PathLike[str]) -> ReleaseInfo:
    """Read a release's config.json only, checked against SHA256SUMS when the release has one (cheap:
    no weights are read or hashed; ``verified=False``)."""
    path = resolve_release(name_or_dir)
    sums = read_manifest(path)
    if sums is not None:
        check_sha256(path / CONFIG_FILE, sums[CONFIG_FILE], MANIFEST_FILE)
    data = _read_config(path)
    models = _models()
    model_type = data["model_type"]
    if model_type not in models:
        raise ReleaseFormatError(
            f"{path / CONFIG_FILE}: unknown model_type {model_type!r}; expected one of {sorted(models)}"
        )
    try:
        config = from_dict(models[model_type][1], data["model"], path="model")
    except (TypeError, ValueError) as e:
        raise ReleaseFormatError(f"{path / CONFIG_FILE}: invalid model config: {e}") from e
    sample_rate = int(data.get("sample_rate", config.mel.sample_rate))
    if sample_rate != config.mel.sample_rate:
        raise ReleaseFormatError(
            f"{path / CONFIG_FILE}: sample_rate {sample_rate} disagrees with model.mel.sample_rate "
            f"{config.mel.sample_rate}"
        )
    sampling, stored = _read_sampling(data, path / CONFIG_FILE, config)
    files = data["files"]
    if not isinstance(files, Mapping) or WEIGHTS_FILE not in files or "sha256" not in files[WEIGHTS_FILE]:
        raise ReleaseFormatError(f"{path / CONFIG_FILE}: expected files.{WEIGHTS_FILE}.sha256")
    if sums is not None and sums[WEIGHTS_FILE] != files[WEIGHTS_FILE]["sha256"]:
        raise ReleaseFormatError(
            f"{path}: {CONFIG_FILE} and {MANIFEST_FILE} record different sha256 for {WEIGHTS_FILE}"
        )
    return ReleaseInfo(
        name=path.name,
        path=path,
        model_type=model_type,
        config=config,
        sample_rate=sample_rate,
        provenance=dict(data.get("provenance") or {}),
        sha256=str(files[WEIGHTS_FILE]["sha256"]),
        format_version=int(data["format_version"]),
        num_parameters=data.get("num_parameters"),
        sampling=sampling,
        stored_sampling=stored,
        config_sha256=None if sums is None else sums[CONFIG_FILE],
    )


# the sampling settings releases stored at the top level of config.json before the ``sampling`` block
LEGACY_SAMPLING_KEYS = ("temperature", "truncation", "excitation_rms")


def _read_sampling(
    data: Mapping[str, Any], where: Path, config: Any
) -> tuple[SamplingConfig, dict[str, Any]]:
    """The release's sampling settings and the keys config.json names: its ``sampling`` block, or (a
    release written before the block) the legacy top-level keys; checked by the one validator and
    against the model (``ReleaseFormatError`` naming the setting)."""
    legacy = {k: data[k] for k in LEGACY_SAMPLING_KEYS if k in data and data[k] is not None}
    if "sampling" in data:
        if legacy:
            raise ReleaseFormatError(
                f"{where}: sampling setting(s) {sorted(legacy)} at the top level beside a 'sampling' block: "
                "give them in one place, inside sampling"
            )
        stored = data["sampling"]
        label = "sampling"
    else:
        stored, label = legacy, "sampling (top-level keys)"
    try:
        settings = SamplingConfig.from_dict(stored, "sampling")
        check_for_model(settings, config)
    except ValueError as e:
        raise ReleaseFormatError(f"{where}: {e}") from None
    logger.debug("%s: %s %s", where, label, settings)
    return settings, dict(stored)


def load_release(
    name_or_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[nn.Module, ReleaseInfo]:
    """Build the model of a release (``None``: :func:`default_release`), verified and in eval mode.

    Checks, each failing with a :class:`ReleaseError`: the directory/name exists, config.json matches
    SHA256SUMS (when the release has one) and is a known ``format_version`` with a valid model config,
    model.safetensors exists and its sha256 matches, and every tensor of its header fits the model
    (names and shapes), compared before the model's memory is allocated beyond the weights' size
    (:func:`~waveflow_py.pretrained.integrity.build_within`). Weights are read with safetensors only.
    ``device``/``dtype`` move the model after loading (``dtype`` may be a string, e.g. "fp16").
    The release's sampling settings (``info.sampling``) become the model's (``model.sampling``): the
    "release" level every sampler uses unless given settings explicitly.
    """
    info = load_release_config(default_release() if name_or_dir is None else name_or_dir)
    weights = info.path / WEIGHTS_FILE
    if not weights.is_file():
        raise ReleaseFileMissingError(f"{info.path}: missing {WEIGHTS_FILE} (config.json names it)")
    check_sha256(weights, info.sha256, CONFIG_FILE if info.config_sha256 is None else MANIFEST_FILE)
    header = read_header(weights)
    from waveflow_py.models import build_model  # models sit below pretrained: imported on use

    model = build_within(lambda: build_model(info.model_type, info.config), header, weights)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ReleaseFormatError(f"{weights}: cannot read safetensors ({e})") from e
    model.load_state_dict(state, strict=True)
    model.eval()
    model.sampling = info.sampling  # the model samples as the release recommends
    dt = parse_dtype(dtype)
    if device is not None or dt is not None:
        try:
            model.to(device=device, dtype=dt)
        except (RuntimeError, AssertionError) as e:  # e.g. "cuda" on a machine without a GPU
            raise ValueError(f"cannot move the model to device={device!r}, dtype={dt}: {e}") from e
    info.verified = True
    info.num_parameters = int(sum(p.numel() for p in model.parameters()))
    logger.info("loaded %s release %s (%d parameters)", info.model_type, info.path, info.num_parameters)
    return model, info

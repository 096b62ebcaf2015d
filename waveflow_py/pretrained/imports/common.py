"""What the peer importers share: a name-and-shape checked mapping of a peer's tensors onto our model,
weight-norm helpers, and the report of what was mapped, ignored, unmapped or missing."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from waveflow_py.pretrained.imports.errors import CheckpointImportError

__all__ = [
    "ImportReport",
    "StateMapper",
    "as_tensor_dict",
    "nvidia_mel_settings",
    "read_json_config",
    "strip_prefix",
]

# NVIDIA's ``data_config`` names (WaveGlow's config.json, which L0SG's WaveFlow reuses) -> our MelConfig's
NVIDIA_MEL_NAMES = {
    "sampling_rate": "sample_rate",
    "filter_length": "n_fft",
    "hop_length": "hop_length",
    "win_length": "win_length",
    "mel_fmin": "fmin",
    "mel_fmax": "fmax",
}

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What an import did: ``mapped`` peer tensors (by name), ``ignored`` ones (known to be derived or
    unused, e.g. a permutation buffer that was checked), ``unmapped`` ones (left over) and ``notes``."""

    source: str
    peer: str
    mapped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: int | None = None

    def summary(self) -> str:
        text = f"{self.peer}: mapped {len(self.mapped)} tensors"
        if self.ignored:
            more = " ..." if len(self.ignored) > 4 else ""
            text += f", ignored {len(self.ignored)} ({', '.join(self.ignored[:4])}{more})"
        if self.unmapped:
            text += f", UNMAPPED {len(self.unmapped)}: {', '.join(self.unmapped[:8])}"
        return text


def as_tensor_dict(obj: Any, what: str) -> dict[str, Tensor]:
    """A mapping of names to tensors/arrays (paddle's ``(name, ndarray)`` pairs included) -> tensors;
    entries that are not arrays (e.g. paddle's name tables) are dropped."""
    if not isinstance(obj, Mapping):
        raise CheckpointImportError(f"{what}: expected a mapping of tensors, got {type(obj).__name__}")
    out: dict[str, Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]  # paddle.save stores a tensor as (its variable name, array)
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "fiub":
                raise CheckpointImportError(f"{what}: {key}: unsupported array dtype {value.dtype}")
            value = torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, Tensor):
            out[str(key)] = value
    return out


def nvidia_mel_settings(theirs: Mapping[str, Any]) -> dict[str, Any]:
    """The mel settings of an NVIDIA-style config's ``data_config`` under our names (absent ones left out)."""
    data = theirs.get("data_config", {})
    return {ours: data[t] for t, ours in NVIDIA_MEL_NAMES.items() if t in data}


def strip_prefix(state: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Drop a DataParallel/DDP ``module.`` prefix when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def read_json_config(path: str | Path | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} config not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 -- any parse error is a bad config, reported in one line
        raise CheckpointImportError(
            f"{path}: cannot parse the {what} config ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(data, dict):
        raise CheckpointImportError(f"{path}: expected a mapping in the {what} config")
    return data


class StateMapper:
    """Collects ``our key -> tensor`` from a peer state dict, checking names and shapes.

    ``take(peer_key)`` marks a peer tensor as used; ``put(our_key, tensor)`` checks the shape against
    the model (a weight-norm gain may differ only by singleton dims). :meth:`finish` loads the tensors,
    and raises :class:`CheckpointImportError` naming every missing peer tensor, every model tensor that
    got no value, and (unless allowed) every peer tensor left unmapped.
    """

    def __init__(self, source: Mapping[str, Tensor], model: nn.Module, report: ImportReport) -> None:
        self.source = dict(source)
        self.model = model
        self.target = model.state_dict()
        self.report = report
        self.out: dict[str, Tensor] = {}
        self.used: set[str] = set()
        self.missing: list[str] = []
        self.problems: list[str] = []

    def has(self, key: str) -> bool:
        return key in self.source

    def take(self, key: str) -> Tensor | None:
        if key not in self.source:
            self.missing.append(key)
            return None
        self.used.add(key)
        return self.source[key].detach().to(torch.float64 if self.source[key].is_floating_point() else None)

    def ignore(self, key: str) -> None:
        self.used.add(key)
        self.report.ignored.append(key)

    def put(self, key: str, value: Tensor | None, peer: str = "") -> None:
        if value is None:
            return
        if key not in self.target:
            raise CheckpointImportError(f"internal: our model has no tensor {key}")
        want = tuple(self.target[key].shape)
        if tuple(value.shape) != want:
            if value.numel() == int(np.prod(want)) and value.squeeze().dim() <= 1:
                value = value.reshape(want)  # e.g. a 1-D weight-norm gain (paddle) vs (C, 1, 1)
            else:
                self.problems.append(f"{peer or key}: {tuple(value.shape)}, expected {want} (for {key})")
                return
        self.out[key] = value.to(self.target[key].dtype)

    def weight_norm(self, peer: str, ours: str) -> None:
        """``peer.weight_g/_v`` (or a plain ``peer.weight``, weight norm removed) -> our weight-normed
        ``ours.parametrizations.weight.original0/1``, and the bias."""
        if self.has(f"{peer}.weight_g") or not self.has(f"{peer}.weight"):
            g, v = self.take(f"{peer}.weight_g"), self.take(f"{peer}.weight_v")
        else:  # folded weight: v = W, g = ||W|| per output channel reproduces W exactly
            v = self.take(f"{peer}.weight")
            g = None if v is None else v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
        self.put(f"{ours}.parametrizations.weight.original0", g, f"{peer}.weight_g")
        self.put(f"{ours}.parametrizations.weight.original1", v, f"{peer}.weight_v")
        self.put(f"{ours}.bias", self.take(f"{peer}.bias"), f"{peer}.bias")

    def plain(self, peer: str, ours: str, bias: bool = True) -> None:
        self.put(f"{ours}.weight", self.take(f"{peer}.weight"), f"{peer}.weight")
        if bias:
            self.put(f"{ours}.bias", self.take(f"{peer}.bias"), f"{peer}.bias")

    def finish(self, allow_unmapped: bool = False) -> nn.Module:
        what = self.report.source
        if self.missing:
            more = " ..." if len(self.missing) > 8 else ""
            raise CheckpointImportError(
                f"{what}: not a complete {self.report.peer} checkpoint for this config: missing tensors "
                f"{self.missing[:8]}{more} (wrong --from, a truncated state dict, or a mismatched --config?)"
            )
        if self.problems:
            raise CheckpointImportError(
                f"{what}: tensor shapes disagree with the config: {'; '.join(self.problems[:6])}"
                f"{' ...' if len(self.problems) > 6 else ''} (a mismatched --config?)"
            )
        params = {k for k, _ in self.model.named_parameters()}
        empty = sorted(params - set(self.out))
        if empty:
            raise CheckpointImportError(f"internal: our model tensors got no value: {empty[:8]}")
        self.report.unmapped = sorted(set(self.source) - self.used)
        self.report.mapped = sorted(self.used - set(self.report.ignored))
        if self.report.unmapped and not allow_unmapped:
            raise CheckpointImportError(
                f"{what}: {len(self.report.unmapped)} {self.report.peer} tensor(s) fit nowhere in the model "
                f"built from this config: {self.report.unmapped[:8]}"
                f"{' ...' if len(self.report.unmapped) > 8 else ''} (a mismatched --config? "
                "--allow-unmapped imports anyway)"
            )
        state = {**self.target, **self.out}
        self.model.load_state_dict(state, strict=True)
        self.model.eval()
        logger.info("%s", self.report.summary())
        return self.model

"""Import other projects' vocoder checkpoints as normal releases, exactly and without running their code.

``import_checkpoint(peer, checkpoint, config=None)`` -> ``(model, ImportReport)`` and
``import_release(peer, checkpoint, out_dir, config=None)`` (writes config.json + model.safetensors +
sha256 through :func:`waveflow_py.pretrained.save_release`). Peers:

* ``nvidia-waveglow``: NVIDIA WaveGlow (whole-model pickles read by the restricted unpickler);
* ``l0sg-waveflow``: L0SG's PyTorch WaveFlow (``torch.load(weights_only=True)`` + their config JSON);
* ``parakeet-waveflow``: the authors' PaddlePaddle WaveFlow (``.pdparams``, restricted unpickler).

See docs/import.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waveflow_py.atomic import sha256_file
from waveflow_py.pretrained.imports.common import ImportReport
from waveflow_py.pretrained.imports.errors import CheckpointImportError, UnsafeCheckpointError
from waveflow_py.pretrained.imports.nvidia import import_nvidia_waveglow
from waveflow_py.pretrained.imports.waveflow_peers import import_l0sg_waveflow, import_parakeet_waveflow

__all__ = [
    "PEERS",
    "ImportReport",
    "CheckpointImportError",
    "UnsafeCheckpointError",
    "import_checkpoint",
    "import_release",
]

PEERS: dict[str, Callable[..., tuple[Any, ImportReport]]] = {
    "nvidia-waveglow": import_nvidia_waveglow,
    "l0sg-waveflow": import_l0sg_waveflow,
    "parakeet-waveflow": import_parakeet_waveflow,
}


def import_checkpoint(
    peer: str,
    checkpoint: str | os.PathLike[str],
    config: str | os.PathLike[str] | None = None,
    allow_unmapped: bool = False,
) -> tuple[Any, ImportReport]:
    """A peer checkpoint (+ the peer's own config file) -> ``(our model in eval mode, report)``."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; expected one of {sorted(PEERS)}")
    return PEERS[peer](checkpoint, config, allow_unmapped)


def import_release(
    peer: str,
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: str | os.PathLike[str] | None = None,
    allow_unmapped: bool = False,
) -> tuple[Path, ImportReport]:
    """Import a peer checkpoint and write it as a release directory; returns ``(directory, report)``."""
    from waveflow_py.pretrained.release import save_release

    model, report = import_checkpoint(peer, checkpoint, config, allow_unmapped)
    src = Path(checkpoint)
    provenance: dict[str, Any] = {
        "weights": f"imported from a {peer} checkpoint",
        "imported_from": peer,
        "checkpoint": src.name,
        "checkpoint_sha256": sha256_file(src),
        "mapped_tensors": len(report.mapped),
    }
    if config is not None:
        provenance["peer_config"] = Path(config).name
    if report.steps:
        provenance["steps"] = report.steps
    if report.ignored:
        provenance["ignored_tensors"] = report.ignored
    if report.unmapped:
        provenance["unmapped_tensors"] = report.unmapped
    return save_release(out_dir, model, provenance=provenance), report

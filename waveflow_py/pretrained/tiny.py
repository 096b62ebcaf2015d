"""Tiny releases with random weights: for tests, and for ``waveflow demo`` before trained weights exist."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from waveflow_py.config import MelConfig
from waveflow_py.pretrained.release import _models, save_release

__all__ = ["UNTRAINED_LABEL", "build_random_release"]

UNTRAINED_LABEL = "untrained (random weights): this shows the pipeline, not quality"

# tiny architectures for random-weight releases
_TINY: dict[str, dict[str, Any]] = {
    "waveflow": {"n_group": 8, "n_flows": 2, "n_layers": 2, "residual_channels": 8},
    "waveglow": {"n_flows": 2, "n_group": 8, "n_early_every": 4, "n_early_size": 2, "n_layers": 2,
                 "residual_channels": 8},
}  # fmt: skip


def build_random_release(
    directory: str | os.PathLike[str],
    model_type: str = "waveflow",
    *,
    mel: MelConfig | None = None,
    seed: int = 0,
    perturb: float = 0.02,
    **overrides: Any,
) -> Path:
    """Write a tiny release with random weights (labelled untrained in its provenance).

    For tests and for ``waveflow demo`` while no trained release exists: it exercises every step of
    the pipeline (config, sha256, safetensors, loading, synthesis) and its audio is noise.
    ``overrides`` replace fields of the tiny architecture; ``mel`` defaults to the tacotron2 preset.
    Parameters that the training init sets to zero (the couplings' last layers, which make a fresh
    flow the identity) get ``N(0, perturb^2)`` values so that the output depends on the mel
    (``perturb=0`` keeps the training init).
    """
    models = _models()
    if model_type not in models:
        raise ValueError(f"model_type: expected one of {sorted(models)}, got {model_type!r}")
    model_cls, cfg_cls = models[model_type]
    fields = {**_TINY.get(model_type, {}), **overrides, "mel": mel if mel is not None else MelConfig()}
    config = cfg_cls(**fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
        with torch.no_grad():
            for param in model.parameters():
                if perturb > 0 and not bool(param.any()):
                    param.normal_(0.0, perturb)
    provenance = {"weights": UNTRAINED_LABEL, "training_data": "none", "steps": 0, "seed": seed}
    return save_release(directory, model.eval(), provenance=provenance)

"""From training to a release: write ``<run>/release`` with :func:`waveflow_py.pretrained.save_release`.

Used at the end of training (live or EMA weights) and by ``waveflow train CONFIG --export-only`` (weights
read from a checkpoint: the EMA weights when the checkpoint has them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from waveflow_py.config import ExperimentConfig, to_dict
from waveflow_py.sampling import DEFAULT_SAMPLING, SamplingConfig

__all__ = ["write_release", "export_checkpoint", "run_provenance", "inherited_sampling"]

logger = logging.getLogger(__name__)


def write_release(
    model: nn.Module,
    out_dir: str | Path,
    provenance: Mapping[str, Any],
    sampling: SamplingConfig | None = None,
) -> Path:
    """``save_release(out_dir / "release", model, provenance=..., sampling=...)`` (``sampling``: the
    release's sampling settings; ``None``: the model's)."""
    from waveflow_py.pretrained import save_release

    prov = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **provenance}
    out = Path(
        save_release(
            Path(out_dir) / "release",
            model,
            provenance=prov,
            sampling=sampling,
        )
    )
    logger.info("wrote release %s", out)
    return out


def run_provenance(clock: Mapping[str, float] | None, init_from: str | Path | None) -> dict[str, Any]:
    """The training-time entries of a release's provenance: hours of training (wall clock and CPU time
    of the training steps, carried across resumes) and the release a fine-tuning run started from."""
    out: dict[str, Any] = {}
    if clock:
        out["training_wall_hours"] = round(float(clock.get("wall_s", 0.0)) / 3600, 4)
        out["training_cpu_hours"] = round(float(clock.get("cpu_s", 0.0)) / 3600, 4)
    if init_from:
        out["init_from"] = str(init_from)
    return out


def inherited_sampling(init_from: str | Path | None) -> SamplingConfig:
    """A fine-tuned model keeps the tuned sampling settings of the release it started from (its
    ``info.sampling``); the library default when this is not a fine-tuning run or the release is no
    longer readable."""
    if not init_from:
        return DEFAULT_SAMPLING
    from waveflow_py.pretrained import ReleaseError, load_release_config

    try:
        return load_release_config(init_from).sampling
    except (ReleaseError, OSError):
        logger.warning("release %s not readable: its sampling settings are not carried over", init_from)
        return DEFAULT_SAMPLING


def export_checkpoint(exp: ExperimentConfig, checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Build ``exp``'s model, load a checkpoint's (EMA) weights into it and write a release."""
    from waveflow_py.models import build_model
    from waveflow_py.train import checkpoint as ckpt

    data = ckpt.load_checkpoint(checkpoint)
    current = to_dict(exp)
    current["model"] = to_dict(exp.model)
    ckpt.check_config_matches(data["config"], current, ("model_type", "model"))
    model = build_model(exp.model_type, exp.model)
    use_ema = "ema" in data
    ckpt.load_model_weights(model, data["ema"] if use_ema else data["model"], "EMA" if use_ema else "model")
    state = data["state"]
    provenance = {
        "data": exp.data.root,
        "steps": int(state["step"]),
        "model_type": exp.model_type,
        "ema": use_ema,
        "checkpoint": str(data["path"]),
    }
    provenance.update(run_provenance(state.get("clock"), state.get("init_from")))
    sampling = inherited_sampling(state.get("init_from"))
    return write_release(model.eval(), out_dir, provenance, sampling=sampling)

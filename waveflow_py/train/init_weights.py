"""Weights a run starts from but did not write: a release (``train.init_from``, fine-tuning) and the learned
pitch predictor (``train.pitch_net``, written by ``waveflow train-pitch``).

A release's model config, mel settings included, must equal the experiment's, so features and architecture
cannot silently mismatch, with three exceptions a fine-tuning run may make:

* keys of stages without weights (:data:`PARAMETER_FREE_KEYS`: the pitch prior, the pitch lag picker,
  WaveGlow's scale bound) may differ;
* the harmonic source may be added to a release without one (its weights start fresh);
* the harmonic source's analysis pitch may become the learned predictor (its weights then come from
  ``train.pitch_net``, which is then required).
"""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor, nn

from waveflow_py.config import PITCH_NET_SOURCES, ExperimentConfig, source_filter_of, to_dict
from waveflow_py.train.checkpoint import CheckpointMismatch, load_model_weights

__all__ = [
    "PARAMETER_FREE_KEYS",
    "PITCH_KEYS",
    "PITCH_PREFIX",
    "SOURCE_KEYS",
    "SOURCE_PREFIX",
    "load_pitch_net_into",
    "release_weights",
]

logger = logging.getLogger(__name__)

# model keys (dotted paths) that configure a stage without weights (may differ between --init-from's
# release and the run)
PARAMETER_FREE_KEYS = (
    "source_filter.pitch",
    "source_filter.pitch_strength",
    "source_filter.pitch_threshold",
    "source_filter.pitch_lag",
    "source_filter.source_pitch_floor",
    "scale_bound",
)
# the harmonic source's keys: a run may add the source to a release without one (fresh weights under
# SOURCE_PREFIX); between two runs with a source they must agree
SOURCE_KEYS = (
    "source_filter.source",
    "source_filter.source_bands",
    "source_filter.source_hidden",
    "source_filter.source_threshold",
)
SOURCE_PREFIX = "source_filter.harmonic."
# the learned pitch predictor's keys: a run may add it to a release whose source uses the analysis pitch
PITCH_KEYS = ("source_filter.source_pitch", "source_filter.source_pitch_hidden")
PITCH_PREFIX = SOURCE_PREFIX + "pitchnet."


def release_weights(
    exp: ExperimentConfig, model: nn.Module, release: str
) -> tuple[Any, dict[str, Tensor], bool]:
    """``(release info, the weights to load into model, whether train.pitch_net must give the learned
    predictor's)``: the release's weights, with ``model``'s own (fresh) tensors for a stage the run adds.
    :class:`~waveflow_py.train.checkpoint.CheckpointMismatch` names every key that may not differ."""
    from waveflow_py.pretrained import load_release

    released, info = load_release(release)
    ours = to_dict(exp.model_config())
    theirs = to_dict(info.config)
    added, before = _pop_keys(ours, PARAMETER_FREE_KEYS), _pop_keys(theirs, PARAMETER_FREE_KEYS)
    new_source, old_source = _pop_keys(ours, SOURCE_KEYS), _pop_keys(theirs, SOURCE_KEYS)
    new_pitch, old_pitch = _pop_keys(ours, PITCH_KEYS), _pop_keys(theirs, PITCH_KEYS)
    needs_pitch_net = _learned(new_pitch) and not _learned(old_pitch)
    if _learned(old_pitch) and new_pitch != old_pitch:  # a release's learned predictor is kept as it is
        _restore(ours, new_pitch)
        _restore(theirs, old_pitch)
    if old_source != new_source and old_source["source_filter.source"] not in (None, "none"):
        _restore(ours, new_source)
        _restore(theirs, old_source)
    if info.model_type != exp.model_type or ours != theirs:
        diffs = (
            _dict_diffs(theirs, ours)
            if info.model_type == exp.model_type
            else [f"model_type: release {info.model_type!r}, config {exp.model_type!r}"]
        )
        raise CheckpointMismatch(
            f"--init-from {release}: the release's model differs from the experiment's: "
            + "; ".join(diffs[:8])
            + (" ..." if len(diffs) > 8 else "")
            + " (set these model/mel keys to the release's values)"
        )
    weights = dict(released.state_dict())
    prefix = SOURCE_PREFIX if old_source != new_source else PITCH_PREFIX if needs_pitch_net else None
    if prefix is not None:  # an added stage keeps its fresh initialisation
        fresh = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        weights.update(fresh)
        what = "harmonic source" if prefix == SOURCE_PREFIX else "learned pitch predictor"
        logger.info("added the %s (%d fresh tensors) to the release's weights", what, len(fresh))
    for key in PARAMETER_FREE_KEYS:
        if added[key] != before[key]:
            logger.info("model.%s: release %r, this run %r (no weights)", key, before[key], added[key])
    return info, weights, needs_pitch_net


def load_pitch_net_into(exp: ExperimentConfig, model: nn.Module, required: bool) -> bool:
    """Load ``exp.train.pitch_net`` into ``model``'s learned pitch predictor; returns whether it did.
    ``ValueError`` when it is set for a model without the predictor, or missing where the predictor has
    no weights yet (``required``: added to a release by ``--init-from``; always for a run from scratch)."""
    from waveflow_py.train.pitch import load_pitch_net

    model_cfg = exp.model_config()
    sf = source_filter_of(model_cfg)
    learned = sf.source == "harmonic" and sf.source_pitch in PITCH_NET_SOURCES
    path = exp.train.pitch_net
    if path is None:
        if learned and (required or not exp.train.init_from):
            raise ValueError(
                f"model.source_filter.source_pitch is {sf.source_pitch!r} but train.pitch_net is not set: "
                "train the predictor with `waveflow train-pitch DATA --out DIR` and pass train.pitch_net=DIR"
            )
        return False
    if not learned:
        raise ValueError(
            "train.pitch_net is set but the model has no learned pitch predictor (set "
            "model.source_filter.source=harmonic and source_pitch=learned or hybrid)"
        )
    weights = load_pitch_net(path, model_cfg.mel, sf.source_pitch_hidden)
    load_model_weights(model.source_filter.harmonic.pitchnet, weights, what=f"pitch predictor {path}")
    logger.info("loaded the learned pitch predictor from %s", path)
    return True


def _learned(pitch: dict[str, Any]) -> bool:
    return pitch.get("source_filter.source_pitch") in PITCH_NET_SOURCES


def _restore(model: dict[str, Any], values: dict[str, Any]) -> None:
    """Put popped ``source_filter.*`` values back (so the comparison sees and reports them)."""
    model.update(source_filter={**model.get("source_filter", {}), **_leaves(values)})


def _leaves(values: dict[str, Any]) -> dict[str, Any]:
    """``{"source_filter.x": v}`` -> ``{"x": v}`` (the block's own keys)."""
    return {k.split(".", 1)[1]: v for k, v in values.items()}


def _pop_keys(model: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Remove ``keys`` (dotted paths) from plain model data; return ``{dotted key: value}`` (``None``
    where absent)."""
    out: dict[str, Any] = {}
    for key in keys:
        *parents, name = key.split(".")
        node: Any = model
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        out[key] = node.pop(name, None) if isinstance(node, dict) else None
    return out


def _dict_diffs(a: Any, b: Any, path: str = "model") -> list[str]:
    """Where two plain configs differ: ``["model.mel.sample_rate: release 22050, config 16000", ...]``."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _dict_diffs(a.get(k), b.get(k), f"{path}.{k}")
        return out
    return [] if a == b else [f"{path}: release {a!r}, config {b!r}"]

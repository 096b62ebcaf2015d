"""Runs and releases written before the ``model.source_filter`` block (its six keys flat in ``model``)
keep working: ``--resume`` of such a checkpoint, ``--export-only``, and ``--init-from`` such a release
(with the pitch stage, which has no weights, added)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from waveflow_py.atomic import sha256_file
from waveflow_py.cli import main
from waveflow_py.config import SOURCE_FILTER_KEYS, ExperimentConfig, SourceFilterConfig, from_dict, to_dict
from waveflow_py.pretrained import load_release
from waveflow_py.pretrained.integrity import write_manifest
from waveflow_py.train.checkpoint import resolve_checkpoint
from waveflow_py.train.loop import Trainer, train


def _flatten(model: dict) -> dict:
    """The old layout: the block's six keys of then at the top of ``model``; keys added since (the
    harmonic source, the pitch lag picker) did not exist."""
    block = model["source_filter"]
    return {k: v for k, v in model.items() if k != "source_filter"} | {
        k: block[k] for k in SOURCE_FILTER_KEYS
    }


def _with_stages(exp: ExperimentConfig, **stages: object) -> ExperimentConfig:
    d = to_dict(exp)
    d["model"]["source_filter"] = to_dict(SourceFilterConfig(**stages))
    return from_dict(ExperimentConfig, d)


def _rewrite_checkpoint_config_flat(step_dir: Path) -> None:
    """What a run of the previous version left: config.yaml with flat keys (state.json's hash updated)."""
    cfg_path = step_dir / "config.yaml"
    saved = yaml.safe_load(cfg_path.read_text())
    saved["model"] = _flatten(saved["model"])
    cfg_path.write_text(yaml.safe_dump(saved, sort_keys=False))
    state = json.loads((step_dir / "state.json").read_text())
    state["files"]["config.yaml"] = {"bytes": cfg_path.stat().st_size, "sha256": sha256_file(cfg_path)}
    (step_dir / "state.json").write_text(json.dumps(state))


def test_old_checkpoint_resumes_exports_and_old_release_fine_tunes(corpus, tiny_experiment, tmp_path) -> None:
    exp = _with_stages(
        tiny_experiment(corpus, tmp_path / "run", steps=2, export_release=True), envelope="gain"
    )
    first = train(exp)
    assert first.release is not None
    step_dir = resolve_checkpoint(tmp_path / "run")
    _rewrite_checkpoint_config_flat(step_dir)
    assert "envelope" in yaml.safe_load((step_dir / "config.yaml").read_text())["model"]
    resumed = train(
        _with_stages(tiny_experiment(corpus, tmp_path / "run", steps=3), envelope="gain"), resume=True
    )
    assert resumed.step == 3
    # a config without a model section adopts the (old, flat) checkpoint's model
    _rewrite_checkpoint_config_flat(resolve_checkpoint(tmp_path / "run"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": to_dict(exp.data), "train": {"steps": 3}}))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--export-only"]) == 0
    # a release with a flat config.json (as the bundled one) fine-tunes, the pitch stage added
    config_path = first.release / "config.json"
    data = json.loads(config_path.read_text())
    data["model"] = _flatten(data["model"])
    config_path.write_text(json.dumps(data))
    write_manifest(first.release)  # a release of then, before the manifest over the edited config
    old, _ = load_release(first.release)
    ft = _with_stages(
        tiny_experiment(corpus, tmp_path / "ft", steps=1, init_from=str(first.release)),
        envelope="gain",
        pitch="ltp",
    )
    trainer = Trainer(ft)
    assert trainer.parts.model.source_filter.pitch_filter is not None
    assert float(trainer.parts.model.source_filter.envelope_log_scale) == float(
        old.source_filter.envelope_log_scale
    )

"""Every recipe config (base and overlays) loads strictly; librispeech-mini trains a few steps (slow)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from waveflow_py.config import ExperimentConfig, load_yaml

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
NAMES = ("tiny", "librispeech-mini", "single-speaker", "ljspeech")
CONFIGS = sorted(p for name in NAMES for p in (RECIPES / name).glob("*.yaml"))
BAKEOFF = RECIPES / "librispeech-mini" / "bakeoff"
SPECTRAL = RECIPES / "librispeech-mini" / "spectral"


@pytest.mark.parametrize(
    "path",
    CONFIGS + sorted(BAKEOFF.glob("*.yaml")) + sorted(SPECTRAL.glob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_recipe_config_loads(path: Path) -> None:
    exp = load_yaml(ExperimentConfig, path)
    cfg = exp.model_config()
    assert exp.data.segment_length % cfg.mel.hop_length == 0
    expected_rate = {"tiny": 8000, "librispeech-mini": 16000, "single-speaker": 22050, "ljspeech": 22050}
    expected_rate["bakeoff"] = expected_rate["spectral"] = 16000
    assert cfg.mel.sample_rate == expected_rate[path.parent.name]


def test_overlays_change_only_what_they_say() -> None:
    base = load_yaml(ExperimentConfig, RECIPES / "librispeech-mini" / "config.yaml")
    gpu = load_yaml(ExperimentConfig, RECIPES / "librispeech-mini" / "gpu-bf16.yaml")
    assert gpu.train.precision == "bf16" and gpu.model_config() == base.model_config()
    cpu = load_yaml(ExperimentConfig, RECIPES / "librispeech-mini" / "cpu-smoke.yaml")
    assert cpu.model_config().residual_channels == 16 and cpu.data.root == base.data.root


def test_bakeoff_source_filter_blocks_merge_through_extends() -> None:
    """The pitch overlays add to their base's ``model.source_filter`` block (the envelope stays)."""
    for name, envelope in (("wf-lpc-ltp-r16", "lpc"), ("wg64-lpc-ltp", "lpc"), ("wf-gain-r16", "gain")):
        stages = load_yaml(ExperimentConfig, BAKEOFF / f"{name}.yaml").model_config().source_filter
        pitch = "ltp" if "-ltp" in name else "none"
        assert (stages.envelope, stages.lpc_order, stages.pitch) == (envelope, 16, pitch), name
        assert (stages.pitch_strength, stages.pitch_threshold, stages.preemphasis) == (1.0, 0.3, 0.0), name


def test_adversarial_recipe_is_wg64_harmonic_plus_the_stage_from_the_start() -> None:
    """Equal-CPU comparison: only the adversarial weights differ from wg64-harmonic.yaml."""
    base = load_yaml(ExperimentConfig, SPECTRAL / "wg64-harmonic.yaml")
    adv = load_yaml(ExperimentConfig, SPECTRAL / "wg64-harmonic-adversarial.yaml")
    objective = adv.train.objective
    assert objective.adversarial_on and objective.first_adversarial_step() == 0
    assert (objective.adversarial, objective.feature_matching) == (1.0, 2.0)
    same = dataclasses.replace(objective, adversarial=0.0, feature_matching=0.0)
    assert dataclasses.replace(adv, train=dataclasses.replace(adv.train, objective=same)) == base


def test_learned_pitch_recipe_is_wg64_harmonic_with_the_committed_predictor() -> None:
    """Only the pitch source differs from wg64-harmonic.yaml, and the committed predictor fits the model."""
    from waveflow_py.train.pitch import load_pitch_net

    base = load_yaml(ExperimentConfig, SPECTRAL / "wg64-harmonic.yaml")
    learned = load_yaml(ExperimentConfig, SPECTRAL / "wg64-harmonic-learned.yaml")
    sf = learned.model_config().source_filter
    assert (sf.source, sf.source_pitch) == ("harmonic", "learned")
    assert sf.source_pitch_floor == 0.1
    analysis = dataclasses.replace(sf, source_pitch="analysis", source_pitch_floor=0.5)
    model = dataclasses.replace(learned.model, source_filter=analysis)
    train = dataclasses.replace(learned.train, pitch_net=None)
    assert dataclasses.replace(learned, model=model, train=train) == base
    path = RECIPES.parent / learned.train.pitch_net
    weights = load_pitch_net(path, learned.model_config().mel, sf.source_pitch_hidden)
    assert weights["out.weight"].shape[1] == sf.source_pitch_hidden


@pytest.mark.slow
def test_librispeech_mini_few_steps(shared_data: Path, tmp_path: Path) -> None:
    from waveflow_py.cli import main

    sets = [
        f"data.root={shared_data / 'librispeech-mini'}",
        "train.steps=4",
        "train.val_every=4",
        "train.ckpt_every=4",
        "train.progress=false",
        "data.max_items=20",
        "data.dev_max_items=1",
        "data.dev_max_seconds=0.5",
        "train.val_at_start=true",
    ]
    args = ["train", str(RECIPES / "librispeech-mini" / "cpu-smoke.yaml"), "--out", str(tmp_path / "run")]
    assert main(args + [x for s in sets for x in ("--set", s)]) == 0
    dev = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    dev = [r for r in dev if r["split"] == "dev"]
    assert [r["step"] for r in dev] == [0, 4]


def test_finetune_speaker_recipe_trains_through_the_sampling_path() -> None:
    """The speaker fine-tuning recipe carries the spectral objective, so a harmonic source's amplitudes
    (which the NLL does not train) adapt to the speaker too."""
    exp = load_yaml(ExperimentConfig, RECIPES / "finetune-speaker" / "config.yaml")
    objective = exp.train.objective
    assert (objective.nll, objective.stft, objective.mel, objective.every) == (1.0, 1.0, 1.0, 1)
    assert not objective.adversarial_on

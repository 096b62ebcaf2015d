"""Exact resume beyond the plain case: LR warm-up and cosine schedules in progress, a GradScaler's state,
WaveGlow, resuming from a checkpoint that is not the latest, and a damaged latest checkpoint.

Each case trains N steps straight and compares with a run that is resumed at step N/2 from a
checkpoint: the losses and learning rates of the remaining steps, and the final weights, optimizer
state (and scaler state), must be the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from waveflow_py.config import ExperimentConfig, from_dict, to_dict
from waveflow_py.train import setup
from waveflow_py.train.checkpoint import load_checkpoint
from waveflow_py.train.loop import train

STEPS = 6
WAVEGLOW = {
    "n_flows": 2,
    "n_group": 4,
    "n_early_every": 1,
    "n_early_size": 1,
    "n_layers": 2,
    "residual_channels": 8,
}


# the NLL plus the spectral terms sampled through the inverse (every other step), on a model with both fixed
# stages: the sampled noise and crops must replay exactly after a resume
SPECTRAL = {
    "stft": 1.0,
    "mel": 0.5,
    "every": 2,
    "crop": 256,
    "items": 1,
    "temperature": 0.9,
    "resolutions": [[128, 32], [256, 64]],
}
STAGES = {"envelope": "lpc", "lpc_order": 8, "pitch": "ltp"}
# the adversarial stage on top, from step 2 (before the resume point): the discriminators and their
# optimizer must be restored exactly
ADVERSARIAL = {
    **SPECTRAL,
    "every": 1,
    "adversarial": 1.0,
    "feature_matching": 2.0,
    "adversarial_from": 2,
    "disc_lr": 1e-3,
    "disc_periods": [2, 3],
    "disc_period_channels": [4, 4],
    "disc_resolutions": [[64, 16]],
    "disc_resolution_channels": [4, 4],
}


def _exp(make, corpus: Path, out: Path, model_type: str, **train_over: Any) -> ExperimentConfig:
    d = to_dict(make(corpus, out, steps=STEPS, val_every=100, ckpt_every=STEPS // 2, **train_over))
    if model_type.startswith("waveglow"):
        d["model_type"] = "waveglow"
        d["model"] = {**WAVEGLOW, "mel": d["model"]["mel"]}
        if model_type == "waveglow-stages":
            d["model"].update(STAGES)
    return from_dict(ExperimentConfig, d)


def _train_records(run: Path) -> dict[int, dict[str, Any]]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if r["split"] == "train"}


def _cpu_scaler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp16 path's GradScaler on CPU (autocast fp16 needs CUDA here): fp32 compute, but the scaler
    scales, unscales, steps and grows its scale exactly as in fp16 training, and is checkpointed."""

    def precision(exp: Any, device: torch.device) -> tuple[None, Any]:
        return None, torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)

    monkeypatch.setattr(setup, "_precision", precision)


CASES = {
    # name: (model type, train overrides, how the second run resumes)
    "warm-up in progress, non-latest checkpoint": (
        "waveflow",
        {"lr_schedule": "cosine", "warmup_steps": 5},
        "explicit-step-3",
    ),
    "cosine in progress, damaged latest": (
        "waveflow",
        {"lr_schedule": "cosine", "warmup_steps": 1, "lr_min_ratio": 0.1},
        "damaged-latest",
    ),
    "waveglow": ("waveglow", {"lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5}, "explicit-step-3"),
    "grad scaler state": ("waveflow", {}, "explicit-step-3"),
    "spectral objective": (
        "waveglow-stages",
        {"objective": SPECTRAL, "lr_schedule": "cosine", "warmup_steps": 1},
        "explicit-step-3",
    ),
    "adversarial fine-tuning": ("waveglow-stages", {"objective": ADVERSARIAL}, "explicit-step-3"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resume_is_exact(case: str, corpus, tiny_experiment, tmp_path, monkeypatch, caplog) -> None:
    model_type, over, how = CASES[case]
    if case == "grad scaler state":
        _cpu_scaler(monkeypatch)
    straight = train(_exp(tiny_experiment, corpus, tmp_path / "a", model_type, **over))
    first = train(_exp(tiny_experiment, corpus, tmp_path / "b", model_type, **over))
    assert first.step == STEPS
    if how == "explicit-step-3":  # resume from the middle checkpoint, not the latest, into a new run dir
        out, resume = tmp_path / "c", tmp_path / "b" / "checkpoints" / "step_00000003"
    else:  # the latest checkpoint is damaged: --resume falls back to the intact one, with a warning
        latest = tmp_path / "b" / "checkpoints" / f"step_{STEPS:08d}" / "model.safetensors"
        latest.write_bytes(latest.read_bytes()[:100])
        out, resume = tmp_path / "b", True
    with caplog.at_level("WARNING"):
        resumed = train(_exp(tiny_experiment, corpus, out, model_type, **over), resume=resume)
    if how == "damaged-latest":
        assert f"step_{STEPS:08d}" in caplog.text and "damaged" in caplog.text
    assert resumed.step == STEPS and [s for s, _ in resumed.losses] == list(range(STEPS // 2 + 1, STEPS + 1))
    want = dict(straight.losses)
    assert [x for _, x in resumed.losses] == pytest.approx(
        [want[s] for s, _ in resumed.losses], rel=1e-6, abs=1e-7
    )
    a, c = _train_records(tmp_path / "a"), _train_records(out)
    lrs = [a[s]["lr"] for s in range(1, STEPS + 1)]
    if over and case != "adversarial fine-tuning":  # the schedule moves, and the resumed steps follow it
        assert len(set(lrs)) > 2, lrs
    assert [c[s]["lr"] for s in range(STEPS // 2 + 1, STEPS + 1)] == pytest.approx(
        lrs[STEPS // 2 :], rel=1e-12
    )
    end_a, end_c = load_checkpoint(tmp_path / "a"), load_checkpoint(out)
    assert end_a["state"]["step"] == end_c["state"]["step"] == STEPS
    assert end_a["extra"].keys() == end_c["extra"].keys()
    if case == "adversarial fine-tuning":
        assert set(end_a["extra"]) == {"discriminator", "discriminator_optimizer"}
    parts = [(end_a[k], end_c[k]) for k in ("model", "optimizer")]
    parts += [(end_a["extra"][k], end_c["extra"][k]) for k in end_a["extra"]]
    for a_part, c_part in parts:
        assert a_part.keys() == c_part.keys()
        for name in a_part:
            torch.testing.assert_close(a_part[name], c_part[name], rtol=1e-6, atol=1e-7, msg=name)
    if case == "grad scaler state":
        sa, sc = end_a["state"]["scaler"], end_c["state"]["scaler"]
        assert sa is not None and sa["scale"] > 2.0**10  # the scale grew during the run ...
        assert sc == sa  # ... and the resumed run continued from the saved scale and growth tracker


def test_a_fallback_resume_prunes_the_damaged_checkpoint_not_an_intact_one(
    corpus, tiny_experiment, tmp_path, caplog
) -> None:
    """Checkpoints 4 and 6 kept (keep_last_k 2), 6 damaged: the run resumes from 4 and its next save (5)
    removes the damaged 6, where plain pruning by step number would have removed the intact 4."""
    from waveflow_py.train.checkpoint import step_dirs, verify_checkpoint

    def exp(steps: int, every: int) -> ExperimentConfig:
        d = to_dict(tiny_experiment(corpus, tmp_path, steps=steps, val_every=100, ckpt_every=every))
        d["train"]["keep_last_k"] = 2
        return from_dict(ExperimentConfig, d)

    train(exp(6, 2))
    root = tmp_path / "checkpoints"
    assert [s for s, _ in step_dirs(root)] == [4, 6]
    weights = root / "step_00000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        assert train(exp(5, 1), resume=True).step == 5
    assert [s for s, _ in step_dirs(root)] == [4, 5]
    assert all(verify_checkpoint(d) is None for _, d in step_dirs(root))
    assert "removed the damaged checkpoint" in caplog.text

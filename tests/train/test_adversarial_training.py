"""The adversarial stage inside a training run: its terms logged from ``adversarial_from`` on, the
discriminators trained, saved (hashed, verified) and restored, the resume rules without them, and a
release without them. Exact resume with the stage on is a case of test_train_resume.py."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from waveflow_py.train.checkpoint import CheckpointCorrupt, CheckpointMismatch, load_checkpoint
from waveflow_py.train.loop import train

ADVERSARIAL = {
    "stft": 1.0,
    "adversarial": 1.0,
    "feature_matching": 2.0,
    "adversarial_from": 2,
    "crop": 256,
    "items": 1,
    "resolutions": [[128, 32]],
    "disc_lr": 1e-3,
    "disc_periods": [2, 3],
    "disc_period_channels": [4, 4],
    "disc_resolutions": [[64, 16]],
    "disc_resolution_channels": [4, 4],
}


def _run(make, corpus: Path, out: Path, steps: int = 4, resume: Any = None, **objective: Any) -> Any:
    exp = make(corpus, out, steps=steps, val_every=100, ckpt_every=2, objective={**ADVERSARIAL, **objective})
    return train(exp, resume=resume)


def _train_records(run: Path) -> list[dict[str, Any]]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["split"] == "train"]


def test_a_run_trains_logs_and_saves_the_discriminators(corpus, tiny_experiment, tmp_path) -> None:
    exp = tiny_experiment(
        corpus,
        tmp_path / "r",
        steps=4,
        val_every=100,
        ckpt_every=2,
        export_release=True,
        objective=ADVERSARIAL,
    )
    res = train(exp)
    assert res.step == 4 and all(math.isfinite(x) for _, x in res.losses)
    recs = _train_records(tmp_path / "r")
    adversarial_keys = {"adversarial", "feature_matching", "disc_loss"}
    assert [sorted(adversarial_keys & set(r)) for r in recs] == [[], [], *[sorted(adversarial_keys)] * 2]
    assert all({"nll", "stft_sc", "loss"} <= set(r) for r in recs)  # the NLL is always logged
    step2 = tmp_path / "r" / "checkpoints" / "step_00000002"
    step4 = step2.parent / "step_00000004"
    state = json.loads((step4 / "state.json").read_text())
    for name in ("discriminator.safetensors", "discriminator_optimizer.safetensors"):
        assert name in state["files"] and len(state["files"][name]["sha256"]) == 64
    assert state["discriminator"]["optimizer_param_groups"][0]["betas"] == [0.8, 0.99]
    # the discriminators are saved before their first step (step 2: fresh) and trained after (step 4)
    early, late = load_file(str(step2 / "discriminator.safetensors")), load_checkpoint(step4)["extra"]
    assert set(late) == {"discriminator", "discriminator_optimizer"} and late["discriminator_optimizer"]
    assert any(not torch.equal(early[k], late["discriminator"][k]) for k in early)
    # the release is the generator only
    release = res.release
    assert (
        release is not None and sorted(p.name for p in release.iterdir() if "discriminator" in p.name) == []
    )
    assert not any(k.startswith("judges") for k in load_file(str(release / "model.safetensors")))


def test_a_damaged_discriminator_file_is_found_on_resume(corpus, tiny_experiment, tmp_path) -> None:
    _run(tiny_experiment, corpus, tmp_path / "d", steps=2)
    f = tmp_path / "d" / "checkpoints" / "step_00000002" / "discriminator.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorrupt, match="discriminator.safetensors: sha256 differs"):
        _run(tiny_experiment, corpus, tmp_path / "d", steps=4, resume=f.parent)


def test_resume_without_discriminators(corpus, tiny_experiment, tmp_path) -> None:
    """A spectral-only checkpoint of step 2: resuming with the adversarial terms on since step 0 is refused;
    with them starting at step 2 or later, fresh discriminators start then."""
    spectral = {"adversarial": 0.0, "feature_matching": 0.0}
    _run(tiny_experiment, corpus, tmp_path / "s", steps=2, **spectral)
    ckpt2 = tmp_path / "s" / "checkpoints" / "step_00000002"
    assert not (ckpt2 / "discriminator.safetensors").exists()
    with pytest.raises(
        CheckpointMismatch, match=r"no discriminator weights.*set train.objective.adversarial_from >= 2"
    ):
        _run(tiny_experiment, corpus, tmp_path / "t", steps=4, resume=ckpt2, adversarial_from=0)
    res = _run(tiny_experiment, corpus, tmp_path / "u", steps=4, resume=ckpt2, adversarial_from=2)
    assert res.step == 4
    assert [("disc_loss" in r) for r in _train_records(tmp_path / "u")] == [True, True]  # steps 3, 4
    # and a checkpoint with discriminators resumes with the stage off (the discriminators are left out)
    res = _run(tiny_experiment, corpus, tmp_path / "v", steps=6, resume=tmp_path / "u", **spectral)
    assert (
        res.step == 6
        and not (tmp_path / "v" / "checkpoints" / "step_00000006" / "discriminator.safetensors").exists()
    )


def test_resume_refuses_discriminators_of_another_shape(corpus, tiny_experiment, tmp_path) -> None:
    _run(tiny_experiment, corpus, tmp_path / "a", steps=2)
    with pytest.raises(
        CheckpointMismatch, match=r"discriminator weights do not fit: .* to the checkpoint.s\)"
    ):
        _run(tiny_experiment, corpus, tmp_path / "a", steps=4, resume=True, disc_period_channels=[4, 8])

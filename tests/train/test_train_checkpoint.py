"""Checkpoints: atomic writes, keep-last-k, latest pointer, exact state round trips, clear mismatch errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from waveflow_py.train import checkpoint as ckpt


def _parts() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    return model, opt


def _save(root: Path, step: int, model: nn.Module, opt: torch.optim.Optimizer, k: int = 2) -> Path:
    return ckpt.save_checkpoint(
        root,
        step,
        model=model,
        optimizer=opt,
        config={"model": {"n": 1}},
        state={"rng": [ckpt.capture_rng()]},
        keep_last_k=k,
    )


def test_keep_last_k_and_latest(tmp_path: Path) -> None:
    model, opt = _parts()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, model, opt, k=2)
    assert [s for s, _ in ckpt.step_dirs(tmp_path)] == [3, 4]
    assert (tmp_path / "latest").read_text().strip() == "step_00000004"
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_00000004"
    assert ckpt.resolve_checkpoint(tmp_path.parent / tmp_path.name).name == "step_00000004"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left behind


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    model, opt = _parts()
    _save(tmp_path, 1, model, opt)
    calls = {"n": 0}
    real = ckpt.save_file

    def failing(tensors, path, *a, **k):  # the second file of the next checkpoint fails mid-write
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"partial")
            raise OSError("disk full")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", failing)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, model, opt)
    assert [s for s, _ in ckpt.step_dirs(tmp_path)] == [1]  # the partial one is not a checkpoint
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_00000001"
    data = ckpt.load_checkpoint(tmp_path)
    assert data["state"]["step"] == 1
    monkeypatch.setattr(ckpt, "save_file", real)
    _save(tmp_path, 3, model, opt)  # the next save clears the crashed writer's temporary directory
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_model_optimizer_and_rng_round_trip(tmp_path: Path) -> None:
    model, opt = _parts()
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    _save(tmp_path, 7, model, opt)
    expect = (random.random(), np.random.rand(), torch.rand(1).item())
    data = ckpt.load_checkpoint(tmp_path)
    model2 = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt2 = torch.optim.Adam(model2.parameters(), lr=5.0)
    ckpt.load_model_weights(model2, data["model"])
    ckpt.optimizer_from_files(opt2, data["optimizer"], data["state"]["optimizer_param_groups"])
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 1e-2
    for pid in s1["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            a, b = s1["state"][pid][name], s2["state"][pid][name]
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    ckpt.restore_rng(data["state"]["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expect


def test_mismatch_errors_name_tensor_and_key(tmp_path: Path) -> None:
    model, opt = _parts()
    _save(tmp_path, 1, model, opt)
    data = ckpt.load_checkpoint(tmp_path)
    other = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 2))
    with pytest.raises(ckpt.CheckpointMismatch, match=r"0\.weight: checkpoint \(4, 3\) vs model \(8, 3\)"):
        ckpt.load_model_weights(other, data["model"])
    with pytest.raises(ckpt.CheckpointMismatch, match=r"model\.n: checkpoint 1 vs config 2"):
        ckpt.check_config_matches(data["config"], {"model": {"n": 2}}, ("model",))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "empty")


def _damage(step_dir: Path, how: str) -> None:
    f = step_dir / "model.safetensors"
    data = f.read_bytes()
    if how == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif how == "flip":  # same size, one byte of the tensor data changed: only the recorded sha256 sees it
        f.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        f.unlink()


@pytest.mark.parametrize("how", ["truncate", "flip", "delete"])
def test_a_damaged_latest_falls_back_to_the_newest_intact_one(tmp_path: Path, how: str, caplog) -> None:
    model, opt = _parts()
    for step in (1, 2, 3):
        _save(tmp_path, step, model, opt, k=3)
    _damage(tmp_path / "step_00000003", how)
    assert ckpt.verify_checkpoint(tmp_path / "step_00000003") is not None
    assert ckpt.verify_checkpoint(tmp_path / "step_00000002") is None
    with caplog.at_level("WARNING", logger="waveflow_py.train.checkpoint"):
        assert ckpt.resolve_checkpoint(tmp_path).name == "step_00000002"
        assert ckpt.load_checkpoint(tmp_path)["state"]["step"] == 2
    assert "step_00000003" in caplog.text and "damaged" in caplog.text
    # named explicitly, a damaged checkpoint is an error (not silently another one), with a hint
    hint = r"step_00000003 is damaged: .*newest intact one is .*step_00000002"
    with pytest.raises(ckpt.CheckpointCorrupt, match=hint):
        ckpt.load_checkpoint(tmp_path / "step_00000003")


def test_no_intact_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    model, opt = _parts()
    for step in (1, 2):
        _save(tmp_path, step, model, opt)
    _damage(tmp_path / "step_00000002", "truncate")
    (tmp_path / "step_00000001" / "state.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointCorrupt, match="no intact checkpoint in") as e:
        ckpt.resolve_checkpoint(tmp_path)
    assert "step_00000002 (model.safetensors" in str(e.value) and "step_00000001 (unreadable" in str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI prints it as one line


def test_checkpoints_without_recorded_hashes_are_still_checked(tmp_path: Path) -> None:
    """Checkpoints written before hashes were recorded: the safetensors structure is still verified."""
    import json

    model, opt = _parts()
    d = _save(tmp_path, 1, model, opt)
    state = json.loads((d / "state.json").read_text())
    assert set(state.pop("files")) == {"model.safetensors", "optimizer.safetensors", "config.yaml"}
    (d / "state.json").write_text(json.dumps(state))
    assert ckpt.verify_checkpoint(d) is None
    f = d / "optimizer.safetensors"
    f.write_bytes(f.read_bytes()[:-3])
    assert "optimizer.safetensors" in (ckpt.verify_checkpoint(d) or "")


@pytest.mark.parametrize("signal", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_while_writing_leaves_no_partial_directory(tmp_path: Path, monkeypatch, signal) -> None:
    model, opt = _parts()
    _save(tmp_path, 1, model, opt)

    def interrupted(tensors, path, *a, **k):
        Path(path).write_bytes(b"partial")
        raise signal()

    monkeypatch.setattr(ckpt, "save_file", interrupted)
    with pytest.raises(signal):
        _save(tmp_path, 2, model, opt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000001"]  # nothing partial


def test_extra_files_are_saved_hashed_verified_and_loaded(tmp_path: Path) -> None:
    """Training-only tensors (the adversarial stage's discriminators) as extra files of a step directory."""
    import json

    model, opt = _parts()
    extra = {"discriminator": {"w": torch.arange(6.0).view(2, 3)}, "discriminator_optimizer": {}}
    d = ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=opt, config={}, state={}, extra=extra)
    files = json.loads((d / "state.json").read_text())["files"]
    assert {"discriminator.safetensors", "discriminator_optimizer.safetensors"} <= set(files)
    loaded = ckpt.load_checkpoint(d)["extra"]
    assert (
        set(loaded) == {"discriminator", "discriminator_optimizer"} and not loaded["discriminator_optimizer"]
    )
    assert torch.equal(loaded["discriminator"]["w"], extra["discriminator"]["w"])
    f = d / "discriminator.safetensors"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 0xFF]))
    assert "discriminator.safetensors: sha256 differs" in (ckpt.verify_checkpoint(d) or "")
    with pytest.raises(ValueError, match=r"extra file name\(s\) \['ema'\] are reserved"):
        ckpt.save_checkpoint(tmp_path, 2, model=model, optimizer=opt, config={}, state={}, extra={"ema": {}})
    assert ckpt.load_checkpoint(_save(tmp_path, 3, model, opt))["extra"] == {}

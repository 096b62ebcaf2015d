"""Training that uses every hour: ``train.max_minutes`` (``--minutes``) stops cleanly and resumes exactly;
``train.init_from`` (``--init-from``) starts a new run from a release's weights, its settings enforced."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from waveflow_py.cli import main
from waveflow_py.config import to_dict
from waveflow_py.pretrained import load_release
from waveflow_py.train.checkpoint import CheckpointMismatch, load_checkpoint
from waveflow_py.train.loop import train

STEPS = 5


def test_budget_stops_cleanly_and_resume_is_exact(corpus, tiny_experiment, tmp_path) -> None:
    over = {"steps": STEPS, "val_every": 100, "ckpt_every": 100, "lr_schedule": "cosine", "warmup_steps": 2}
    straight = train(tiny_experiment(corpus, tmp_path / "a", **over))
    assert not straight.stopped_by_budget
    # a budget far below one step: the run stops after its first step, with a checkpoint and a release
    stopped = train(tiny_experiment(corpus, tmp_path / "b", max_minutes=1e-9, export_release=True, **over))
    assert stopped.stopped_by_budget and stopped.step == 1
    assert stopped.release is not None and (stopped.release / "model.safetensors").is_file()
    assert load_checkpoint(tmp_path / "b")["state"]["step"] == 1
    assert stopped.dev and stopped.dev[-1][0] == 1  # validated at the stop
    resumed = train(tiny_experiment(corpus, tmp_path / "b", **over), resume=True)
    assert resumed.step == STEPS and not resumed.stopped_by_budget
    want = dict(straight.losses)
    assert [x for _, x in resumed.losses] == pytest.approx([want[s] for s, _ in resumed.losses], rel=1e-6)
    end_a, end_b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for name in end_a["model"]:
        torch.testing.assert_close(end_a["model"][name], end_b["model"][name], rtol=1e-6, atol=1e-7)
    # training time is logged and carried across the resume (learning curves against CPU-minutes)
    assert end_b["state"]["clock"]["cpu_s"] > 0
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    cpu = [r["cpu_minutes"] for r in rows if r["split"] == "train"]
    assert cpu == sorted(cpu) and cpu[-1] > 0


def test_cpu_budget_counts_process_time(corpus, tiny_experiment, tmp_path) -> None:
    res = train(tiny_experiment(corpus, tmp_path / "c", steps=STEPS, max_minutes=1e-9, budget_clock="cpu"))
    assert res.stopped_by_budget and res.step == 1
    with pytest.raises(ValueError, match="budget_clock"):
        tiny_experiment(corpus, tmp_path / "d", budget_clock="gpu")


def test_init_from_release_loads_weights_and_enforces_settings(corpus, tiny_experiment, tmp_path) -> None:
    first = train(tiny_experiment(corpus, tmp_path / "r", steps=2, export_release=True))
    assert first.release is not None
    released, _ = load_release(first.release)
    # a new run starts from the release's weights (its first loss equals the release's NLL on that batch)
    exp = tiny_experiment(corpus, tmp_path / "ft", steps=1, lr=1e-12, init_from=str(first.release))
    from waveflow_py.train.loop import Trainer

    trainer = Trainer(exp)
    for name, value in released.state_dict().items():
        torch.testing.assert_close(trainer.parts.model.state_dict()[name], value, msg=name)
    trainer.run()
    # a different mel (here the hop) is refused, naming the field
    d = to_dict(exp)
    d["model"]["mel"]["hop_length"] = 32
    d["data"]["segment_length"] = 512
    from waveflow_py.config import ExperimentConfig, from_dict

    with pytest.raises(CheckpointMismatch, match=r"mel\.hop_length: release 64, config 32"):
        Trainer(from_dict(ExperimentConfig, d))
    # a stage without weights (the pitch prior) may be added to the release's weights
    d = to_dict(exp)
    d["model"]["source_filter"].update(pitch="ltp", pitch_strength=1.2)
    with_pitch = Trainer(from_dict(ExperimentConfig, d))
    assert with_pitch.parts.model.source_filter.pitch_filter is not None
    for name, value in released.state_dict().items():
        torch.testing.assert_close(with_pitch.parts.model.state_dict()[name], value, msg=name)
    # the harmonic source may be added too: the release's weights load, the source's start fresh
    d["model"]["source_filter"].update(source="harmonic", pitch_lag="first")
    with_source = Trainer(from_dict(ExperimentConfig, d))
    state = with_source.parts.model.state_dict()
    fresh = [k for k in state if k.startswith("source_filter.harmonic.")]
    assert fresh and not set(fresh) & set(released.state_dict())
    for name, value in released.state_dict().items():
        torch.testing.assert_close(state[name], value, msg=name)
    # ... but a source with other settings than a release's own is refused like any architecture change
    first_h = train(
        from_dict(
            ExperimentConfig,
            {
                **to_dict(with_source.exp),
                "train": {
                    **to_dict(exp.train),
                    "init_from": None,
                    "out_dir": str(tmp_path / "h"),
                    "export_release": True,
                    "steps": 1,
                },
            },
        )
    )
    d2 = to_dict(with_source.exp)
    d2["train"]["init_from"] = str(first_h.release)
    d2["model"]["source_filter"]["source_bands"] = 4
    with pytest.raises(CheckpointMismatch, match=r"source_filter.source_bands: release 8, config 4"):
        Trainer(from_dict(ExperimentConfig, d2))


def test_cli_minutes_sets_the_budget_of_each_invocation(corpus, tiny_experiment, tmp_path) -> None:
    """``--minutes N`` is ``train.max_minutes`` of this invocation: it stops cleanly with a checkpoint long
    before the configured steps, and ``--resume`` with a new budget continues from there. (6 ms of budget
    against 200 steps: no machine runs a step in 30 us, so without the budget all 200 would run.)"""
    steps = 200
    exp = tiny_experiment(corpus, tmp_path / "unused", steps=steps, val_every=1000, ckpt_every=1000)
    d = to_dict(exp)
    d["train"].pop("out_dir")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(d), encoding="utf-8")
    out = tmp_path / "run"
    # 0.0001, not 1e-4: --minutes becomes an override parsed as YAML, which reads 1e-04 as a string
    assert main(["train", str(cfg), "--out", str(out), "--minutes", "0.0001"]) == 0
    first = load_checkpoint(out)
    assert first["config"]["train"]["max_minutes"] == 0.0001
    assert 1 <= first["state"]["step"] < steps
    assert main(["train", str(cfg), "--out", str(out), "--resume", "--minutes", "0.0001"]) == 0
    assert first["state"]["step"] < load_checkpoint(out)["state"]["step"] < steps


def test_init_step_continues_a_lineage_schedule(corpus, tiny_experiment, tmp_path) -> None:
    from waveflow_py.train.schedule import lr_at

    first = train(tiny_experiment(corpus, tmp_path / "r", steps=2, export_release=True))
    assert first.release is not None
    over = {"steps": STEPS, "lr_schedule": "cosine", "lr_min_ratio": 0.1, "val_at_start": True}
    # a release continued at step 3 of a 5-step cosine: steps 4 and 5 at that schedule's learning rates
    exp = tiny_experiment(corpus, tmp_path / "ft", init_from=str(first.release), init_step=3, **over)
    res = train(exp)
    assert res.step == STEPS and [s for s, _ in res.losses] == [4, 5]
    rows = [json.loads(x) for x in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if r["split"] == "train"}
    assert lrs == pytest.approx({4: lr_at(3, exp.train), 5: lr_at(4, exp.train)})
    assert lr_at(3, exp.train) < exp.train.lr  # not the schedule's start
    assert [r["step"] for r in rows if r["split"] == "dev"][0] == 3  # validated before its first step
    assert load_checkpoint(tmp_path / "ft")["state"]["step"] == STEPS
    # a resume of that run goes on from its checkpoint, not from init_step
    more = train(
        tiny_experiment(
            corpus, tmp_path / "ft", init_from=str(first.release), init_step=3, **{**over, "steps": STEPS + 1}
        ),
        resume=True,
    )
    assert [s for s, _ in more.losses] == [STEPS + 1]
    with pytest.raises(ValueError, match="init_step.*init_from"):
        tiny_experiment(corpus, tmp_path / "x", init_step=3, **over)
    with pytest.raises(ValueError, match=r"init_step: expected 0 <= init_step < train.steps \(5\), got 5"):
        tiny_experiment(corpus, tmp_path / "x", init_from=str(first.release), init_step=STEPS, **over)


def test_cli_init_from_and_resume_are_exclusive(corpus, tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: {{n_group: 4, n_flows: 1, n_layers: 1, residual_channels: 4}}\ndata: {{root: {corpus}}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    code = main(["train", str(cfg), "--init-from", "x", "--resume", "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and "--init-from" in err and "--resume" in err and "give only one" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_cli_finetune_config_without_model_adopts_the_release(corpus, tiny_experiment, tmp_path) -> None:
    """A fine-tuning config names data and training only: with --init-from, the model and mel settings
    come from the release (the only architecture its weights fit), and training starts from its weights."""
    first = train(tiny_experiment(corpus, tmp_path / "r", steps=2, export_release=True))
    from waveflow_py.pretrained import save_release
    from waveflow_py.sampling import SamplingConfig

    model, _ = load_release(first.release)
    tuned = SamplingConfig(temperature=0.9, truncation=2.5)
    save_release(first.release, model, provenance={"steps": 2, "data": "test"}, sampling=tuned)
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(
        f"data: {{root: {corpus}, segment_length: 512, min_seconds: 0.1, dev_max_items: 1, "
        "dev_max_seconds: 0.5}\n"
        "train: {steps: 1, batch_size: 2, val_every: 100, ckpt_every: 100, progress: false, "
        "tensorboard: false}\n",
        encoding="utf-8",
    )
    out = tmp_path / "ft"
    assert main(["train", str(cfg), "--init-from", str(first.release), "--out", str(out)]) == 0
    state = load_checkpoint(out)["state"]
    assert state["step"] == 1 and state["init_from"] == str(first.release)
    _, info = load_release(first.release)
    _, tuned_info = load_release(out / "release")
    assert to_dict(tuned_info.config) == to_dict(info.config)
    assert tuned_info.provenance["init_from"] == str(first.release)
    assert tuned_info.sampling == tuned  # its tuned sampling carries over
    from waveflow_py.config import ExperimentConfig, from_dict, read_yaml
    from waveflow_py.train.loop import Trainer

    data = read_yaml(cfg, [f"train.init_from={first.release}", f"train.out_dir={tmp_path / 'ft2'}"])
    data["model_type"], data["model"] = info.model_type, to_dict(info.config)
    trainer = Trainer(from_dict(ExperimentConfig, data))
    assert trainer.sampling == tuned == trainer.parts.model.sampling  # validation too
    assert trainer.parts.objective.settings == tuned  # and the sampled objective terms
    # resuming (and exporting) the run with the same model-less config takes the run's own model
    assert main(["train", str(cfg), "--out", str(out), "--resume", "--set", "train.steps=2"]) == 0
    assert load_checkpoint(out)["state"]["step"] == 2
    (out / "release" / "config.json").unlink()
    assert main(["train", str(cfg), "--out", str(out), "--export-only"]) == 0
    _, exported = load_release(out / "release")  # the export path writes the same provenance/temperature
    assert exported.sampling == tuned
    assert exported.provenance["init_from"] == str(first.release)
    assert exported.provenance["training_cpu_hours"] >= 0 and "training_wall_hours" in exported.provenance

"""The training loop: exact resume, non-finite losses, EMA, logs and the release at the end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from waveflow_py.flows.base import check_tensor
from waveflow_py.train.checkpoint import CheckpointMismatch, load_checkpoint
from waveflow_py.train.loop import NonFiniteLossError, train


def test_resume_is_exact(corpus, tiny_experiment, tmp_path) -> None:
    """N steps straight == N/2 steps, stop, resume, N/2 steps (the real tiny WaveFlow, EMA on, CPU)."""
    steps = 6
    straight = train(tiny_experiment(corpus, tmp_path / "a", steps=steps, ema_decay=0.9))
    first = train(tiny_experiment(corpus, tmp_path / "b", steps=steps // 2, ema_decay=0.9))
    assert first.step == steps // 2
    resumed = train(tiny_experiment(corpus, tmp_path / "b", steps=steps, ema_decay=0.9), resume=True)
    assert resumed.step == steps
    losses = [x for _, x in first.losses + resumed.losses]
    assert losses == pytest.approx([x for _, x in straight.losses], rel=1e-6, abs=1e-7)
    assert len(set(losses)) == steps  # the weights really changed from step to step
    a = load_checkpoint(tmp_path / "a")
    b = load_checkpoint(tmp_path / "b")
    assert a["state"]["step"] == b["state"]["step"] == steps
    for key in ("model", "ema", "optimizer"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=1e-6, atol=1e-7, msg=name)
    # the metrics log of the resumed run has each step once, like the straight run
    records = map(json.loads, (tmp_path / "b" / "metrics.jsonl").open())
    steps_b = [r["step"] for r in records if r["split"] == "train"]
    assert steps_b == list(range(1, steps + 1))


def test_resume_refuses_a_different_model(corpus, tiny_experiment, tmp_path) -> None:
    train(tiny_experiment(corpus, tmp_path / "r", steps=1))
    exp = tiny_experiment(corpus, tmp_path / "r", steps=2)
    exp.model.n_flows = 3
    with pytest.raises(CheckpointMismatch, match=r"model\.n_flows: checkpoint 2 vs config 3"):
        train(exp, resume=True)


class _Flaky(torch.nn.Module):
    """Wraps the stand-in; its log_prob is NaN on the calls listed in ``bad``, and an intermediate
    overflows (a flow's input check raises ``NonFiniteError``) on the calls in ``overflow``."""

    def __init__(self, inner: torch.nn.Module, bad: set[int], overflow: set[int] = frozenset()) -> None:
        super().__init__()
        self.inner, self.bad, self.overflow, self.calls = inner, bad, overflow, 0
        self.config, self.hop_length, self.sample_rate = inner.config, inner.hop_length, inner.sample_rate

    def log_prob(self, audio, mel):
        self.calls += 1
        if self.calls in self.overflow:
            check_tensor(torch.full((1, 4), float("inf")), name="input")
        lp = self.inner.log_prob(audio, mel)
        return lp * float("nan") if self.calls in self.bad else lp

    def __getattr__(self, name):  # the rest of the interface (synthesis) is the stand-in's
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


def test_nonfinite_loss_is_skipped_then_stops(corpus, tiny_experiment, standin, tmp_path, caplog) -> None:
    exp = tiny_experiment(corpus, tmp_path / "n", steps=6, val_every=100, ckpt_every=100, max_nonfinite=3)
    holder = {}

    def factory(cfg):
        holder["m"] = _Flaky(standin(cfg), bad={2, 4, 5})
        return holder["m"]

    res = train(exp, model_factory=factory)
    assert res.step == 6 and res.skipped_steps == 3
    losses = dict(res.losses)
    assert math.isnan(losses[2]) and math.isfinite(losses[3]) and math.isfinite(losses[6])
    assert "non-finite loss" in caplog.text and "step skipped" in caplog.text

    def overflowing(cfg):  # an overflow inside the flows is skipped like a non-finite loss, not fatal
        return _Flaky(standin(cfg), bad=set(), overflow={2, 3})

    res = train(
        tiny_experiment(corpus, tmp_path / "o", steps=5, val_every=100, ckpt_every=100, max_nonfinite=3),
        model_factory=overflowing,
    )
    losses = dict(res.losses)
    assert res.step == 5 and res.skipped_steps == 2 and math.isinf(losses[2]) and math.isfinite(losses[4])

    def always_bad(cfg):
        return _Flaky(standin(cfg), bad=set(range(1, 100)))

    exp = tiny_experiment(corpus, tmp_path / "m", steps=10, max_nonfinite=3, val_every=100, ckpt_every=100)
    with pytest.raises(NonFiniteLossError, match="3 consecutive non-finite losses"):
        train(exp, model_factory=always_bad)


def test_logs_and_dev_metrics(corpus, tiny_experiment, tmp_path) -> None:
    res = train(tiny_experiment(corpus, tmp_path / "l", steps=4, val_every=2, export_release=True))
    records = [json.loads(x) for x in (tmp_path / "l" / "metrics.jsonl").open()]
    train_recs = [r for r in records if r["split"] == "train"]
    dev_recs = [r for r in records if r["split"] == "dev"]
    assert [r["step"] for r in dev_recs] == [2, 4] == [s for s, _ in res.dev]
    for r in train_recs:
        assert r["bits_per_sample"] == pytest.approx(r["nll"] / math.log(2))
        assert {"lr", "grad_norm", "steps_per_s", "samples_per_s"} <= set(r)
    assert {"nll", "bits_per_sample", "mel_l1", "mrstft", "mrstft_unseen"} <= set(dev_recs[0])
    assert res.release is not None and (res.release / "model.safetensors").is_file()


def test_waveglow_trains_too(corpus, tiny_experiment, tmp_path) -> None:
    from waveflow_py.config import ExperimentConfig, from_dict, to_dict

    d = to_dict(tiny_experiment(corpus, tmp_path / "g", steps=3, val_every=3, ckpt_every=3))
    d["model_type"] = "waveglow"
    d["model"] = {
        "n_flows": 2,
        "n_group": 4,
        "n_early_every": 1,
        "n_early_size": 1,
        "n_layers": 2,
        "residual_channels": 8,
        "mel": d["model"]["mel"],
    }
    res = train(from_dict(ExperimentConfig, d))
    assert res.step == 3 and all(math.isfinite(x) for _, x in res.losses)
    assert res.dev and math.isfinite(res.dev[-1][1]["nll"])


@pytest.mark.slow
def test_compiled_module_matches_eager(corpus, tiny_experiment, tmp_path) -> None:
    eager = train(tiny_experiment(corpus, tmp_path / "e", steps=3, val_every=100, ckpt_every=100))
    compiled = train(
        tiny_experiment(corpus, tmp_path / "c", steps=3, val_every=100, ckpt_every=100, compile=True)
    )
    assert [x for _, x in compiled.losses] == pytest.approx([x for _, x in eager.losses], rel=1e-4, abs=1e-4)

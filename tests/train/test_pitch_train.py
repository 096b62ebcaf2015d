"""``waveflow train-pitch``: pYIN labels on the mel frames, training, the dev report, the saved predictor
and how a vocoder run takes it (``train.pitch_net``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, TINY_MEL, harmonic_clip

from waveflow_py.cli import main
from waveflow_py.config import ExperimentConfig, MelConfig, from_dict, to_dict
from waveflow_py.train.loop import Trainer, train
from waveflow_py.train.pitch import PitchTrainConfig, load_pitch_net, train_pitch_net

MEL = MelConfig(**TINY_MEL)


def _voiced_and_not(rng: np.random.Generator) -> np.ndarray:
    """A voiced stretch (harmonics of a gliding F0) between two stretches of noise."""
    noise = lambda n: (0.05 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    return np.concatenate([noise(SR // 2), harmonic_clip(rng, 1.0), noise(SR // 2)])


@pytest.fixture(scope="module")
def pitch_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("pitch")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("dev", 2)):
        (root / "corpus" / split).mkdir(parents=True)
        for i in range(n):
            sf.write(root / "corpus" / split / f"spk{i % 2}_{split}{i}.wav", _voiced_and_not(rng), SR)
    cfg = PitchTrainConfig(steps=400, hidden=16, batch=8, frames=48)
    meta = train_pitch_net(root / "corpus", root / "out", MEL, cfg, progress=False)
    return root / "corpus", root / "out", meta


def test_trains_on_pyin_labels_and_reports_dev_per_speaker(pitch_run) -> None:
    _, out, meta = pitch_run
    assert (out / "pitchnet.safetensors").is_file() and json.loads(
        (out / "pitchnet.json").read_text()
    ) == meta
    assert meta["steps"] == 400 and meta["train_files"] == 6 and meta["mel"] == to_dict(MEL)
    assert set(meta["dev"]) == {"spk0", "spk1", "all"}
    # the synthetic task (voiced harmonics between noise) is learnt: labels and frames line up (measured
    # F1 0.96, GPE 0.03 on an AMD EPYC; a chance pitch has GPE ~0.8: 25 of the 144 bins are within 20 %)
    assert meta["dev"]["all"]["vuv_f1"] > 0.85
    assert meta["dev"]["all"]["gpe"] < 0.1
    assert len(list((out / "labels").glob("*.npz"))) == 8  # one cached pYIN track per file


def test_a_second_run_reuses_the_label_cache(pitch_run, monkeypatch, tmp_path) -> None:
    corpus, first, _ = pitch_run
    out = tmp_path / "again"
    shutil.copytree(first / "labels", out / "labels")
    import waveflow_py.evaluation.pitch as pitch

    def no_pyin(*args, **kwargs):
        raise AssertionError("pYIN ran although every label is cached")

    monkeypatch.setattr(pitch, "track_pitch", no_pyin)
    meta = train_pitch_net(corpus, out, MEL, PitchTrainConfig(steps=2, hidden=16, batch=2, frames=16), False)
    assert meta["steps"] == 2


def test_load_checks_the_model_settings(pitch_run, tmp_path) -> None:
    _, out, _ = pitch_run
    weights = load_pitch_net(out, MEL, 16)
    assert weights["out.weight"].shape[1] == 16
    with pytest.raises(ValueError, match="other mel settings"):
        load_pitch_net(out, MelConfig(**{**TINY_MEL, "n_mels": 20}), 16)
    with pytest.raises(ValueError, match="hidden 16 but the model's source_pitch_hidden is 32"):
        load_pitch_net(out, MEL, 32)
    with pytest.raises(FileNotFoundError, match="waveflow train-pitch"):
        load_pitch_net(tmp_path, MEL, 16)
    (tmp_path / "pitchnet.safetensors").write_bytes(b"")
    (tmp_path / "pitchnet.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        load_pitch_net(tmp_path, MEL, 16)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys) -> None:
    assert (
        main(["train-pitch", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--preset", "16k"]) == 2
    )
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="steps: expected a positive integer"):
        PitchTrainConfig(steps=0)


def test_a_vocoder_run_adds_the_learned_pitch_to_a_harmonic_release(
    pitch_run, corpus, tiny_experiment, tmp_path
):
    _, out, _ = pitch_run
    exp = tiny_experiment(corpus, tmp_path / "h", steps=1, export_release=True)
    d = to_dict(exp)
    d["model"]["source_filter"].update(source="harmonic", pitch_lag="first")
    first = train(from_dict(ExperimentConfig, d))
    assert first.release is not None
    d["train"].update(init_from=str(first.release), out_dir=str(tmp_path / "ft"), export_release=False)
    d["model"]["source_filter"].update(source_pitch="learned", source_pitch_hidden=16)
    with pytest.raises(ValueError, match="train.pitch_net is not set"):
        Trainer(from_dict(ExperimentConfig, d))
    d["train"]["pitch_net"] = str(out)
    trainer = Trainer(from_dict(ExperimentConfig, d))
    net = trainer.parts.model.source_filter.harmonic.pitchnet
    for name, value in load_pitch_net(out, MEL, 16).items():
        torch.testing.assert_close(net.state_dict()[name], value, msg=name)
    assert not any(p.requires_grad for p in net.parameters())  # fixed while the vocoder trains
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer.run()
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)
    # adding the source and its learned predictor at once to a release without a source needs it too
    plain = train(tiny_experiment(corpus, tmp_path / "plain", steps=1, export_release=True))
    d["train"].update(init_from=str(plain.release), pitch_net=None)
    with pytest.raises(ValueError, match="train.pitch_net is not set"):
        Trainer(from_dict(ExperimentConfig, d))
    d["train"]["pitch_net"] = str(out)
    d["model"]["source_filter"]["source_pitch"] = "analysis"
    # a pitch_net for a model without the learned predictor is refused
    d["model"]["source_filter"]["source_pitch"] = "analysis"
    with pytest.raises(ValueError, match="no learned pitch predictor"):
        Trainer(from_dict(ExperimentConfig, d))


def test_add_pitch_net_gives_a_release_the_hybrid_pitch_without_training(
    pitch_run, corpus, tiny_experiment, tmp_path, monkeypatch
) -> None:
    """experiments/add_pitch_net.py: the predictor's weights and width from `train-pitch`, every other
    weight, the model config and the sampling block the release's; a non-empty OUT is refused."""
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "experiments"))
    import add_pitch_net

    from waveflow_py.pretrained import load_release

    _, net_dir, _ = pitch_run
    exp = tiny_experiment(corpus, tmp_path / "h", steps=1, export_release=True)
    d = to_dict(exp)
    d["model"]["source_filter"].update(source="harmonic", pitch_lag="first")
    release = train(from_dict(ExperimentConfig, d)).release
    assert release is not None
    out = tmp_path / "hybrid"
    assert add_pitch_net.main([str(release), str(net_dir), str(out), "--floor", "0.25"]) == 0
    old, old_info = load_release(release)
    new, info = load_release(out)
    st = info.config.source_filter
    assert (st.source_pitch, st.source_pitch_floor, st.source_pitch_hidden) == ("hybrid", 0.25, 16)
    assert info.sampling == old_info.sampling and info.provenance["pitch_net"] == str(net_dir)
    theirs = old.state_dict()
    for name, value in new.state_dict().items():
        if ".pitchnet." in name:
            torch.testing.assert_close(value, load_pitch_net(net_dir, MEL, 16)[name.split(".pitchnet.")[1]])
        else:
            torch.testing.assert_close(value, theirs[name], msg=name)
    assert add_pitch_net.main([str(release), str(net_dir), str(out)]) == 2  # never over a release
    plain = train(tiny_experiment(corpus, tmp_path / "plain", steps=1, export_release=True)).release
    assert add_pitch_net.main([str(plain), str(net_dir), str(tmp_path / "none")]) == 2  # no harmonic source
    assert not (tmp_path / "none").exists()
    del sys.modules["add_pitch_net"]

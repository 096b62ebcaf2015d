"""Training data: corpus layouts, reported skips, reproducible segments, step-based sharding, resampling."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow_py.config import DataConfig
from waveflow_py.train.data import SegmentDataset, StepSampler, list_corpus, scan_audio


def test_corrupt_and_short_files_are_reported_and_skipped(make_corpus, tmp_path, caplog) -> None:
    root = make_corpus(tmp_path / "c", n_train=3, n_dev=1)
    (root / "train" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    sf.write(root / "train" / "short.wav", np.zeros(100, np.float32) + 0.1, 8000)
    paths = list_corpus(DataConfig(root=str(root)), "train")
    assert len(paths) == 5
    with caplog.at_level(logging.WARNING):
        scan = scan_audio(paths, 8000, 512, cache=True)
    assert sorted(i.path.name for i in scan.items) == ["train_00.wav", "train_01.wav", "train_02.wav"]
    reasons = {p.name: why for p, why in scan.skipped}
    assert set(reasons) == {"broken.wav", "short.wav"}
    assert reasons["short.wav"].startswith("too short")
    assert reasons["broken.wav"].startswith("unreadable")
    assert "2 of 5 file(s) skipped" in caplog.text and "broken.wav" in caplog.text


def test_skipped_files_written_by_a_run(make_corpus, tiny_experiment, standin, tmp_path) -> None:
    from waveflow_py.train.loop import train

    root = make_corpus(tmp_path / "c", n_train=2, n_dev=1)
    (root / "train" / "broken.flac").write_bytes(b"not audio at all")
    res = train(tiny_experiment(root, tmp_path / "run", steps=1), model_factory=standin)
    text = (tmp_path / "run" / "skipped.txt").read_text()
    assert "# 1 file(s) skipped" in text and "broken.flac" in text and "unreadable" in text
    assert res.step == 1


def test_layouts_csv_and_ljspeech(make_corpus, tmp_path) -> None:
    root = make_corpus(tmp_path / "c", n_train=2, n_dev=1)
    (root / "metadata.csv").write_text(
        "path,split,speaker\ntrain/train_00.wav,train,a\ntrain/train_01.wav,train,b\ndev/dev_00.wav,dev,a\n"
    )
    assert [p.name for p in list_corpus(DataConfig(root=str(root)), "dev")] == ["dev_00.wav"]
    assert len(list_corpus(DataConfig(root=str(root), source="csv", max_items=1), "train")) == 1
    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    (lj / "metadata.csv").write_text("".join(f"LJ001-{i:04d}|text {i}|text {i}\n" for i in range(5)))
    cfg = DataConfig(root=str(lj), dev_count=2)
    assert [p.name for p in list_corpus(cfg, "train")] == [f"LJ001-000{i}.wav" for i in range(3)]
    assert [p.parent.name for p in list_corpus(cfg, "dev")] == ["wavs", "wavs"]
    with pytest.raises(FileNotFoundError, match="corpus directory"):
        list_corpus(DataConfig(root=str(tmp_path / "nope")), "train")


def test_resampled_on_load(tmp_path) -> None:
    (tmp_path / "train").mkdir()
    sf.write(tmp_path / "train" / "a.wav", 0.1 * np.sin(np.arange(16000) / 5).astype(np.float32), 16000)
    scan = scan_audio(list_corpus(DataConfig(root=str(tmp_path)), "train"), 8000, 100, cache=True)
    assert scan.items[0].num_samples == 8000 and scan.items[0].audio.shape == (8000,)


def test_segments_are_reproducible_and_cover_files(make_corpus, tmp_path) -> None:
    root = make_corpus(tmp_path / "c", n_train=3, n_dev=0)
    scan = scan_audio(list_corpus(DataConfig(root=str(root)), "train"), 8000, 512, cache=True)
    a = SegmentDataset(scan.items, 512, seed=1, sample_rate=8000, peak_normalize=False)
    b = SegmentDataset(scan.items, 512, seed=1, sample_rate=8000, peak_normalize=False)
    c = SegmentDataset(scan.items, 512, seed=2, sample_rate=8000, peak_normalize=False)
    assert torch.equal(a[17], b[17]) and a[17].shape == (512,)
    assert not torch.equal(a[17], a[18]) and not torch.equal(a[17], c[17])
    f, off = a.locate(17)
    assert torch.equal(a[17], scan.items[f].audio[off : off + 512])
    assert {a.locate(i)[0] for i in range(100)} == {0, 1, 2}


def test_step_sampler_shards_and_resumes() -> None:
    full = list(StepSampler(2, 0, 4))
    assert full == list(range(8))
    assert list(StepSampler(2, 2, 4)) == full[4:]  # resuming at step 2 replays the same items
    r0 = list(StepSampler(2, 0, 3, rank=0, world_size=2))
    r1 = list(StepSampler(2, 0, 3, rank=1, world_size=2))
    assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(12))

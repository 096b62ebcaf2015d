"""Speakers: ids from metadata.csv or file-name prefixes, and per-speaker means equal to the clips'."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from waveflow_py.evaluation import METRIC_KEYS, SYSTEMS, ClipResult, EvalResult, find_clips, speaker_from_name
from waveflow_py.evaluation.report import speaker_overview, write_json
from waveflow_py.evaluation.speakers import per_speaker, speaker_means, speaker_order, speaker_table


@pytest.mark.parametrize(
    ("name", "speaker"),
    [
        ("dev/103-1240-0000.flac", "103"),  # LibriSpeech
        ("p225_001.wav", "p225"),  # VCTK
        ("LJ001-0001.wav", "LJ001"),
        ("spk_a-7.wav", "spk"),  # the first of either separator
        ("clip0.wav", "clip0"),  # neither: the whole stem
    ],
)
def test_speaker_from_file_name_prefix(name: str, speaker: str) -> None:
    assert speaker_from_name(name) == speaker


def test_find_clips_takes_the_speaker_column_else_the_file_name(tmp_path: Path) -> None:
    for name in ("103-1-0.wav", "p225_001.wav", "x-2.wav"):
        sf.write(tmp_path / name, np.zeros(160), 16000)
    rows = ["path,split,speaker", "103-1-0.wav,dev,reader7", "p225_001.wav,dev,", "x-2.wav,dev,42"]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    # the column wins over the name; an empty cell falls back to the name's prefix
    assert [c.speaker for c in find_clips(tmp_path, split="dev")] == ["reader7", "p225", "42"]
    (tmp_path / "metadata.csv").write_text("path\n103-1-0.wav\np225_001.wav\n")  # no speaker column
    assert [c.speaker for c in find_clips(tmp_path)] == ["103", "p225"]
    (tmp_path / "metadata.csv").unlink()  # a folder of files
    assert [c.speaker for c in find_clips(tmp_path)] == ["103", "p225", "x"]


def test_speakers_of_the_shared_corpus_come_from_its_metadata(shared_data: Path) -> None:
    clips = find_clips(shared_data / "librispeech-mini", split="dev", max_clips=6)
    assert len({c.speaker for c in clips}) == 6  # one clip per dev speaker
    assert all(c.speaker == Path(c.clip_id).name.split("-")[0] for c in clips)


def _clip(i: int, speaker: str, rng: np.random.Generator) -> ClipResult:
    values = {s: {k: float(rng.uniform(0, 2)) for k in METRIC_KEYS} for s in SYSTEMS}
    c = ClipResult(f"c{i}.wav", f"/x/c{i}.wav", 1.0, values, {s: {} for s in SYSTEMS}, speaker=speaker)
    c.nll_nats, c.envelope_nll_nats = float(rng.normal(-5, 1)), float(rng.normal(-4, 1))
    return c


@pytest.fixture
def result() -> EvalResult:
    rng = np.random.default_rng(0)
    clips = [_clip(i, s, rng) for i, s in enumerate(["1998", "367", "1998", "367", "1998", "p225"])]
    clips[2].values["vocoder"]["gpe"] = math.nan  # no frame voiced in both: left out of that mean
    settings = {"griffin_lim_iters": 60, "temperature": 0.6}
    return EvalResult({"name": "m"}, settings, clips, [])


def test_per_speaker_means_equal_the_per_clip_values(result: EvalResult) -> None:
    groups = per_speaker(result)
    assert [g.speaker for g in groups] == ["367", "1998", "p225"] == speaker_order(["p225", "1998", "367"])
    for g in groups:
        mine = [c for c in result.clips if c.speaker == g.speaker]
        assert g.clips == len(mine)
        for system in SYSTEMS:
            for key in METRIC_KEYS:
                want = np.nanmean([c.values[system][key] for c in mine])
                assert g.summary[system][key].mean == pytest.approx(want, rel=1e-12)
        assert g.summary["vocoder"]["nll_nats"].mean == pytest.approx(np.mean([c.nll_nats for c in mine]))
    spk1998 = groups[1]
    assert spk1998.summary["vocoder"]["gpe"].n == 2 and spk1998.summary["vocoder"]["pesq_wb"].n == 3
    assert speaker_means(result, "gpe")["vocoder"][1] == spk1998.mean("vocoder", "gpe")


def test_speaker_table_json_and_terminal_lines_show_those_means(result: EvalResult, tmp_path: Path) -> None:
    labels = {"vocoder": "model", "griffin_lim": "GL", "envelope": "env"}
    lines = speaker_table(result, labels)
    head = [h.strip() for h in lines[0].strip("|").split("|")]
    assert head[:3] == ["speaker", "system", "clips"] and "GPE" in head and "MR-STFT unseen" in head
    rows = {tuple(r.strip("|").split("|")[:2]): r for r in lines[2:]}
    assert len(rows) == 3 * 3  # 3 speakers x (model, GL, env)
    row = [x.strip() for x in rows[(" 1998 ", " model ")].strip("|").split("|")]
    g = per_speaker(result)[1]
    assert row[2] == "3" and row[head.index("GPE")] == f"{g.mean('vocoder', 'gpe'):.3f} (n=2)"
    assert row[head.index("PESQ-WB")] == f"{g.mean('vocoder', 'pesq_wb'):.2f}"
    write_json(result, tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["per_speaker"]["1998"]["clips"] == 3
    assert data["per_speaker"]["1998"]["summary"]["griffin_lim"]["vuv_f1"]["mean"] == pytest.approx(
        g.mean("griffin_lim", "vuv_f1")
    )
    assert [c["speaker"] for c in data["clips"]] == [c.speaker for c in result.clips]
    text = speaker_overview(result)
    assert text[0].split()[:2] == ["speaker", "clips"] and len(text) == 4
    assert text[2].split()[:2] == ["1998", "3"] and f"{g.mean('griffin_lim', 'vuv_f1'):.3f}" in text[2]

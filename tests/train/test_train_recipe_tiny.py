"""The tiny recipe end to end through the CLI: prepare, ``waveflow train``, the NLL drops, a release is
written, ``--resume`` of a finished run / ``--export-only`` work, and the release vocodes and evaluates."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import numpy as np
import soundfile as sf

from waveflow_py.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def test_tiny_recipe_trains_and_nll_drops(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    prepare = runpy.run_path(str(RECIPE / "prepare.py"))["main"]
    assert prepare([str(data)]) == 0
    sets = ["train.progress=false", "train.tensorboard=false", "train.val_at_start=true", f"data.root={data}"]
    args = ["train", str(RECIPE / "config.yaml"), "--out", str(run)] + [x for s in sets for x in ("--set", s)]
    assert main(args) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_nll = [r["nll"] for r in records if r["split"] == "train"]
    dev = [(r["step"], r["nll"]) for r in records if r["split"] == "dev"]
    assert [s for s, _ in dev] == [0, 60, 120]
    assert dev[-1][1] < dev[0][1] - 0.5, dev  # dev NLL (nats/sample) fell substantially
    assert train_nll[-1] < train_nll[0] - 0.5, train_nll
    release = json.loads((run / "release" / "config.json").read_text())
    assert release["model_type"] == "waveflow" and release["provenance"]["steps"] == 120
    assert (run / "skipped.txt").read_text().startswith("# 0 file(s) skipped")
    # exporting the last checkpoint again gives the same weights as the end-of-run release
    out2 = tmp_path / "export"
    assert (
        main(
            [
                "train",
                str(RECIPE / "config.yaml"),
                "--set",
                f"data.root={data}",
                "--out",
                str(out2),
                "--export-only",
                "--resume",
                str(run),
            ]
        )
        == 0
    )
    assert json.loads((out2 / "release" / "config.json").read_text())["files"] == release["files"]
    # the release it made is usable: vocode a dev clip and evaluate it (the recipe's eval stage, small)
    clip = sorted((data / "dev").glob("*.wav"))[0]
    voc = tmp_path / "vocoded"
    assert main(["vocode", str(clip), "-o", str(voc), "--model", str(run / "release"), "--quiet"]) == 0
    audio, sr = sf.read(voc / clip.with_suffix(".wav").name)
    assert sr == 8000 and len(audio) == sf.info(str(clip)).frames
    assert np.isfinite(audio).all() and audio.std() > 0
    report = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--model",
                str(run / "release"),
                "--data",
                str(data / "dev"),
                "--max-clips",
                "1",
                "--gl-iters",
                "1",
                "--figures",
                "0",
                "-o",
                str(report),
            ]
        )
        == 0
    )
    metrics = json.loads((report / "metrics.json").read_text())
    assert len(metrics["clips"]) == 1 and not metrics["failed"]
    vocoder = metrics["summary"]["vocoder"]
    for key in ("mcd", "log_mel_l1", "mrstft", "nll_nats"):  # MCD of the 20-bin mel: c1..c19, not NaN
        assert math.isfinite(vocoder[key]["mean"]), (key, vocoder[key])
    assert "c1..c19 (all that a 20-bin mel has" in (report / "report.md").read_text()

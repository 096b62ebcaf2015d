"""The tiny recipe end to end through the CLI: prepare, ``waveflow train``, the NLL drops, a release is
written, and ``--resume`` of a finished run / ``--export-only`` work."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

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
    assert main(["train", str(RECIPE / "config.yaml"), "--set", f"data.root={data}", "--out", str(out2),
                 "--export-only", "--resume", str(run)]) == 0
    assert json.loads((out2 / "release" / "config.json").read_text())["files"] == release["files"]

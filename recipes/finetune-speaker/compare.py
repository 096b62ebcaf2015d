"""Before/after table of a fine-tuning run: the `waveflow eval` summaries of the release and of the
fine-tuned model on the same dev clips, side by side with the change (and Griffin-Lim for scale).

    python recipes/finetune-speaker/compare.py out/finetune-speaker/before out/finetune-speaker/after
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = (
    ("nll_bits", "NLL (bits/sample)", False),
    ("mrstft", "MR-STFT", False),
    ("log_mel_l1", "log-mel L1", False),
    ("vuv_f1", "V/UV F1", True),
    ("f0_rmse_cents", "F0 RMSE (cents)", False),
    ("pesq_wb", "PESQ-WB", True),
    ("stoi", "STOI", True),
)


def _mean(summary: dict, system: str, key: str) -> float | None:
    return (summary.get(system, {}).get(key) or {}).get("mean")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    reports = []
    for d in argv:
        path = Path(d) / "metrics.json"
        if not path.is_file():
            print(f"{path}: not found (run the eval stage first)", file=sys.stderr)
            return 1
        reports.append(json.loads(path.read_text(encoding="utf-8")))
    before, after = (r["summary"] for r in reports)
    clips = [len(r["clips"]) for r in reports]
    print(f"dev clips: before {clips[0]}, after {clips[1]}")
    print("| metric | better | release | fine-tuned | change | Griffin-Lim |")
    print("|---|---|---|---|---|---|")
    for key, label, higher in ROWS:
        a, b = _mean(before, "vocoder", key), _mean(after, "vocoder", key)
        gl = _mean(after, "griffin_lim", key)
        fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        change = "–" if a is None or b is None else f"{b - a:+.3f}"
        print(f"| {label} | {'↑' if higher else '↓'} | {fmt(a)} | {fmt(b)} | {change} | {fmt(gl)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

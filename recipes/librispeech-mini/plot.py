"""Plot the train and dev NLL of a run (``<run>/metrics.jsonl``) to a PNG and print the dev table.

python recipes/librispeech-mini/plot.py out/librispeech-mini-cpu recipes/librispeech-mini/cpu-curve.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="run directory (with metrics.jsonl)")
    p.add_argument("png", type=Path, help="output image")
    args = p.parse_args(argv)
    records = [json.loads(x) for x in (args.run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [(r["step"], r["nll"]) for r in records if r["split"] == "train"]
    dev = [r for r in records if r["split"] == "dev"]
    print("| step | dev NLL (nats/sample) | dev bits/sample | mel L1 |")
    print("|---:|---:|---:|---:|")
    for r in dev:
        l1 = f"{r['mel_l1']:.3f}" if "mel_l1" in r else "-"
        print(f"| {r['step']} | {r['nll']:.4f} | {r['nll'] / math.log(2):.4f} | {l1} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*train, strict=True), label="train NLL (mean of each 10 steps)", alpha=0.6)
    ax.plot([r["step"] for r in dev], [r["nll"] for r in dev], "o-", label="dev NLL")
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (nats / sample)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Quality per CPU-minute: learning curves and a side-by-side table of training runs (the bake-off).

Reads each run directory's ``metrics.jsonl`` (written by ``waveflow train``; every dev row carries the
run's ``cpu_minutes`` of training steps, carried across resumes) and prints, side by side:
parameters, training samples/s, steps done, CPU-minutes, and the dev NLL (bits/sample) at the end and
at a common CPU-minute mark, with its gap to the best run. ``--plot`` draws dev NLL against CPU-minutes
(PNG), with optional horizontal reference lines for zero-parameter baselines (``--ref NAME=BITS``).

    python benchmarks/quality_per_compute.py /work/runs/bakeoff/* --plot docs/figures/bakeoff.png \
        --ref "LPC envelope, no flow=-6.9"
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def read_run(run: Path) -> dict[str, Any]:
    text = (run / "metrics.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(x) for x in text.splitlines() if x.strip()]
    dev = [
        (r["cpu_minutes"], r["bits_per_sample"], r["step"])
        for r in rows
        if r.get("split") == "dev" and "cpu_minutes" in r and math.isfinite(r["bits_per_sample"])
    ]
    train = [r for r in rows if r.get("split") == "train" and "cpu_minutes" in r]
    # samples per CPU-second of training steps (the wall-clock samples_per_s depends on the machine's load)
    per_step = {r["step"]: r["samples_per_s"] / max(r["steps_per_s"], 1e-12) for r in train}
    rates = sorted(
        (b["step"] - a["step"]) * per_step[b["step"]] / (60 * (b["cpu_minutes"] - a["cpu_minutes"]))
        for a, b in zip(train, train[1:], strict=False)
        if b["step"] > a["step"] and b["cpu_minutes"] > a["cpu_minutes"]
    )
    params = None
    cfg = run / "release" / "config.json"
    if cfg.is_file():
        params = json.loads(cfg.read_text(encoding="utf-8")).get("num_parameters")
    return {
        "name": run.name,
        "dev": dev,
        "rate": rates[len(rates) // 2] if rates else float("nan"),
        "steps": max((r["step"] for r in rows), default=0),
        "params": params,
    }


def at_minutes(dev: list[tuple[float, float, int]], minutes: float) -> float:
    """Dev bits/sample at ``minutes`` CPU-minutes (linear interpolation between validations)."""
    if not dev or minutes > dev[-1][0]:
        return float("nan")
    for (m0, b0, _), (m1, b1, _) in zip(dev, dev[1:], strict=False):
        if m0 <= minutes <= m1:
            return b0 + (b1 - b0) * (minutes - m0) / max(m1 - m0, 1e-12)
    return dev[0][1]


def table(runs: list[dict[str, Any]], mark: float) -> str:
    best_end = min(r["dev"][-1][1] for r in runs if r["dev"])
    lines = [
        "| run | parameters | train samples per CPU-second (median) | steps | CPU-min | "
        f"dev bits/sample @ {mark:g} CPU-min | dev bits/sample at end | vs best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        if not r["dev"]:
            continue
        end = r["dev"][-1]
        params = f"{r['params'] / 1e6:.3f}M" if r["params"] else "?"
        lines.append(
            f"| {r['name']} | {params} | {r['rate']:.0f} | {end[2]} | {end[0]:.1f} | "
            f"{at_minutes(r['dev'], mark):.4f} | {end[1]:.4f} | {end[1] - best_end:+.4f} |"
        )
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], refs: list[tuple[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    best = min(r["dev"][-1][1] for r in runs if r["dev"])
    close = [r for r in runs if r["dev"] and r["dev"][-1][1] - best < 0.3]  # the zoomed panel
    for ax, shown, title in (
        (axes[0], runs, "all runs"),
        (axes[1], close, "zoom: runs within 0.3 bits/sample of the best"),
    ):
        for i, r in enumerate(runs):
            if r["dev"] and r in shown:
                xs, ys = [d[0] for d in r["dev"]], [d[1] for d in r["dev"]]
                ax.plot(xs, ys, marker=".", color=f"C{i}", label=r["name"])
        for j, (name, bits) in enumerate(refs):
            ax.axhline(bits, color=f"C{len(runs) + j}", linestyle="--", linewidth=1, label=name)
        ax.set_xlabel("CPU-minutes of training (1 thread)")
        ax.set_ylabel("dev NLL (bits/sample, lower is better)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    lows = [d[1] for r in close for d in r["dev"]] + [b for _, b in refs]
    if lows:
        top = max(max(b for _, b in refs) if refs else best, best + 0.05)
        axes[1].set_ylim(min(lows) - 0.03, min(top + 0.1, max(lows)) + 0.03)
    fig.suptitle("Quality per compute: librispeech-mini dev")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (with metrics.jsonl)")
    ap.add_argument(
        "--mark",
        type=float,
        default=None,
        help="CPU-minute mark for the table (default: the shortest run's last validation)",
    )
    ap.add_argument("--plot", type=Path, default=None, help="write the learning curves to this PNG")
    ap.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="NAME=BITS",
        help="a horizontal reference line (e.g. a zero-parameter baseline's dev bits/sample)",
    )
    args = ap.parse_args(argv)
    runs = [read_run(r) for r in args.runs if (r / "metrics.jsonl").is_file()]
    if not runs:
        print("no run with a metrics.jsonl", file=sys.stderr)
        return 2
    mark = args.mark if args.mark is not None else min(r["dev"][-1][0] for r in runs if r["dev"])
    from waveflow_py.dtypes import speed_flags

    print(f"CPU flags of this machine (the runs' throughput was measured where they ran): {speed_flags()}")
    print(table(runs, mark))
    if args.plot:
        refs = [(x.rsplit("=", 1)[0], float(x.rsplit("=", 1)[1])) for x in args.ref]
        plot(runs, refs, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

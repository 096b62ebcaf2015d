"""Dev curves of training runs from their checkpoints: MR-STFT (seen and unseen resolutions), log-mel L1,
PESQ-WB, V/UV F1, GPE and the dev NLL against CPU-minutes of training steps, side by side (the bake-off of
the spectral objective, issue 18: docs/quality-per-compute.md, section 13).

Every checkpoint a run keeps (``train.keep_last_k``) holds its weights and the CPU time of the steps before
it (``state.json`` ``clock``); this script picks the checkpoints nearest to every ``--every`` CPU-minutes,
vocodes the same dev clips with each (the run's sampling: its ``val_temperature``, else the temperature and
levelling of the release it started from), scores them with :func:`waveflow_py.evaluation.compute_metrics`
and prints one table, a JSON file and a PNG of the curves.

    python experiments/objective_bakeoff.py /work/runs/spectral/* --clips 12 --seconds 4 \
        --every 10 --json docs/figures/spectral-bakeoff.json --plot docs/figures/spectral-bakeoff.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import ExperimentConfig, from_dict
from waveflow_py.evaluation import compute_metrics, griffin_lim
from waveflow_py.evaluation.clips import find_clips, read_clip
from waveflow_py.inference import synthesize
from waveflow_py.models import build_model
from waveflow_py.pretrained import load_release
from waveflow_py.sampling import SamplingConfig, resolve_sampling
from waveflow_py.train import checkpoint as ckpt
from waveflow_py.train.release_writer import inherited_sampling

GRIFFIN_LIM = "Griffin-Lim"
KEYS = ("mrstft", "mrstft_unseen", "log_mel_l1", "pesq_wb", "vuv_f1", "gpe", "nll")


def _checkpoints(run: Path, every: float) -> list[tuple[float, Path]]:
    """``(cpu_minutes, step dir)`` of the kept checkpoints nearest to every ``every`` CPU-minutes (and the
    last one)."""
    found = []
    for _, path in ckpt.step_dirs(run / "checkpoints"):
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        found.append((state.get("clock", {}).get("cpu_s", 0.0) / 60, path))
    if not found:
        return []
    marks = np.arange(0.0, found[-1][0] + every, every)
    chosen = {min(found, key=lambda f, m=m: abs(f[0] - m))[1] for m in marks} | {found[-1][1]}
    return [f for f in found if f[1] in chosen]


def _model(step_dir: Path) -> tuple[torch.nn.Module, SamplingConfig, Any]:
    """The checkpoint's model, the run's sampling settings (the one rule: its ``val_temperature`` over its
    release's settings over the library default) and its mel config."""
    data = ckpt.load_checkpoint(step_dir)
    exp = from_dict(ExperimentConfig, data["config"])
    model = build_model(exp.model_type, exp.model)
    ckpt.load_model_weights(model, data["ema"] if "ema" in data else data["model"])
    release = inherited_sampling(data["state"].get("init_from"))
    return model.eval(), resolve_sampling(release, temperature=exp.train.val_temperature), exp.model.mel


def _release_model(name: str) -> tuple[torch.nn.Module, SamplingConfig, Any]:
    """A release (the runs' starting point) with its own sampling settings."""
    model, info = load_release(name)
    return model.eval(), info.sampling, info.config.mel


@torch.no_grad()
def score(
    which: Path | str, clips: list[tuple[str, np.ndarray]], cache: dict[Any, Any], griffin: bool = False
) -> dict[str, Any]:
    """Mean metrics of a checkpoint (a step directory), a release (a name) or, with ``griffin``, of
    Griffin-Lim on the mels of ``which``'s mel settings (no NLL)."""
    model, sampling, mel_cfg = _model(which) if isinstance(which, Path) else _release_model(which)
    mel_fn = MelSpectrogram(mel_cfg)
    rows = []
    for i, (speaker, ref) in enumerate(clips):
        x = torch.from_numpy(ref).float()[None]
        mel = mel_fn(x)
        if griffin:
            out = griffin_lim(mel[0].numpy(), mel_cfg, length=x.shape[1])
        else:
            gen = torch.Generator().manual_seed(1000 + i)
            audio, _ = synthesize(model, mel, sampling=sampling, generator=gen)
            out = audio[0, : x.shape[1]].numpy()
        tracks = cache.setdefault(i, {})
        values = compute_metrics(ref, out, mel_cfg.sample_rate, mel_cfg, reference_tracks=tracks).values
        values["nll"] = float("nan") if griffin else -float(model.log_prob(x, mel).mean())
        values["speaker"] = speaker
        rows.append(values)
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in KEYS}
    speakers = sorted({r["speaker"] for r in rows})
    mean["per_speaker"] = {
        s: {k: float(np.nanmean([r[k] for r in rows if r["speaker"] == s])) for k in KEYS} for s in speakers
    }
    return mean


def _row(point: dict[str, Any]) -> str:
    return "  ".join(f"{k} {point[k]:.3f}" for k in KEYS if math.isfinite(point[k]))


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("mrstft", "MR-STFT"), ("pesq_wb", "PESQ-WB"), ("gpe", "GPE"), ("nll", "dev NLL (nats/sample)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name, points in results.items():
            if name == GRIFFIN_LIM:
                if math.isfinite(points[0][key]):
                    ax.axhline(points[0][key], color="k", linestyle="--", linewidth=1, label=name)
                continue
            ax.plot([p["cpu_minutes"] for p in points], [p[key] for p in points], marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("CPU-minutes of training steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--data", default="../shared/data/librispeech-mini")
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--every", type=float, default=10.0, help="CPU-minutes between evaluated checkpoints")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the runs (and baselines) already in --json and score only the others (same clips!)",
    )
    p.add_argument(
        "--start",
        default="universal-16k-preview",
        help="release the fine-tuning runs start from: scored as their point at 0 CPU-minutes, and "
        "Griffin-Lim on its mel settings as the reference line ('' for neither)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    chosen = find_clips(args.data, "dev", args.clips)
    clips = [(c.speaker, read_clip(c, 16000, args.seconds, 256)) for c in chosen]
    cache: dict[Any, Any] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    if args.reuse and args.json and args.json.exists():  # scored before: kept, not scored again
        results = json.loads(args.json.read_text(encoding="utf-8"))
    start: list[dict[str, Any]] = []
    if args.start:
        for name, griffin in ((GRIFFIN_LIM, True), (args.start, False)):
            if name in results:
                print(f"{name:28s}    0.0 CPU-min  " + _row(results[name][0]) + "  (from --json)", flush=True)
                continue
            point = {"cpu_minutes": 0.0, "step": 0, **score(args.start, clips, cache, griffin=griffin)}
            results[name] = [point]
            print(f"{name:28s}    0.0 CPU-min  " + _row(point), flush=True)
        start = results[args.start]
    for run in args.runs:
        if run.name in results:
            print(f"{run.name:28s} kept from {args.json}", flush=True)
            continue
        state = json.loads((ckpt.step_dirs(run / "checkpoints")[0][1] / "state.json").read_text())
        init = state.get("init_from")  # the runs fine-tuned from --start begin at its point
        points = list(start) if init and args.start and Path(init).name == Path(args.start).name else []
        for minutes, step_dir in _checkpoints(run, args.every):
            step = int(step_dir.name.split("_")[1])
            point = {"cpu_minutes": minutes, "step": step, **score(step_dir, clips, cache)}
            points.append(point)
            print(f"{run.name:28s} {minutes:6.1f} CPU-min  " + _row(point), flush=True)
        results[run.name] = points
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

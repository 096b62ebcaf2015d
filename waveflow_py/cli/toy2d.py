"""``waveflow toy2d``: train every flow family on 2-D toy data, write results.md and densities.png.

Shows that the flow library learns: each family's held-out NLL (nats per point) against a fitted
single Gaussian, and a grid of the learned densities. See ``recipes/toy2d``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path
from typing import Any

from waveflow_py.cli import add_overrides_argument

HELP = "train each flow family on 2-D toy data sets; write an NLL table and a density plot"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    parser.add_argument("--config", type=Path, default=None, help="YAML config (Toy2DConfig fields)")
    parser.add_argument(
        "--families", nargs="+", default=None, help="flow families (planar nice realnvp glow maf iaf cnf)"
    )
    parser.add_argument(
        "--datasets", nargs="+", default=None, help="data sets (moons checkerboard 8gaussians)"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=None, help="fresh samples per step")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    add_overrides_argument(parser, "family_steps.cnf=300")
    parser.add_argument("--no-plot", action="store_true", help="skip densities.png")


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {
        "families": args.families,
        "datasets": args.datasets,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    return {k: v for k, v in given.items() if v is not None}


def _command(args: argparse.Namespace) -> str:
    """The canonical command line equivalent to this invocation."""
    parts = ["waveflow", "toy2d"]
    if args.config is not None:
        parts += ["--config", str(args.config)]
    for flag, value in (("--families", args.families), ("--datasets", args.datasets)):
        if value is not None:
            parts += [flag, *value]
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--seed", args.seed)):
        if value is not None:
            parts += [flag, str(value)]
    for item in args.overrides:
        parts += ["--set", item]
    if args.no_plot:
        parts.append("--no-plot")
    parts += ["-o", str(args.output)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from waveflow_py.config import from_dict, load_yaml, merge_dicts, parse_overrides, to_dict
    from waveflow_py.toy2d import Toy2DConfig, plot_densities, run_toy2d, write_results

    base = to_dict(load_yaml(Toy2DConfig, args.config)) if args.config is not None else {}
    data = merge_dicts(merge_dicts(base, _flag_overrides(args)), parse_overrides(args.overrides))
    cfg = from_dict(Toy2DConfig, data)
    torch.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    total = sum(cfg.steps_for(f) for f in cfg.families) * len(cfg.datasets)
    with tqdm(total=total, unit="step", dynamic_ncols=True) as bar:

        def on_step(dataset: str, family: str, step: int, loss: float) -> None:
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix_str(f"{dataset}/{family} loss {loss:.3f}")

        results, gaussian, entropy, flows = run_toy2d(cfg, on_step=on_step)
    command = _command(args)
    write_results(args.output / "results.md", cfg, results, gaussian, entropy, command)
    (args.output / "resolved_config.yaml").write_text(_yaml(to_dict(cfg)), encoding="utf-8")
    if not args.no_plot:
        plot_densities(args.output / "densities.png", cfg, flows)
    logger.info("wrote %s", args.output)
    return 0


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)

"""``waveflow train CONFIG [--set key=value ...] [--resume [CKPT]] [--out DIR] [--export-only]``.

Multi-GPU: ``torchrun --nproc_per_node=N -m waveflow_py train CONFIG`` (DDP from torchrun's environment).
"""

from __future__ import annotations

import argparse
import logging

from waveflow_py.cli import add_overrides_argument

HELP = "train a vocoder from a YAML experiment config (recipes/*/config.yaml)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (may 'extends:' a base config)")
    add_overrides_argument(parser, "train.lr=1e-4")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CKPT",
        help="continue from the latest checkpoint of the run directory, or from CKPT "
        "(a step_* directory or a run directory)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        metavar="N",
        help="time budget of this invocation (train.max_minutes): stop cleanly after N minutes with a "
        "checkpoint, a validation and a release; continue later with --resume",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="RELEASE",
        help="start a new run from a release's weights (train.init_from; fine-tuning). Its model and mel "
        "settings must equal the config's",
    )
    parser.add_argument("--out", default=None, metavar="DIR", help="run directory (default: train.out_dir)")
    parser.add_argument(
        "--export-only",
        action="store_true",
        help="write a release from the checkpoint given by --resume (or the run's latest) "
        "and exit without training",
    )


def run(args: argparse.Namespace) -> int:
    from waveflow_py.config import ExperimentConfig, TrainConfig, from_dict, read_yaml
    from waveflow_py.train.loop import train
    from waveflow_py.train.release_writer import export_checkpoint

    log = logging.getLogger("waveflow.train")
    overrides = list(args.overrides)
    if args.minutes is not None:
        overrides.append(f"train.max_minutes={args.minutes}")
    if args.init_from is not None:
        if args.resume is not None:
            raise ValueError("--init-from starts a new run and --resume continues one: give only one")
        overrides.append(f"train.init_from={args.init_from}")
    data = read_yaml(args.config, overrides)
    out = args.out if args.out is not None else (data.get("train") or {}).get("out_dir", TrainConfig.out_dir)
    source = out if args.resume in (None, True) else args.resume  # the checkpoint of --resume/--export-only
    if not {"model", "model_type", "mel_preset"} & set(data):
        checkpoint = source if args.resume is not None or args.export_only else None
        data = _adopt_model(data, checkpoint, log)
    exp = from_dict(ExperimentConfig, data)
    if args.export_only:
        path = export_checkpoint(exp, source, out)
        log.info("release written to %s", path)
        return 0
    result = train(exp, out_dir=out, resume=args.resume)
    if result.stopped_by_budget:
        log.info("time budget spent at step %d of %d: resume with --resume", result.step, exp.train.steps)
    if result.dev:
        step, last = result.dev[-1]
        log.info(
            "done: step %d, dev NLL %.4f nats/sample (%.4f bits/sample)",
            step,
            last["nll"],
            last["bits_per_sample"],
        )
    else:
        log.info("done: step %d", result.step)
    return 0


def _adopt_model(data: dict, checkpoint: str | None, log: logging.Logger) -> dict:
    """A config without ``model_type``/``model``/``mel_preset`` (a fine-tuning config): the model and
    its mel settings are the release's with ``--init-from`` (the one architecture its weights fit), the
    run's own checkpoint's with ``--resume``/``--export-only``; otherwise the defaults stand."""
    from waveflow_py.config import to_dict

    init_from = (data.get("train") or {}).get("init_from")
    if init_from:
        from waveflow_py.pretrained import load_release_config

        info = load_release_config(init_from)
        log.info("model and mel settings from release %s (%s)", info.path, info.model_type)
        return {**data, "model_type": info.model_type, "model": to_dict(info.config)}
    if checkpoint is not None:
        from waveflow_py.train.checkpoint import read_checkpoint_config, resolve_checkpoint

        step_dir = resolve_checkpoint(checkpoint, verify=False)
        saved = read_checkpoint_config(step_dir)
        if "model" in saved:
            log.info("model and mel settings from checkpoint %s", step_dir)
            return {**data, "model_type": saved.get("model_type", "waveflow"), "model": saved["model"]}
    return data

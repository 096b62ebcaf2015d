"""``waveflow mel INPUT... -o OUT``: compute log-mel features of audio files.

Inputs are audio files or directories (searched recursively for audio suffixes, the folder layout
mirrored under ``OUT``). Each input gives one ``(n_mels, F)`` float32 array, ``.npy`` (default) or
``.pt`` (a plain tensor, loadable with ``torch.load(weights_only=True)``), written atomically.
``OUT/mel_config.json`` records the settings used. The settings come from a preset (``--preset``,
default ``tacotron2``) or from a release (``--model``), so the features match what it was trained on.
A bad input is reported on stderr and the others still complete. Before anything is written, an output
that resolves to an input is refused, and so is an existing file unless it is an earlier output of
``waveflow mel`` (``OUT`` already holds its ``mel_config.json``) or ``--overwrite`` is given. Exit status:
0 all written, 1 some inputs failed, 2 bad usage (or an unwritable ``OUT``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from waveflow_py.cli._outputs import add_overwrite_argument, check_outputs

HELP = "compute log-mel spectrograms (.npy/.pt) of audio files with a preset's or a model's settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default=None, help="mel preset name (default: tacotron2)")
    source.add_argument("--model", default=None, metavar="NAME_OR_DIR", help="use a release's mel settings")
    parser.add_argument(
        "--format", choices=("npy", "pt"), default="npy", help="output file type (default npy)"
    )
    parser.add_argument(
        "--no-resample",
        action="store_true",
        help="fail on files whose sample rate differs from the settings' (default: resample them)",
    )
    parser.add_argument("--allow-silent", action="store_true", help="accept all-zero recordings")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_overwrite_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _mel_config(args: argparse.Namespace) -> Any:
    if args.model is not None:
        from waveflow_py.pretrained import load_release_config

        return load_release_config(args.model).mel
    from waveflow_py.config import mel_preset

    return mel_preset(args.preset or "tacotron2")


def _jobs(
    inputs: list[str], out_dir: Path, suffix: str
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """``(audio file, output file)`` pairs and ``(input, problem)`` for inputs that cannot be used."""
    from waveflow_py.audio import find_audio_files

    jobs: list[tuple[Path, Path]] = []
    problems: list[tuple[str, str]] = []
    taken: dict[Path, Path] = {}
    for item in inputs:
        root = Path(item)
        if not root.exists():
            problems.append((item, "no such file or directory"))
            continue
        files = find_audio_files([root])
        if root.is_dir() and not files:
            problems.append((item, "directory holds no audio files"))
        for f in files:
            rel = f.relative_to(root).with_suffix(suffix) if root.is_dir() else Path(f.stem + suffix)
            target = out_dir / rel
            if target in taken:
                problems.append((str(f), f"output {target} is already written for {taken[target]}"))
                continue
            taken[target] = f
            jobs.append((f, target))
    return jobs, problems


def _is_mel_config(path: Path) -> bool:
    """Whether ``path`` is a ``mel_config.json`` as this command writes it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"sample_rate", "n_mels", "hop_length"} <= set(data)


def _write(target: Path, mel: Any, fmt: str) -> None:
    import numpy as np
    import torch

    from waveflow_py.atomic import atomic_write

    def write(tmp: Path) -> None:
        if fmt == "npy":
            np.save(tmp, mel.numpy().astype(np.float32), allow_pickle=False)
        else:
            torch.save(mel.contiguous().clone(), tmp)

    atomic_write(target, write)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from waveflow_py.atomic import atomic_write_text
    from waveflow_py.audio import MelSpectrogram, load_audio
    from waveflow_py.config import to_dict

    cfg = _mel_config(args)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"-o {out_dir}: expected a directory, found a file")
    jobs, problems = _jobs(args.inputs, out_dir, f".{args.format}")
    config_file = out_dir / "mel_config.json"
    earlier_run = config_file.is_file() and _is_mel_config(config_file)  # OUT is an earlier mel output
    check_outputs(
        "mel",
        [config_file, *(target for _, target in jobs)],
        [source for source, _ in jobs],
        overwrite=args.overwrite,
        ours=lambda f: earlier_run and (f == config_file or f.suffix in (".npy", ".pt")),
    )
    for item, problem in problems:
        print(f"waveflow mel: {item}: {problem}", file=sys.stderr)
    if not jobs:
        print("waveflow mel: no audio files to process", file=sys.stderr)
        return 1
    module = MelSpectrogram(cfg).to(args.device)
    try:
        atomic_write_text(config_file, json.dumps(to_dict(cfg), indent=2) + "\n")
    except OSError as e:
        raise ValueError(f"-o {out_dir}: cannot write there ({e.strerror or e})") from e
    failed = len(problems)
    with tqdm(jobs, unit="file", desc="mel", disable=args.quiet, file=sys.stderr) as bar:
        for path, target in bar:
            try:
                audio, _ = load_audio(
                    path, cfg.sample_rate, resample=not args.no_resample, allow_silent=args.allow_silent
                )
                with torch.inference_mode():
                    mel = module(audio.to(args.device))[0].float().cpu()
                _write(target, mel, args.format)
            except (ValueError, OSError) as e:  # AudioError is a ValueError; keep going
                failed += 1
                message = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
                tqdm.write(f"waveflow mel: {message}", file=sys.stderr)
    done = len(jobs) - (failed - len(problems))
    print(f"wrote {done} mel file(s) to {out_dir} ({cfg.preset}, {cfg.n_mels} mels)", file=sys.stderr)
    return 0 if failed == 0 else 1

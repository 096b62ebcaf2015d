"""``waveflow mel INPUT... -o OUT``: compute log-mel features of audio files.

Inputs are audio files or directories (searched recursively for audio suffixes, the folder layout
mirrored under ``OUT``). Each input gives one ``(n_mels, F)`` float32 mel that carries its settings
(:mod:`waveflow_py.audio.melfile`): ``.npy`` (default) with ``mel_config.json`` in its folder, or ``.pt`` /
``.npz`` with the settings inside; ``waveflow vocode`` reads them and refuses a model of other settings.
The settings come from a release (``--model``), a preset (``--preset``), or else the default model's
(where only a preview is bundled: the preview's), and the command says which. An ``OUT`` that already
holds mels of other settings is refused. A bad input is reported on stderr and the others still
complete. Before anything is written, an output that resolves to an input is refused, and so is an
existing file unless it is an earlier output of ``waveflow mel`` (``OUT`` already holds its
``mel_config.json``) or ``--overwrite`` is given. Exit status: 0 all written, 1 some inputs failed, 2 bad
usage (or an unwritable ``OUT``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from waveflow_py.cli import parse_device
from waveflow_py.cli._outputs import add_overwrite_argument, check_outputs

HELP = "compute log-mel spectrograms (.npy/.pt/.npz, with their settings) of audio files"

# the load_audio options this command offers as flags (see AudioError.with_hint)
AUDIO_HINTS = {
    "resample": "drop --no-resample to resample it",
    "allow_silent": "pass --allow-silent to accept it",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--preset", default=None, help="mel preset name (default: the default model's settings)"
    )
    source.add_argument("--model", default=None, metavar="NAME_OR_DIR", help="use a release's mel settings")
    parser.add_argument(
        "--format", choices=("npy", "pt", "npz"), default="npy", help="output file type (default npy)"
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


def mel_settings(args: argparse.Namespace) -> tuple[Any, str]:
    """The settings and where they come from (said on stderr)."""
    from waveflow_py.pretrained import ReleaseNotFoundError, default_model, load_release_config

    if args.preset is not None:
        from waveflow_py.config import mel_preset

        return mel_preset(args.preset), f"preset {args.preset}"
    if args.model is not None:
        return load_release_config(args.model).mel, f"model {args.model}"
    try:
        name, why = default_model()
    except ReleaseNotFoundError as e:
        raise ValueError(f"no default model to take mel settings from ({e}); pass --preset or --model") from e
    return load_release_config(name).mel, f"{name} ({why}; --preset or --model for others)"


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
        if not root.is_dir() and not root.is_file():
            problems.append((item, "not a regular file (a FIFO, device or socket)"))
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


def _check_output(out_dir: Path, cfg: Any, jobs: list[tuple[Path, Path]], overwrite: bool) -> Path:
    """Refuse (before anything is written) an OUT that is a file, holds mels of other settings, or whose
    files would replace an input or someone else's file; returns OUT's mel_config.json."""
    from waveflow_py.audio.conventions import describe_mel
    from waveflow_py.audio.melfile import SETTINGS_FILE, read_settings

    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"-o {out_dir}: expected a directory, found a file")
    config_file = out_dir / SETTINGS_FILE
    try:
        earlier = read_settings(out_dir) if out_dir.is_dir() else None  # OUT is an earlier mel output
    except ValueError:
        earlier = None  # not ours: check_outputs refuses it unless --overwrite
    if earlier is not None and earlier != cfg:
        raise ValueError(
            f"-o {out_dir} holds mels of other settings ({describe_mel(earlier)}; these are "
            f"{describe_mel(cfg)}): they would be misread; choose another -o"
        )
    check_outputs(
        "mel",
        [config_file, *(target for _, target in jobs)],
        [source for source, _ in jobs],
        overwrite=overwrite,
        ours=lambda f: earlier is not None and (f == config_file or f.suffix in (".npy", ".pt", ".npz")),
    )
    return config_file


def _compute(jobs: list[tuple[Path, Path]], cfg: Any, args: argparse.Namespace) -> int:
    """Write one mel per job; returns the number of inputs that failed (each named on stderr)."""
    import torch
    from tqdm import tqdm

    from waveflow_py.audio import AudioError, MelSpectrogram, load_audio, save_mel

    module = MelSpectrogram(cfg).to(args.device)
    failed = 0
    for path, target in tqdm(jobs, unit="file", desc="mel", disable=args.quiet, file=sys.stderr):
        try:
            audio, _ = load_audio(
                path, cfg.sample_rate, resample=not args.no_resample, allow_silent=args.allow_silent
            )
            with torch.inference_mode():
                mel = module(audio.to(args.device))[0].float().cpu()
            save_mel(target, mel, cfg)
        except (ValueError, OSError) as e:  # AudioError is a ValueError; keep going
            failed += 1
            message = e.with_hint(AUDIO_HINTS) if isinstance(e, AudioError) else str(e)
            message = message if message.startswith(str(path)) else f"{path}: {message}"
            tqdm.write(f"waveflow mel: {message}", file=sys.stderr)
    return failed


def run(args: argparse.Namespace) -> int:
    from waveflow_py.audio.conventions import describe_mel
    from waveflow_py.audio.melfile import write_settings

    parse_device(args.device)
    cfg, which = mel_settings(args)
    out_dir = Path(args.output)
    jobs, problems = _jobs(args.inputs, out_dir, f".{args.format}")
    _check_output(out_dir, cfg, jobs, args.overwrite)
    if jobs:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_settings(out_dir, cfg, replace=args.overwrite)
        except OSError as e:
            raise ValueError(f"-o {out_dir}: cannot write there ({e.strerror or e})") from e
        print(f"waveflow mel: mel settings of {which}, i.e. {describe_mel(cfg)}", file=sys.stderr)
    for item, problem in problems:
        print(f"waveflow mel: {item}: {problem}", file=sys.stderr)
    if not jobs:
        print("waveflow mel: no audio files to process", file=sys.stderr)
        return 1
    failed = _compute(jobs, cfg, args)
    print(
        f"wrote {len(jobs) - failed} mel file(s) to {out_dir} ({cfg.preset}, {cfg.n_mels} mels)",
        file=sys.stderr,
    )
    return 0 if failed + len(problems) == 0 else 1

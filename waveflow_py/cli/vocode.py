"""``waveflow vocode INPUT... -o OUT``: mels or recordings in, audio files out.

Inputs are audio files (resynthesised: mel computed with the model's own settings, then vocoded),
mel files (``.npy``; ``.pt`` read with ``torch.load(weights_only=True)``), or directories (searched
recursively for both). A bad input (unreadable, corrupt, wrong shape or dtype) is reported on stderr
(``waveflow vocode: FILE: problem``), the others still complete, and a summary line counts the failures.
Outputs are checked before anything is written: one that resolves to an input is refused, and an existing
file that an earlier ``waveflow vocode`` did not write (its audio ``software`` tag) is refused unless
``--overwrite``. Exit status: 0 all written, 1 some inputs failed (the rest written), 2 bad usage (unknown
model, bad options, an output that would replace an input or a foreign file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waveflow_py.cli import add_temperature_argument
from waveflow_py.cli._outputs import add_overwrite_argument, check_outputs, is_tagged_audio, software_tag

HELP = "vocode mel files (.npy/.pt) or resynthesise audio files with a released model"

MEL_EXTENSIONS = (".npy", ".pt")
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files, .npy/.pt mels, or directories"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output directory (or a .wav/.flac file name for a single input)",
    )
    parser.add_argument(
        "--model", default=None, help="release name or directory (default: the default bundled release)"
    )
    add_temperature_argument(parser)
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="auto (default: bf16 where the device computes it faster, else fp32), fp32, fp16 or bf16",
    )
    parser.add_argument(
        "--denoise",
        type=float,
        default=0.0,
        metavar="STRENGTH",
        help="bias-spectrum denoiser strength (0: off; 0.01-0.1 typical)",
    )
    parser.add_argument(
        "--mel-format",
        default="ln",
        help="convention of .npy/.pt mels: ln (natural log: Tacotron 2, HiFi-GAN; default), log10 "
        "(ESPnet, ParallelWaveGAN), db (Coqui), model (already the model's); "
        "see waveflow_py.audio.conventions",
    )
    parser.add_argument(
        "--mel-stats", default=None, metavar="FILE", help="mean/std stats of normalised mels (.npy or .npz)"
    )
    parser.add_argument(
        "--mel-source-preset",
        default=None,
        metavar="PRESET",
        help="the front end's mel preset (waveflow_py.config.MEL_PRESETS) when its features differ from "
        "the model's: refused unless --mel-approximate",
    )
    parser.add_argument(
        "--mel-approximate",
        action="store_true",
        help="re-project mels of another filter bank (same rate and hop) through the pseudo-inverse",
    )
    parser.add_argument(
        "--mel-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra mel-format parameter (repeatable), e.g. --mel-param stats=stats.npy",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="items vocoded together (default 8)")
    parser.add_argument(
        "--resample",
        action="store_true",
        help="resample audio inputs at another rate than the model's (default: error)",
    )
    add_overwrite_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@dataclass
class _Job:
    source: Path
    target: Path
    mel: Any = None  # (1, n_mels, F) model-convention mel once loaded
    length: int | None = None  # samples to keep (audio inputs)


def _collect(inputs: list[str], output: Path, bad: list[tuple[Path, str]]) -> list[_Job]:
    from waveflow_py.audio import AUDIO_EXTENSIONS, list_audio_files

    exts = tuple(AUDIO_EXTENSIONS) + MEL_EXTENSIONS
    found: list[tuple[Path, Path]] = []  # (file, name relative to the output dir)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = list_audio_files(path, exts)
            if not files:
                bad.append((path, f"no audio or mel files ({', '.join(exts)}) in this directory"))
            found.extend((f, f.relative_to(path).with_suffix("")) for f in files)
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            bad.append((path, "no such file or directory"))
    single_file = len(found) == 1 and output.suffix.lower() in (".wav", ".flac", ".ogg")
    jobs, used = [], set()
    for src, rel in found:
        target = output if single_file else output / rel.with_suffix(".wav")
        n = 2
        while target in used:
            target = target.with_name(f"{rel.name}_{n}.wav")
            n += 1
        used.add(target)
        jobs.append(_Job(src, target))
    return jobs


def _load_mel_file(path: Path) -> Any:
    import numpy as np
    import torch

    kind = path.suffix.lower()
    try:
        if kind == ".npy":
            obj: Any = np.load(path, allow_pickle=False)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an untrusted file: numpy/pickle/zip readers raise many types, all "bad file"
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise ValueError(
            f"cannot read the {kind} file, it is corrupt or not a mel ({type(e).__name__}: {first})"
        ) from e
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiu":
            raise ValueError(f"expected a numeric (float) mel array, got dtype {obj.dtype}")
        return torch.from_numpy(obj.astype(np.float32, copy=False))
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        obj = tensors.get("mel", next(iter(tensors.values())) if len(tensors) == 1 else None)
    if not isinstance(obj, torch.Tensor):
        raise ValueError("expected a tensor (or a dict with a 'mel' tensor) in the .pt file")
    if obj.is_complex() or obj.dtype == torch.bool:
        raise ValueError(f"expected a real-valued mel tensor, got dtype {obj.dtype}")
    return obj.float()


def _prepare(job: _Job, vocoder: Any, args: argparse.Namespace, fmt: dict[str, Any]) -> None:
    if job.source.suffix.lower() in MEL_EXTENSIONS:
        mel = _load_mel_file(job.source)
        if mel.dim() == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.dim() != 2:
            raise ValueError(f"expected a mel of shape (n_mels, frames), got {tuple(mel.shape)}")
        job.mel = vocoder.prepare_mel(mel, args.mel_format, **fmt)
    else:
        from waveflow_py.audio import load_audio

        wav, _ = load_audio(job.source, vocoder.sample_rate, resample=args.resample)
        job.mel = vocoder.prepare_mel(vocoder.mel(wav), "model")
        job.length = wav.numel()


def _synthesise(jobs: list[_Job], vocoder: Any, args: argparse.Namespace) -> list[Any]:
    """Audio of prepared jobs through :meth:`Vocoder.vocode_many` (its batching, padding and trimming);
    audio inputs are cut to their recording's length."""
    kwargs: dict[str, Any] = {"denoise": args.denoise, "mel_format": "model", "batch_size": args.batch_size}
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    audio = vocoder.vocode_many([j.mel[0] for j in jobs], **kwargs)
    return [
        (a if job.length is None else a[: job.length]).float().cpu()
        for job, a in zip(jobs, audio, strict=True)
    ]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from waveflow_py.audio import save_audio
    from waveflow_py.config import mel_preset, parse_overrides
    from waveflow_py.vocoder import Vocoder

    if args.batch_size < 1:
        raise ValueError(f"--batch-size: expected >= 1, got {args.batch_size}")
    fmt = parse_overrides(args.mel_param)
    if args.mel_stats is not None:
        fmt["stats"] = args.mel_stats
    if args.mel_source_preset is not None:
        fmt["source_cfg"] = mel_preset(args.mel_source_preset)
    if args.mel_approximate:
        fmt["approximate"] = True
    output = Path(args.output)
    failed: list[tuple[Path, str]] = []
    missing: list[tuple[Path, str]] = []
    jobs = _collect(args.inputs, output, missing)
    if output.is_file() and not (len(jobs) == 1 and jobs[0].target == output):
        raise ValueError(f"-o {output}: expected a directory for these inputs, found a file")
    check_outputs(
        "vocode",
        [j.target for j in jobs],
        [j.source for j in jobs],
        overwrite=args.overwrite,
        ours=lambda f: is_tagged_audio(f, "vocode"),
    )
    vocoder = Vocoder.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        truncation=args.truncation,
        excitation_rms=args.excitation_rms,
    )
    written = 0

    def report(path: Path, problem: str) -> None:
        problem = problem.removeprefix(f"{path}: ")  # AudioError messages already name the file
        failed.append((path, problem))
        tqdm.write(f"waveflow vocode: {path}: {problem}", file=sys.stderr)

    for path, problem in missing:
        report(path, problem)
    with tqdm(total=len(jobs), unit="file", desc="vocode", disable=args.quiet, file=sys.stderr) as bar:
        for start in range(0, len(jobs), args.batch_size):
            chunk = jobs[start : start + args.batch_size]
            ready = []
            for job in chunk:
                try:
                    _prepare(job, vocoder, args, fmt)
                    ready.append(job)
                except (ValueError, TypeError, OSError, RuntimeError, EOFError) as e:
                    report(job.source, str(e))
                    bar.update(1)
            if not ready:
                continue
            try:
                results = list(zip(ready, _synthesise(ready, vocoder, args), strict=True))
            except (ValueError, RuntimeError):  # find the culprit: one at a time
                results = []
                for job in ready:
                    try:
                        results.append((job, _synthesise([job], vocoder, args)[0]))
                    except (ValueError, RuntimeError) as e:
                        report(job.source, f"synthesis failed: {e}")
                        bar.update(1)
            for job, audio in results:
                try:
                    save_audio(job.target, audio, vocoder.sample_rate, software=software_tag("vocode"))
                    written += 1
                except (ValueError, OSError, RuntimeError) as e:
                    report(job.source, f"cannot write {job.target}: {e}")
                bar.update(1)
    if failed:
        print(  # each failure has been named on its own line above
            f"waveflow vocode: {len(failed)} of {len(jobs) + len(missing)} input(s) failed; "
            f"{written} written to {output}",
            file=sys.stderr,
        )
        return 1
    logger.info("wrote %d file(s) to %s", written, output)
    return 0

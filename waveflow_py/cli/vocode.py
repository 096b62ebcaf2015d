"""``waveflow vocode INPUT... -o OUT``: mels or recordings in, audio files out.

Inputs are audio files (resynthesised: mel computed with the model's own settings, then vocoded),
mel files (``.npy``, ``.pt``, ``.npz``; read without pickle, see :mod:`waveflow_py.audio.melfile`), or
directories (searched recursively for both). A mel written by ``waveflow mel`` carries its settings
(``mel_config.json`` beside a ``.npy``; inside a ``.pt``/``.npz``): it is converted from them exactly, and
refused, with both settings and the fix named, when its features (rate, hop, bins, bands) differ from
the model's. A bare mel (another front end's) is read in the convention ``--mel-format`` states (default
``ln``), its raw values checked before the model's floor clamps them.

A bad input (unreadable, corrupt, wrong shape, dtype or settings) is reported on stderr (``waveflow
vocode: FILE: problem``), the others still complete, and a summary line counts the failures. Bad options
(``--temperature``, ``--mel-format``, ``--mel-stats``, ``--denoise``, ...) are usage errors, reported once
before any input is read. Outputs are checked before anything is written: ``-o NAME.wav`` takes exactly
one input; an output that resolves to an input is refused, and an existing file that an earlier
``waveflow vocode`` did not write (its audio ``software`` tag) is refused unless ``--overwrite``. Exit
status: 0 all written, 1 some inputs failed (the rest written), 2 bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waveflow_py.cli import add_denoise_argument, add_temperature_argument
from waveflow_py.cli._outputs import add_overwrite_argument, check_outputs, is_tagged_audio, software_tag

HELP = "vocode mel files (.npy/.pt/.npz) or resynthesise audio files with a released model"

AUDIO_OUTPUTS = (".wav", ".flac", ".ogg")
# the load_audio options this command offers as flags (see AudioError.with_hint)
AUDIO_HINTS = {
    "resample": "pass --resample to convert it",
    "allow_silent": "pass --allow-silent to accept it",
}
logger = logging.getLogger(__name__)


def _mel_format(text: str) -> str:
    from waveflow_py.audio.conventions import resolve_format

    try:
        return resolve_format(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files, .npy/.pt/.npz mels, or directories"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output directory (or a .wav/.flac/.ogg file name for exactly one input)",
    )
    parser.add_argument(
        "--model", default=None, help="release name or directory (default: the default bundled release)"
    )
    add_temperature_argument(parser)
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="auto (default: bf16 where measured faster for this model and within tolerance, else fp32), "
        "fp32, fp16 or bf16",
    )
    add_denoise_argument(parser)
    _add_mel_arguments(parser)
    parser.add_argument(
        "--batch-size", type=_positive_int, default=8, help="items vocoded together (default 8)"
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="resample audio inputs at another rate than the model's (default: error)",
    )
    parser.add_argument("--allow-silent", action="store_true", help="accept all-zero recordings")
    add_overwrite_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_mel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mel-format",
        type=_mel_format,
        default=None,
        help="convention of bare mels (without their settings): ln (natural log: Tacotron 2, HiFi-GAN; "
        "default), log10 (ESPnet, ParallelWaveGAN), db (Coqui), model (already the model's); "
        "see waveflow_py.audio.conventions. Mels written by waveflow mel carry their own.",
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
        help="extra mel-format parameter (repeatable), e.g. --mel-param ref_level_db=20",
    )


@dataclass
class _Job:
    source: Path
    target: Path
    mel: Any = None  # (1, n_mels, F) model-convention mel once loaded
    length: int | None = None  # samples to keep (audio inputs)


@dataclass
class _Tally:
    """The failures (each named on its own line as it happens) and the files written."""

    write: Callable[[str], None]
    failed: list[tuple[Path, str]] = field(default_factory=list)
    written: int = 0

    def fail(self, path: Path, problem: str) -> None:
        problem = problem.removeprefix(f"{path}: ")  # AudioError messages already name the file
        self.failed.append((path, problem))
        self.write(f"waveflow vocode: {path}: {problem}")


# ----------------------------------------------------------------------------- options and outputs
def _format_options(args: argparse.Namespace) -> dict[str, Any]:
    """The mel-format parameters, checked once (a bad one is a usage error, not one error per input)."""
    from waveflow_py.audio.conventions import check_format_params
    from waveflow_py.audio.stats import load_stats
    from waveflow_py.config import mel_preset, parse_overrides

    fmt = parse_overrides(args.mel_param)
    args.mel_approximate = bool(fmt.pop("approximate", False)) or args.mel_approximate
    source = fmt.pop("source_cfg", args.mel_source_preset)
    if args.mel_stats is not None:
        fmt["mean"], fmt["std"] = load_stats(args.mel_stats)
    check_format_params(args.mel_format or "ln", fmt)
    if source is not None:
        fmt["source_cfg"] = mel_preset(str(source))
    return fmt


def _check_stats(fmt: dict[str, Any], n_mels: int, args: argparse.Namespace) -> None:
    if "mean" in fmt and len(fmt["mean"]) != n_mels:
        raise ValueError(f"--mel-stats {args.mel_stats}: {len(fmt['mean'])} bins, the model has {n_mels}")


def _collect(inputs: list[str], output: Path, bad: list[tuple[Path, str]]) -> list[_Job]:
    """One job per input file (directories searched); ``bad`` gets the inputs that cannot be used."""
    from waveflow_py.audio import AUDIO_EXTENSIONS, list_audio_files
    from waveflow_py.audio.melfile import MEL_EXTENSIONS

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
        elif path.exists():
            bad.append((path, "not a regular file (a FIFO, device or socket)"))
        else:
            bad.append((path, "no such file or directory"))
    return _targets(found, output)


def _targets(found: list[tuple[Path, Path]], output: Path) -> list[_Job]:
    single_file = output.suffix.lower() in AUDIO_OUTPUTS
    if single_file and len(found) > 1:
        raise ValueError(
            f"-o {output} is a file name, but {len(found)} inputs were given: pass a directory for several"
        )
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


def _check_targets(jobs: list[_Job], output: Path, overwrite: bool) -> None:
    if output.is_file() and not (len(jobs) == 1 and jobs[0].target == output):
        raise ValueError(f"-o {output}: expected a directory for these inputs, found a file")
    check_outputs(
        "vocode",
        [j.target for j in jobs],
        [j.source for j in jobs],
        overwrite=overwrite,
        ours=lambda f: is_tagged_audio(f, "vocode"),
    )


# ----------------------------------------------------------------------------- one input
def _settings_fix(args: argparse.Namespace, approximable: bool) -> str:
    model = args.model or "the default model"
    fix = f"recompute it from the audio with `waveflow mel AUDIO -o DIR --model {model}`"
    if approximable:
        fix += ", or pass --mel-approximate to re-project it (an approximation)"
    return fix + ", or vocode it with a model trained on its settings"


def _prepare(job: _Job, vocoder: Any, args: argparse.Namespace, fmt: dict[str, Any]) -> None:
    """Load one input into ``job.mel`` (the model's convention); ``ValueError`` names its problem."""
    from waveflow_py.audio import AudioError, load_audio
    from waveflow_py.audio.conventions import MelSettingsError
    from waveflow_py.audio.melfile import MEL_EXTENSIONS, load_mel, mel_for_model

    if job.source.suffix.lower() in MEL_EXTENSIONS:
        melfile = load_mel(job.source)
        try:
            job.mel = mel_for_model(
                melfile, vocoder.mel_config, args.mel_format, approximate=args.mel_approximate, **fmt
            )
        except MelSettingsError as e:
            raise ValueError(f"{e}: {_settings_fix(args, e.approximable)}") from None
        return
    try:
        wav, _ = load_audio(
            job.source, vocoder.sample_rate, resample=args.resample, allow_silent=args.allow_silent
        )
    except AudioError as e:
        raise ValueError(e.with_hint(AUDIO_HINTS)) from None
    job.mel = vocoder.prepare_mel(vocoder.mel(wav), "model")
    job.length = wav.numel()


def _synthesise(jobs: list[_Job], vocoder: Any, args: argparse.Namespace) -> list[Any]:
    """Audio of prepared jobs through :meth:`Vocoder.vocode_many` (its batching, padding and trimming);
    audio inputs are cut to their recording's length."""
    kwargs: dict[str, Any] = {"denoise": args.denoise, "mel_format": "model", "batch_size": args.batch_size}
    audio = vocoder.vocode_many([j.mel[0] for j in jobs], **kwargs)
    return [
        (a if job.length is None else a[: job.length]).float().cpu()
        for job, a in zip(jobs, audio, strict=True)
    ]


# ----------------------------------------------------------------------------- one batch
def _prepared(
    chunk: list[_Job], vocoder: Any, args: argparse.Namespace, fmt: dict[str, Any], tally: _Tally, bar: Any
) -> list[_Job]:
    ready = []
    for job in chunk:
        try:
            _prepare(job, vocoder, args, fmt)
            ready.append(job)
        except (ValueError, TypeError, OSError, RuntimeError, EOFError) as e:
            tally.fail(job.source, str(e))
            bar.update(1)
    return ready


def _synthesised(ready: list[_Job], vocoder: Any, args: argparse.Namespace, tally: _Tally, bar: Any) -> list:
    try:
        return list(zip(ready, _synthesise(ready, vocoder, args), strict=True))
    except (ValueError, RuntimeError):  # find the culprit: one at a time
        results = []
        for job in ready:
            try:
                results.append((job, _synthesise([job], vocoder, args)[0]))
            except (ValueError, RuntimeError) as e:
                tally.fail(job.source, f"synthesis failed: {e}")
                bar.update(1)
        return results


def _write(results: list, vocoder: Any, tally: _Tally, bar: Any) -> None:
    from waveflow_py.audio import save_audio

    for job, audio in results:
        try:
            save_audio(job.target, audio, vocoder.sample_rate, software=software_tag("vocode"))
            tally.written += 1
        except (ValueError, OSError, RuntimeError) as e:
            tally.fail(job.source, f"cannot write {job.target}: {e}")
        bar.update(1)


# ----------------------------------------------------------------------------- the command
def _vocoder(args: argparse.Namespace) -> Any:
    from waveflow_py.vocoder import Vocoder

    return Vocoder.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        temperature=args.temperature,
        truncation=args.truncation,
        excitation_rms=args.excitation_rms,
        pitch_strength=args.pitch_strength,
        mel_projection=args.mel_projection,
        projection_iters=args.projection_iters,
        projection_fit=args.projection_fit,
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    fmt = _format_options(args)
    output, missing = Path(args.output), []
    jobs = _collect(args.inputs, output, missing)
    _check_targets(jobs, output, args.overwrite)
    vocoder = _vocoder(args)
    _check_stats(fmt, vocoder.mel_config.n_mels, args)
    tally = _Tally(lambda line: tqdm.write(line, file=sys.stderr))
    for path, problem in missing:
        tally.fail(path, problem)
    with tqdm(total=len(jobs), unit="file", desc="vocode", disable=args.quiet, file=sys.stderr) as bar:
        for start in range(0, len(jobs), args.batch_size):
            ready = _prepared(jobs[start : start + args.batch_size], vocoder, args, fmt, tally, bar)
            if ready:
                _write(_synthesised(ready, vocoder, args, tally, bar), vocoder, tally, bar)
    return _summary(tally, len(jobs) + len(missing), output)


def _summary(tally: _Tally, total: int, output: Path) -> int:
    if tally.failed:  # each failure has been named on its own line above
        counts = f"{len(tally.failed)} of {total} input(s) failed; {tally.written} written to {output}"
        print(f"waveflow vocode: {counts}", file=sys.stderr)
        return 1
    logger.info("wrote %d file(s) to %s", tally.written, output)
    return 0

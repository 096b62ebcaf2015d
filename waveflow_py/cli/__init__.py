"""The ``waveflow`` command line. Thin: each subcommand lives in its own module and calls the library.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
it imports heavy dependencies inside ``run`` so that ``waveflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "main",
    "build_parser",
    "add_overrides_argument",
    "add_temperature_argument",
    "add_denoise_argument",
    "parse_device",
]

# name -> module; order is the order in --help
COMMANDS: dict[str, str] = {
    "vocode": "waveflow_py.cli.vocode",
    "mel": "waveflow_py.cli.mel",
    "info": "waveflow_py.cli.info",
    "train": "waveflow_py.cli.train",
    "bench": "waveflow_py.cli.bench",
    "eval": "waveflow_py.cli.eval",
    "toy2d": "waveflow_py.cli.toy2d",
    "demo": "waveflow_py.cli.demo",
    "import": "waveflow_py.cli.import_peer",
    "export-onnx": "waveflow_py.cli.export_onnx",
    "train-pitch": "waveflow_py.cli.train_pitch",
}


def add_overrides_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]`` (repeatable) into ``args.overrides``, for configs loaded with
    :func:`waveflow_py.config.load_yaml`; ``example`` is one override shown in the help."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config entry, e.g. --set {example} (repeatable)",
    )


def _temperature(text: str) -> float:
    """``--temperature`` values: a finite number >= 0 (a usage error otherwise, reported once)."""
    from waveflow_py.flows.distributions import check_temperature

    try:
        return check_temperature(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("temperature: ")) from None


def _denoise(text: str) -> float:
    """``--denoise`` values: a strength in [0, 1] (:func:`waveflow_py.inference.denoiser.check_denoise`)."""
    from waveflow_py.inference.denoiser import check_denoise

    try:
        return check_denoise(float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("denoise: ")) from None


def parse_device(name: str | None) -> object:
    """``--device NAME`` -> ``torch.device``; ``ValueError`` (one line) for a name torch does not know or
    a device this machine does not have (e.g. ``cuda`` without a GPU)."""
    import torch

    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ValueError(
            f"--device {name!r}: not a torch device ({_one_line(e)}); e.g. cpu, cuda, cuda:1"
        ) from None
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as e:
        raise ValueError(f"--device {name!r}: not available on this machine ({_one_line(e)})") from None
    return device


def add_denoise_argument(parser: argparse.ArgumentParser) -> None:
    """``--denoise STRENGTH`` into ``args.denoise``, validated at parse time."""
    parser.add_argument(
        "--denoise",
        type=_denoise,
        default=0.0,
        metavar="STRENGTH",
        help="bias-spectrum denoiser strength in [0, 1] (0: off; 0.01-0.1 typical)",
    )


def _positive_or_none(text: str) -> float | str | None:
    """``--truncation`` / ``--excitation-rms`` values: a number > 0, ``none``/``off``, or ``release``
    (the default: the release's own)."""
    from waveflow_py.flows.distributions import check_positive

    if text.strip().lower() in ("none", "off"):
        return None
    if text.strip().lower() == "release":
        return "release"
    try:
        return check_positive(text, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0 or 'none', got {text!r}") from None


def _strength(text: str) -> float | str | None:
    """``--pitch-strength`` values: a number >= 0, ``model`` (as the model was built), or ``release``."""
    from waveflow_py.sampling import SamplingConfig

    word = text.strip().lower()
    if word in ("release", "model"):
        return "release" if word == "release" else None
    try:
        return SamplingConfig(pitch_strength=text).pitch_strength
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0 or 'model', got {text!r}") from None


def _projection(text: str) -> float | str | None:
    """``--mel-projection`` values: a number in [0, 1], ``none``/``off``, or ``release``."""
    from waveflow_py.sampling import check_mel_projection

    word = text.strip().lower()
    if word in ("none", "off"):
        return None
    if word == "release":
        return "release"
    try:
        return check_mel_projection(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a strength in [0, 1] or 'none', got {text!r}") from None


def _count(check: Callable[[str], int]) -> Callable[[str], int | str]:
    """An argparse type for a whole-number setting checked by ``check``, or ``release``."""

    def parse(text: str) -> int | str:
        if text.strip().lower() == "release":
            return "release"
        try:
            return check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None

    return parse


def add_temperature_argument(parser: argparse.ArgumentParser) -> None:
    """The sampling settings (:class:`waveflow_py.sampling.SamplingConfig`), checked at parse time (a usage
    error, reported once): ``--temperature T`` into ``args.temperature`` (``None``: the release's, else
    the library default :data:`waveflow_py.sampling.DEFAULT_TEMPERATURE`), ``--truncation C|none``,
    ``--excitation-rms R|none``, ``--pitch-strength S|model``, ``--mel-projection S|none`` and
    ``--projection-iters N``, ``--projection-fit N`` into ``args.truncation``, ``args.excitation_rms``,
    ``args.pitch_strength``, ``args.mel_projection``, ``args.projection_iters`` and ``args.projection_fit``
    (``"release"`` when not given: the release's)."""
    from waveflow_py.sampling import check_projection_fit, check_projection_iters

    parser.add_argument(
        "--temperature",
        type=_temperature,
        default=None,
        metavar="T",
        help="sampling temperature: noise std relative to the prior's (default: the release's, else 0.6)",
    )
    parser.add_argument(
        "--truncation",
        type=_positive_or_none,
        default="release",
        metavar="C",
        help="draw the noise from the normal truncated to +-C standard deviations ('none': untruncated; "
        "default: the release's)",
    )
    parser.add_argument(
        "--excitation-rms",
        type=_positive_or_none,
        default="release",
        metavar="R",
        help="envelope-prior models: set every frame of the generated excitation to RMS R before the "
        "envelope filter ('none': off; default: the release's)",
    )
    parser.add_argument(
        "--pitch-strength",
        type=_strength,
        default="release",
        metavar="S",
        help="pitch-prior models: strength of the mel-derived pitch predictor at synthesis ('model': as "
        "the model was built; default: the release's)",
    )
    parser.add_argument(
        "--mel-projection",
        type=_projection,
        default="release",
        metavar="S",
        help="strength in [0, 1] of the mel projection post-filter: the output's STFT magnitude moved onto "
        "the mel's, its phase kept ('none' or 0: off; default: the release's)",
    )
    parser.add_argument(
        "--projection-iters",
        type=_count(check_projection_iters),
        default="release",
        metavar="N",
        help="Griffin-Lim iterations after the mel projection, started from the sample's phase (0: none; "
        "default: the release's)",
    )
    parser.add_argument(
        "--projection-fit",
        type=_count(check_projection_fit),
        default="release",
        metavar="N",
        help="the projection's magnitude: N >= 1 fits it to the mel from the output's own, N updates per "
        "iteration (keeps the harmonics); 0: the mel's smooth magnitude (default: the release's)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waveflow", description="Flow-based neural vocoders: synthesis, training, evaluation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives, so that writers unwind (atomic writes remove their
    temporary files) like on Ctrl-C; a ``BaseException`` so that no ``except Exception`` swallows it."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the command runs (main thread only); restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command: its exit status; bad input is one line on stderr (exit 2), Ctrl-C and SIGTERM one
    line too (exit 130 and 143), after partial files have been removed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        with _sigterm_unwinds():
            return int(args._run(args) or 0)
    except (ValueError, OSError) as e:
        # bad input or an unusable path (missing, unreadable, unwritable): a clear one-line message, no
        # traceback (use -v for one)
        if args.verbose:
            raise
        print(f"waveflow {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"waveflow {args.command}: interrupted (Ctrl-C); partial files removed", file=sys.stderr)
        return 130
    except Terminated:
        print(f"waveflow {args.command}: terminated (SIGTERM); partial files removed", file=sys.stderr)
        return 143


def _one_line(error: BaseException) -> str:
    """An error as one line; an OSError as ``PATH: reason`` (``[Errno 13] ...`` is for programmers)."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``waveflow demo``: vocode the bundled example sentence and compare input and output spectrograms.

Writes to ``OUT`` (default ``waveflow-demo/``): ``input.wav`` (the example at the model's rate),
``vocoded.wav`` (its mel vocoded by the model) and ``spectrograms.png`` (input and output log-mels
side by side). It uses the default bundled release (or ``--model``); when no release is bundled it
builds a tiny random-weight release in ``OUT/untrained-release`` and says so everywhere: that run
shows the pipeline, not quality. The example is espeak-ng speech made for this project
(``examples/README.md``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

HELP = "vocode the bundled example with the default model; write audio and a spectrogram PNG"

# the example sentence: in a source checkout beside the package; in a wheel install, under
# <prefix>/share/waveflow-py/examples (pyproject's data-files)
EXAMPLE_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "examples" / "speech.flac",
    Path(sys.prefix) / "share" / "waveflow-py" / "examples" / "speech.flac",
)


def _example() -> Path:
    return next((p for p in EXAMPLE_CANDIDATES if p.is_file()), EXAMPLE_CANDIDATES[0])
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", default="waveflow-demo", help="output directory (default waveflow-demo)"
    )
    parser.add_argument(
        "--model", default=None, help="release name or directory (default: the bundled default)"
    )
    parser.add_argument("--input", default=None, help="audio file instead of the example")
    parser.add_argument("--sigma", type=float, default=None, help="prior std at synthesis (default 0.6)")
    parser.add_argument("--denoise", type=float, default=0.0, metavar="STRENGTH", help="denoiser strength")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")


def _vocoder(args: argparse.Namespace, out: Path) -> tuple[Any, bool]:
    from waveflow_py.pretrained import (
        UNTRAINED_LABEL,
        ReleaseNotFoundError,
        build_random_release,
        default_release,
    )
    from waveflow_py.vocoder import Vocoder

    name = args.model
    if name is None:
        try:
            name = default_release()
        except ReleaseNotFoundError as e:
            logger.warning("%s", e)
            logger.warning("building a tiny release instead -- %s", UNTRAINED_LABEL)
            name = str(build_random_release(out / "untrained-release"))
    vocoder = Vocoder.from_pretrained(name, device=args.device)
    return vocoder, bool(vocoder.info is not None and vocoder.info.is_untrained)


def _plot(path: Path, mel_in: Any, mel_out: Any, sample_rate: int, hop: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    lo = float(min(mel_in.min(), mel_out.min()))
    hi = float(max(mel_in.max(), mel_out.max()))
    seconds = mel_in.shape[-1] * hop / sample_rate
    for ax, mel, label in ((axes[0], mel_in, "input"), (axes[1], mel_out, "vocoded")):
        img = ax.imshow(
            mel,
            origin="lower",
            aspect="auto",
            vmin=lo,
            vmax=hi,
            cmap="magma",
            extent=(0.0, seconds, 0, mel.shape[0]),
        )
        ax.set_ylabel(f"{label}: mel bin")
    axes[1].set_xlabel("time (s)")
    fig.colorbar(img, ax=axes, label="log mel")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from waveflow_py.audio import load_audio, save_audio
    from waveflow_py.pretrained import UNTRAINED_LABEL

    source = Path(args.input) if args.input else _example()
    if not source.is_file():
        raise FileNotFoundError(f"example input not found: {source} (pass --input AUDIO_FILE)")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    vocoder, untrained = _vocoder(args, out)
    wav, _ = load_audio(source, vocoder.sample_rate, resample=True)
    mel_in = vocoder.mel(wav)
    kwargs = {"mel_format": "model", "denoise": args.denoise}
    if args.sigma is not None:
        kwargs["sigma"] = args.sigma
    audio = vocoder.vocode(mel_in, **kwargs)[: wav.numel()].float().cpu()
    peak = float(audio.abs().max())
    if untrained and peak > 0.9:  # random weights give loud noise: scale it down for listening
        audio = audio * (0.5 / peak)
    save_audio(out / "input.wav", wav, vocoder.sample_rate)
    save_audio(out / "vocoded.wav", audio, vocoder.sample_rate)
    mel_out = vocoder.mel(audio.to(vocoder.device))
    name = vocoder.info.name if vocoder.info else "model"
    title = f"{source.name} vocoded by {name} ({vocoder.info.model_type if vocoder.info else ''})"
    if untrained:
        title += f"\n{UNTRAINED_LABEL.upper()}"
    written = ["input.wav", "vocoded.wav"]
    try:
        _plot(out / "spectrograms.png", mel_in.float().cpu().numpy(), mel_out.float().cpu().numpy(),
              vocoder.sample_rate, vocoder.hop_length, title)  # fmt: skip
        written.append("spectrograms.png")
    except ImportError:
        logger.warning("matplotlib is not installed: no spectrogram PNG (pip install matplotlib)")
    print(f"model:   {vocoder.info.path if vocoder.info else name}")
    if untrained:
        print(f"WARNING: {UNTRAINED_LABEL}")
    for f in written:
        print(f"wrote:   {out / f}")
    return 0

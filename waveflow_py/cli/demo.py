"""``waveflow demo``: vocode the bundled example sentence and compare input and output spectrograms.

Writes to ``OUT`` (default ``waveflow-demo/``): ``input.wav`` (the example at the model's rate),
``vocoded.wav`` (its mel vocoded by the model) and ``spectrograms.png`` (input and output log-mels
side by side). It uses the default bundled release (or ``--model``); when no release is bundled it
builds a tiny random-weight release in ``OUT/untrained-release`` and says so everywhere: that run
shows the pipeline, not quality. The example is espeak-ng speech made for this project
(``examples/README.md``). Re-running into the same ``OUT`` replaces the earlier demo's files; any other
existing file there (or ``--input`` itself) is never overwritten, unless ``--overwrite`` (never the input).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from waveflow_py.cli import add_denoise_argument, add_temperature_argument
from waveflow_py.cli._outputs import add_overwrite_argument, check_outputs, is_tagged_audio, software_tag

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
    add_temperature_argument(parser)
    add_denoise_argument(parser)
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    add_overwrite_argument(parser)


OUTPUTS = ("input.wav", "vocoded.wav", "spectrograms.png")
PREVIEW_LABEL = "PREVIEW model: trained briefly on CPU, not yet better than Griffin-Lim (see its model card)"
UNTRAINED_DIR = "untrained-release"


def _release_name(args: argparse.Namespace) -> str | None:
    """The release to use; ``None`` when none is bundled (a tiny untrained one is built in OUT)."""
    from waveflow_py.pretrained import ReleaseNotFoundError, default_release, preview_release

    if args.model is not None:
        return str(args.model)
    try:
        return str(default_release())
    except ReleaseNotFoundError as e:
        preview = preview_release()
        if preview is not None:  # a trained preview is better than random weights
            logger.warning("no default release: using the bundled preview %s (see its README.md)", preview)
            return preview
        logger.warning("%s", e)
        return None


def _ours(path: Path) -> bool:
    """Whether ``path`` is a file an earlier ``waveflow demo`` wrote."""
    if path.suffix == ".wav":
        return is_tagged_audio(path, "demo")
    if path.suffix == ".png":
        try:
            from PIL import Image

            with Image.open(path) as img:
                return str(img.info.get("Software", "")).startswith(software_tag("demo"))
        except (ImportError, OSError, ValueError):
            return False
    if path.parent.name == UNTRAINED_DIR:  # the tiny release: ours if its config says untrained
        import json

        from waveflow_py.pretrained import UNTRAINED_LABEL

        try:
            config = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(config, dict) and (config.get("provenance") or {}).get("weights") == UNTRAINED_LABEL
    return False


def _vocoder(args: argparse.Namespace, out: Path, name: str | None) -> tuple[Any, bool]:
    from waveflow_py.pretrained import UNTRAINED_LABEL, build_random_release
    from waveflow_py.vocoder import Vocoder

    if name is None:
        logger.warning("building a tiny release instead -- %s", UNTRAINED_LABEL)
        name = str(build_random_release(out / UNTRAINED_DIR))
    vocoder = Vocoder.from_pretrained(
        name,
        device=args.device,
        temperature=args.temperature,
        truncation=args.truncation,
        excitation_rms=args.excitation_rms,
        pitch_strength=args.pitch_strength,
        mel_projection=args.mel_projection,
        projection_iters=args.projection_iters,
        projection_fit=args.projection_fit,
    )
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
    fig.savefig(path, dpi=100, metadata={"Software": software_tag("demo")})
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from waveflow_py.audio import AudioError, load_audio, save_audio
    from waveflow_py.pretrained import UNTRAINED_LABEL

    source = Path(args.input) if args.input else _example()
    if not source.is_file():
        raise FileNotFoundError(f"example input not found: {source} (pass --input AUDIO_FILE)")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: expected a directory, found a file")
    name = _release_name(args)
    targets = [out / f for f in OUTPUTS]
    if name is None:
        targets += [out / UNTRAINED_DIR / f for f in ("config.json", "model.safetensors", "SHA256SUMS")]
    check_outputs("demo", targets, [source], overwrite=args.overwrite, ours=_ours)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"-o {out}: cannot write there ({e.strerror or e})") from e
    vocoder, untrained = _vocoder(args, out, name)
    try:
        wav, _ = load_audio(source, vocoder.sample_rate, resample=True)
    except AudioError as e:  # demo has no --allow-silent: say what to do instead
        raise ValueError(
            e.with_hint({"allow_silent": "pass --input with a recording that is not silent"})
        ) from None
    mel_in = vocoder.mel(wav)
    audio = vocoder.vocode(mel_in, mel_format="model", denoise=args.denoise)[: wav.numel()].float().cpu()
    peak = float(audio.abs().max())
    if untrained and peak > 0.9:  # random weights give loud noise: scale it down for listening
        audio = audio * (0.5 / peak)
    save_audio(out / "input.wav", wav, vocoder.sample_rate, software=software_tag("demo"))
    save_audio(out / "vocoded.wav", audio, vocoder.sample_rate, software=software_tag("demo"))
    mel_out = vocoder.mel(audio.to(vocoder.device))
    name = vocoder.info.name if vocoder.info else "model"
    title = f"{source.name} vocoded by {name} ({vocoder.info.model_type if vocoder.info else ''})"
    preview = bool(vocoder.info is not None and vocoder.info.is_preview)
    if untrained:
        title += f"\n{UNTRAINED_LABEL.upper()}"
    elif preview:
        title += f"\n{PREVIEW_LABEL}"
    written = ["input.wav", "vocoded.wav"]
    try:
        _plot(
            out / "spectrograms.png",
            mel_in.float().cpu().numpy(),
            mel_out.float().cpu().numpy(),
            vocoder.sample_rate,
            vocoder.hop_length,
            title,
        )
        written.append("spectrograms.png")
    except ImportError:
        logger.warning("matplotlib is not installed: no spectrogram PNG (pip install matplotlib)")
    print(f"model:   {vocoder.info.path if vocoder.info else name}")
    if untrained:
        print(f"WARNING: {UNTRAINED_LABEL}")
    elif preview:
        print(f"NOTE:    {PREVIEW_LABEL}")
    for f in written:
        print(f"wrote:   {out / f}")
    return 0

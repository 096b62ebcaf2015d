"""Spectrograms of a low and a high voice: reference, a release and Griffin-Lim, for a model card.

Among ``--clips`` dev clips (evenly spaced, as ``waveflow eval`` picks them) it takes the one whose
reference has the lowest median pYIN F0 and the one with the highest, vocodes both with the release
(its own sampling settings, noise seed = clip index, as ``waveflow eval``) and with Griffin-Lim (60
iterations), and writes one PNG per voice (log-mel panels on the reference's colour scale).

    python experiments/voice_spectrograms.py pretrained/universal-16k-preview \\
        --data ../shared/data/librispeech-mini --clips 24 --seconds 4 \\
        -o pretrained/universal-16k-preview/figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.evaluation import griffin_lim
from waveflow_py.evaluation.clips import find_clips, read_clip
from waveflow_py.evaluation.pitch import track_pitch
from waveflow_py.evaluation.plots import plot_spectrograms
from waveflow_py.inference import synthesize
from waveflow_py.pretrained import load_release


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("release")
    p.add_argument("--data", type=Path, default=Path("../shared/data/librispeech-mini"))
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, info = load_release(args.release)
    sampling = info.sampling
    cfg = info.config.mel
    mel_fn = MelSpectrogram(cfg)
    clips = find_clips(args.data, "dev", args.clips)
    audio = [read_clip(c, cfg.sample_rate, args.seconds, cfg.hop_length) for c in clips]
    median_f0 = [float(np.nanmedian(track_pitch(a, cfg.sample_rate).f0)) for a in audio]
    args.output.mkdir(parents=True, exist_ok=True)
    for voice, index in (("low", int(np.nanargmin(median_f0))), ("high", int(np.nanargmax(median_f0)))):
        x = torch.from_numpy(audio[index]).float()[None]
        mel = mel_fn(x)
        with torch.no_grad():
            out, _ = synthesize(model, mel, sampling=sampling, generator=torch.Generator().manual_seed(index))
        gl = torch.from_numpy(griffin_lim(mel[0].numpy(), cfg, length=x.shape[1]))[None]
        mels = {"reference": mel[0].numpy(), "model": mel_fn(out[:, : x.shape[1]])[0].numpy()}
        mels["griffin_lim"] = mel_fn(gl)[0].numpy()
        name = Path(args.release).name
        labels = {"reference": "reference", "model": name, "griffin_lim": "Griffin-Lim (60 it.)"}
        title = f"{voice} voice: speaker {clips[index].speaker}, median F0 {median_f0[index]:.0f} Hz (pYIN)"
        path = plot_spectrograms(
            args.output / f"{voice}_voice.png", mels, labels, title, cfg.hop_length / cfg.sample_rate
        )
        print(
            f"{voice} voice: {clips[index].path.name}, speaker {clips[index].speaker}, "
            f"median F0 {median_f0[index]:.0f} Hz -> {path}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

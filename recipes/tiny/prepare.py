"""Stage ``prepare`` of the tiny recipe: write a few seconds of synthetic speech-like audio.

Each clip is a voiced, harmonic signal with a gliding pitch (vibrato-like f0 movement), a syllable-rate
amplitude envelope, a crude two-formant spectral tilt and a little breath noise. No real data, no network.

    python recipes/tiny/prepare.py out/tiny/data        # -> out/tiny/data/{train,dev}/*.wav
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf


def speech_like(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    base = rng.uniform(90.0, 200.0)
    f0 = base * (1.0 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.7, 2.5) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    formants = rng.uniform([400.0, 1100.0], [800.0, 2200.0])
    voiced = np.zeros_like(t)
    for k in range(1, int(sr / 2 / 220)):
        fk = k * f0
        gain = sum(np.exp(-(((fk - f) / 180.0) ** 2)) for f in formants) + 0.05
        voiced += gain * np.sin(k * phase) / k
    syllables = 0.5 * (1.0 - np.cos(2 * np.pi * rng.uniform(2.5, 5.0) * t)) ** 1.5
    x = 0.25 * syllables * voiced / (np.abs(voiced).max() + 1e-9) + 0.002 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output corpus directory (folder layout: train/ and dev/)")
    p.add_argument("--sample-rate", type=int, default=8000)
    p.add_argument("--train", type=int, default=8, help="number of training clips")
    p.add_argument("--dev", type=int, default=2, help="number of dev clips")
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for split, n in (("train", args.train), ("dev", args.dev)):
        (args.out / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            clip = speech_like(rng, args.seconds, args.sample_rate)
            sf.write(args.out / split / f"{split}_{i:03d}.wav", clip, args.sample_rate)
    print(f"wrote {args.train} + {args.dev} clips of {args.seconds} s at {args.sample_rate} Hz to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

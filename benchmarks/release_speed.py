"""x real time of releases side by side: one process, the same mel of real speech, runs interleaved.

Each release vocodes the same mel (a dev clip of ``--data`` repeated to ``--seconds``) through
``Vocoder.vocode`` with its own sampling settings; the releases take turns ``--repeats`` times and the
best time of each is reported, with the CPU model, flags, threads and dtype, so the ratio between them
holds on a busy machine even where the absolute figure does not.

    python benchmarks/release_speed.py universal-16k universal-16k-preview \\
        recipes/librispeech-mini/bakeoff/resume/wg64-pitch-latest --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from waveflow_py import Vocoder
from waveflow_py.dtypes import speed_flags
from waveflow_py.evaluation.clips import find_clips, read_clip
from waveflow_py.inference.precision import device_name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("releases", nargs="+")
    p.add_argument("--data", default="../shared/data/librispeech-mini")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--dtype", default="fp32")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    vocoders = {name: Vocoder.from_pretrained(name, dtype=args.dtype) for name in args.releases}
    first = next(iter(vocoders.values()))
    sr = first.sample_rate
    clip = read_clip(find_clips(args.data, "dev", 1)[0], sr, None, first.hop_length)
    n = int(args.seconds * sr)
    audio = torch.from_numpy(np.tile(clip, -(-n // clip.size))[:n]).float()[None]
    mel = first.mel(audio)
    best = dict.fromkeys(vocoders, float("inf"))
    for _ in range(args.repeats):
        for name, vocoder in vocoders.items():
            start = time.perf_counter()
            vocoder.vocode(mel)
            best[name] = min(best[name], time.perf_counter() - start)
    cpu = f"{device_name(torch.device('cpu'))} ({speed_flags()})"
    print(
        f"{cpu}; {args.threads} thread(s), {args.dtype}, {args.seconds:g} s of speech, best of {args.repeats}"
    )
    for name, seconds in best.items():
        print(f"{name}: {args.seconds / seconds:.1f}x real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

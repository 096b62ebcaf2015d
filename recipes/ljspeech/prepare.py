"""Stage ``prepare`` of the LJ Speech recipe: check a local LJSpeech-1.1 copy (nothing is downloaded).

    python recipes/ljspeech/prepare.py /path/to/LJSpeech-1.1

Checks that ``metadata.csv`` has ``id|text|normalized`` lines and that every ``wavs/<id>.wav`` exists and
is 22.05 kHz mono; prints a summary and exits non-zero naming what is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile as sf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="the LJSpeech-1.1 directory (metadata.csv + wavs/)")
    args = p.parse_args(argv)
    meta = args.root / "metadata.csv"
    if not meta.is_file() or not (args.root / "wavs").is_dir():
        print(f"error: expected {meta} and {args.root / 'wavs'}/ (the LJSpeech-1.1 layout)", file=sys.stderr)
        return 1
    ids, bad_lines = [], 0
    for line in meta.read_text(encoding="utf-8").splitlines():
        fields = line.split("|")
        if len(fields) != 3:
            bad_lines += 1
            continue
        ids.append(fields[0])
    missing = [i for i in ids if not (args.root / "wavs" / f"{i}.wav").is_file()]
    wrong_rate = []
    for i in ids[:: max(1, len(ids) // 50)]:  # spot-check 50 files
        path = args.root / "wavs" / f"{i}.wav"
        if path.is_file():
            info = sf.info(str(path))
            if info.samplerate != 22050 or info.channels != 1:
                wrong_rate.append(f"{path.name}: {info.samplerate} Hz x {info.channels} ch")
    print(
        f"{len(ids)} ids, {bad_lines} malformed line(s), {len(missing)} missing wav(s), "
        f"{len(wrong_rate)} spot-checked file(s) not 22.05 kHz mono"
    )
    for what in (missing[:10], wrong_rate[:10]):
        for x in what:
            print(f"  {x}")
    return 0 if ids and not missing and not wrong_rate else 1


if __name__ == "__main__":
    raise SystemExit(main())

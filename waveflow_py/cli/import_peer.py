"""``waveflow import --from PEER CHECKPOINT [--config THEIRS] -o RELEASE_DIR``: another project's checkpoint
as a normal release (config.json + model.safetensors + sha256), mapped exactly, without running any
code from the file. See docs/import.md."""

from __future__ import annotations

import argparse

HELP = "import an NVIDIA WaveGlow, L0SG WaveFlow or Parakeet WaveFlow checkpoint as a release"

PEER_NAMES = ("nvidia-waveglow", "l0sg-waveflow", "parakeet-waveflow")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="the peer's checkpoint (.pt / .pth / .pdparams)")
    p.add_argument("--from", dest="peer", required=True, choices=PEER_NAMES, help="which project made it")
    p.add_argument(
        "--config",
        help="the peer's own config file (their config.json / YAML); required for "
        "l0sg-waveflow, checked against the weights for the others",
    )
    p.add_argument("-o", "--output", required=True, help="release directory to write")
    p.add_argument(
        "--allow-unmapped",
        action="store_true",
        help="import even if some peer tensors fit nowhere (they are listed in the provenance)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing release in the directory")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from waveflow_py.pretrained.errors import CONFIG_FILE
    from waveflow_py.pretrained.imports import import_release

    out = Path(args.output)
    if (out / CONFIG_FILE).exists() and not args.force:
        raise ValueError(f"{out} already holds a release ({CONFIG_FILE}); use --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: exists and is not a directory")
    path, report = import_release(args.peer, args.checkpoint, out, args.config, args.allow_unmapped)
    print(report.summary())
    if report.unmapped:
        print(f"WARNING: {len(report.unmapped)} tensor(s) were not imported: {', '.join(report.unmapped)}")
    print(f"wrote release {path} (use it with: waveflow vocode --model {path} ...)")
    return 0

"""Give a release's harmonic source the learned pitch predictor, without training.

``source_pitch: hybrid`` (the default here) or ``learned`` with the weights that ``waveflow train-pitch``
wrote; every other weight, the rest of the model config and the sampling block stay the release's. The
predictor has no gradient in training either (``train.pitch_net``), so this is what a training run from
the release would start from, at step 0. A release that already has a predictor gets the new one.

What it made: the step-0 hybrid of docs/quality-per-compute.md, section 17 (the "hybrid" rows of its
first two tables), from the analysis-pitch ``universal-16k`` of 2026-12-04, night (``git show
89f0bb2:pretrained/universal-16k/...``: the weights of ``universal-16k-preview`` with the fitted
projection's sampling), hybrid, floor 0.3; the bundled ``universal-16k`` is that model trained 4500 steps
further with ``recipes/librispeech-mini/spectral/wg64-harmonic-hybrid.yaml``:

    python experiments/add_pitch_net.py ANALYSIS_RELEASE recipes/librispeech-mini/pitchnet OUT \\
        --pitch hybrid --floor 0.3

``OUT`` must not exist or be empty: a release is never overwritten in place.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from waveflow_py.config import PITCH_NET_SOURCES, source_filter_of
from waveflow_py.models import build_model
from waveflow_py.pretrained import load_release
from waveflow_py.pretrained.release import save_release
from waveflow_py.train.pitch import META, load_pitch_net


def _hidden(pitch_net: Path) -> int:
    """The predictor's width, from the ``pitchnet.json`` that ``waveflow train-pitch`` wrote beside it."""
    folder = pitch_net if pitch_net.is_dir() else pitch_net.parent
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    hidden = meta["hidden"] if isinstance(meta, dict) else None
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"{folder / META}: no positive 'hidden' width")
    return hidden


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("release", help="a release (name or directory) with the harmonic source")
    p.add_argument("pitch_net", type=Path, help="a `waveflow train-pitch` output directory")
    p.add_argument("out", type=Path, help="the new release's directory (must not exist or be empty)")
    p.add_argument("--pitch", choices=PITCH_NET_SOURCES, default="hybrid")
    p.add_argument("--floor", type=float, default=0.3, help="source_pitch_floor (default 0.3)")
    args = p.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"add_pitch_net: {args.out} exists and is not an empty directory", file=sys.stderr)
        return 2
    try:
        model, info = load_release(args.release)
        sf = source_filter_of(info.config)
        if sf.source != "harmonic":
            raise ValueError(f"{args.release}: no harmonic source (model.source_filter.source={sf.source!r})")
        hidden = _hidden(args.pitch_net)
        new_sf = dataclasses.replace(
            sf, source_pitch=args.pitch, source_pitch_floor=args.floor, source_pitch_hidden=hidden
        )
        config = dataclasses.replace(info.config, source_filter=new_sf)
        weights = load_pitch_net(args.pitch_net, config.mel, hidden)
    except (OSError, ValueError, KeyError) as e:
        print(f"add_pitch_net: {e}", file=sys.stderr)
        return 2
    new = build_model(info.model_type, config)
    state = {k: v for k, v in model.state_dict().items() if ".pitchnet." not in k}
    missing, unexpected = new.load_state_dict(state, strict=False)
    assert not unexpected and all(".pitchnet." in k for k in missing), (missing, unexpected)
    predictor = new.source_filter.harmonic.pitchnet
    assert predictor is not None
    predictor.load_state_dict(weights)
    provenance = {
        **info.provenance,
        "pitch_net": str(args.pitch_net),
        "pitch_added": (
            f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}: source_pitch {sf.source_pitch!r} -> "
            f"{args.pitch!r} (floor {args.floor}) by experiments/add_pitch_net.py from {info.path}, "
            "no training"
        ),
    }
    save_release(args.out, new.eval(), provenance=provenance, sampling=info.sampling)
    print(f"wrote {args.out}: source_pitch {args.pitch}, floor {args.floor}, predictor from {args.pitch_net}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

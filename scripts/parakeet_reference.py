"""Reference outputs of the authors' PaddlePaddle WaveFlow (Parakeet) for scripts/verify_peer_import.py.

Run with a Python that has paddlepaddle (not this package's venv), on a Parakeet checkout::

    git clone https://github.com/PaddlePaddle/Parakeet /tmp/parakeet
    python -m venv /tmp/paddle && /tmp/paddle/bin/pip install paddlepaddle numpy
    /tmp/paddle/bin/python scripts/parakeet_reference.py /tmp/parakeet /tmp/parakeet-ref [--size tiny]
    python scripts/verify_peer_import.py --parakeet /tmp/parakeet-ref --out DIR --check

For h = 16 and 64 it builds Parakeet's ConditionalWaveFlow (``paper``: 8 flows x 8 layers, 32 channels,
80 mels; ``tiny``, the test fixtures: 4 flows x 8 layers, 4 channels, 8 mels; Parakeet fixes 8 layers)
with random weights, mel (6 frames) and noise rounded to float16 values (so a float16 copy holds them
exactly), writes
``wf_h{h}.pdparams`` with ``paddle.save`` and ``out_h{h}.npz``: mel, noise ``z``, the audio ``x`` of
``decoder.inverse`` on the trimmed upsampled mel, ``zf``/``ld`` of ``forward`` on a prefix ``audio`` of
it, and ``nll``, their ``WaveFlowLoss(sigma=1)`` of that (nats per sample).
Shims for paddle 3, applied to the loaded source text only: ``paddle.shape(x)[-1]`` and the row count of
``Flow.inverse`` are plain ints.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import paddle

SIZES = {
    "paper": {"n_flows": 8, "channels": 32, "n_mels": 80},
    "tiny": {"n_flows": 4, "channels": 4, "n_mels": 8},
}


def _load(name: str, path: Path, patch: dict[str, str] | None = None) -> types.ModuleType:
    source = path.read_text()
    for old, new in (patch or {}).items():
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    exec(compile(source, str(path), "exec"), mod.__dict__)  # noqa: S102 -- the peer's own source
    return mod


def _load_parakeet(repo: Path) -> types.ModuleType:
    for name in ("parakeet", "parakeet.modules", "parakeet.utils", "parakeet.utils.checkpoint"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["parakeet.utils"].checkpoint = sys.modules["parakeet.utils.checkpoint"]  # type: ignore[attr-defined]
    _load("parakeet.modules.geometry", repo / "parakeet/modules/geometry.py")
    return _load(
        "parakeet.models.waveflow",
        repo / "parakeet/models/waveflow.py",
        {
            "paddle.shape(x)[-1]": "x.shape[-1]",
            "len(paddle.shape(self._conv_buffer))": "len(self._conv_buffer.shape)",
            "num_step = paddle.ones([1], dtype='int32') * (self.n_group)": "num_step = self.n_group",
        },
    )


def main(repo: Path, out: Path, size: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    wf = _load_parakeet(repo)
    s = SIZES[size]
    for h in (16, 64):
        paddle.seed(0)
        rng = np.random.default_rng(h)
        model = wf.ConditionalWaveFlow([16, 16], s["n_flows"], 8, h, s["channels"], s["n_mels"], [3, 3])
        model.eval()
        for p in model.parameters():
            w = p.numpy() + rng.standard_normal(p.shape).astype("float32") * 0.02
            p.set_value(w.astype("float16").astype("float32"))  # exactly representable in float16
        paddle.save(model.state_dict(), str(out / f"wf_h{h}.pdparams"))
        mel = (rng.standard_normal((1, s["n_mels"], 6)) * 0.5).astype("float16").astype("float32")
        with paddle.no_grad():
            cond = model.encoder(paddle.to_tensor(mel), trim_conv_artifact=True)
            t = cond.shape[-1] // h * h
            z = rng.standard_normal((1, t)).astype("float16").astype("float32")
            x = model.decoder.inverse(paddle.to_tensor(z), cond).numpy()
            audio = x[:, : t - 4 * h]
            zf, ld = model(paddle.to_tensor(audio), paddle.to_tensor(mel))
            nll = wf.WaveFlowLoss(1.0)(zf, ld)
        np.savez(
            out / f"out_h{h}.npz",
            mel=mel,
            z=z,
            x=x,
            audio=audio,
            zf=zf.numpy(),
            ld=np.array(ld.numpy()),
            nll=np.array(nll.numpy()),
        )
        print(f"h={h}: wrote {out / f'wf_h{h}.pdparams'} and out_h{h}.npz ({x.shape[1]} samples)")
    call = f"ConditionalWaveFlow([16, 16], {s['n_flows']}, 8, h, {s['channels']}, {s['n_mels']}, [3, 3])"
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    meta = {"size": size, "call": call, "paddle": paddle.__version__, "commit": commit.stdout.strip()}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", type=Path, help="Parakeet checkout")
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--size", choices=sorted(SIZES), default="paper")
    args = ap.parse_args()
    main(args.repo, args.out, args.size)

"""Reference outputs of the authors' PaddlePaddle WaveFlow (Parakeet) for scripts/verify_peer_import.py.

Run with a Python that has paddlepaddle (not this package's venv), on a Parakeet checkout::

    git clone https://github.com/PaddlePaddle/Parakeet /tmp/parakeet
    python -m venv /tmp/paddle && /tmp/paddle/bin/pip install paddlepaddle numpy
    /tmp/paddle/bin/python scripts/parakeet_reference.py /tmp/parakeet /tmp/parakeet-ref
    python scripts/verify_peer_import.py --parakeet /tmp/parakeet-ref

For h = 16 and 64 it builds Parakeet's ConditionalWaveFlow (8 flows x 8 layers, 32 channels) with
random weights, writes ``wf_h{h}.pdparams`` with ``paddle.save`` and ``out_h{h}.npz`` (mel, noise, the
audio of ``decoder.inverse`` on the trimmed upsampled mel, and ``z``/log-det of ``forward`` on a prefix).
Shims for paddle 3, applied to the loaded source text only: ``paddle.shape(x)[-1]`` and the row count of
``Flow.inverse`` are plain ints.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import paddle


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


def main(repo: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("parakeet", "parakeet.modules", "parakeet.utils", "parakeet.utils.checkpoint"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["parakeet.utils"].checkpoint = sys.modules["parakeet.utils.checkpoint"]  # type: ignore[attr-defined]
    _load("parakeet.modules.geometry", repo / "parakeet/modules/geometry.py")
    wf = _load(
        "parakeet.models.waveflow",
        repo / "parakeet/models/waveflow.py",
        {
            "paddle.shape(x)[-1]": "x.shape[-1]",
            "len(paddle.shape(self._conv_buffer))": "len(self._conv_buffer.shape)",
            "num_step = paddle.ones([1], dtype='int32') * (self.n_group)": "num_step = self.n_group",
        },
    )
    for h in (16, 64):
        paddle.seed(0)
        rng = np.random.default_rng(h)
        model = wf.ConditionalWaveFlow([16, 16], 8, 8, h, 32, 80, [3, 3])
        model.eval()
        for p in model.parameters():
            p.set_value(p.numpy() + rng.standard_normal(p.shape).astype("float32") * 0.02)
        paddle.save(model.state_dict(), str(out / f"wf_h{h}.pdparams"))
        mel = (rng.standard_normal((1, 80, 8)) * 0.5).astype("float32")
        with paddle.no_grad():
            cond = model.encoder(paddle.to_tensor(mel), trim_conv_artifact=True)
            t = cond.shape[-1] // h * h
            z = rng.standard_normal((1, t)).astype("float32")
            x = model.decoder.inverse(paddle.to_tensor(z), cond).numpy()
            audio = x[:, : t - 4 * h]
            zf, ld = model(paddle.to_tensor(audio), paddle.to_tensor(mel))
        np.savez(
            out / f"out_h{h}.npz", mel=mel, z=z, x=x, audio=audio, zf=zf.numpy(), ld=np.array(ld.numpy())
        )
        print(f"h={h}: wrote {out / f'wf_h{h}.pdparams'} and out_h{h}.npz ({x.shape[1]} samples)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

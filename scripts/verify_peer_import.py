"""Golden numbers from the peers' own code, for the import mappings (tests/test_peer_import_numbers.py).

Builds each peer's model from ITS OWN source (a checkout you pass; nothing of it is in this package or
in the fixtures), gives it random weights (rounded to float16 values, so a float16 copy holds them
exactly), runs the peer's own code on a fixed input and writes, per case, one safetensors file (the
weights under the peer's own names, its inputs, its outputs and its log-likelihood) and a manifest::

    git clone https://github.com/NVIDIA/waveglow /tmp/waveglow
    git clone https://github.com/L0SG/WaveFlow /tmp/l0sg
    /tmp/paddle/bin/python scripts/parakeet_reference.py /tmp/parakeet /tmp/pk --size tiny  # see there
    python scripts/verify_peer_import.py --nvidia /tmp/waveglow --l0sg /tmp/l0sg --parakeet /tmp/pk \\
        --size tiny --out tests/data/peer_import        # the test fixtures
    python scripts/verify_peer_import.py --nvidia /tmp/waveglow --l0sg /tmp/l0sg --parakeet /tmp/pk \\
        --size paper --out /tmp/peer-paper --check      # paper-size models, checked at once

``--check`` runs tests/test_peer_import_numbers.py on ``--out`` (``WAVEFLOW_PEER_FIXTURES``): our import
of each checkpoint must reproduce the peer's audio, forward ``z`` and log-likelihood.

Cases: NVIDIA WaveGlow (``glow.py``: ``infer``, ``forward``, ``WaveGlowLoss``); NVIDIA's oldest layout
(per-layer ``cond_layers``, separate ``res_layers``/``skip_layers``), whose reference is NVIDIA's own
``convert_model.update_model`` followed by ``glow.py``; L0SG WaveFlow at h=16 (bipartition, height
dilation 1; also the fused conditioning of ``fuse_conditioning_layers`` and their ``reverse_fast``) and
h=32 (reverse permutation, height dilations 1, 2, 4): ``reverse``, ``forward``,
``WaveFlowLossDataParallel``; Parakeet h=16 and h=64 from scripts/parakeet_reference.py (paddle).

Shim, applied here only: NVIDIA's ``infer`` draws its noise with ``torch.cuda.FloatTensor``, replaced by a
class handing out prepared noise (so it runs on CPU and the fixture holds the noise it used).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
SIZES: dict[str, dict[str, Any]] = {
    # n_mels, n_flows, n_group, n_early_every, n_early_size, WN layers, WN channels
    "tiny": {"nvidia": (2, 6, 8, 2, 2, 2, 4), "l0sg": {"cin": 8, "res": 4, "flows": 4, "layers": 3}},
    "paper": {"nvidia": (80, 12, 8, 4, 2, 4, 32), "l0sg": {"cin": 80, "res": 32, "flows": 8, "layers": 8}},
}
FRAMES = 6


def _load(name: str, path: Path) -> types.ModuleType:
    """The peer's module from its file, registered under the name its own imports (and pickles) use."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _commit(repo: Path) -> str:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def _randomise(model: torch.nn.Module, skip: str = "<none>", std: float = 0.05) -> None:
    """Perturb every parameter (zero-initialised output convs included), then round to float16 values."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if skip not in name:
                p.add_(torch.randn(p.shape, generator=gen) * std)
            p.copy_(p.half().float())


def _weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The peer's state dict for the fixture: floats as float16 (exact, see _randomise), ints as they are."""
    out = {}
    for k, v in state.items():
        v = v.detach().contiguous()
        if v.is_floating_point():
            assert torch.equal(v.half().float(), v.float()), f"{k} is not float16-exact"
            v = v.half()
        out[f"weight/{k}"] = v
    return out


def _half(x: torch.Tensor) -> torch.Tensor:
    """An input rounded to float16 values (stored as float16 without loss)."""
    return x.half().float()


def _scalar(x: Any) -> torch.Tensor:
    return torch.tensor([float(x)], dtype=torch.float64)


class _NoiseQueue:
    """Stands in for ``torch.cuda.FloatTensor(...).normal_()`` in NVIDIA's ``infer``: prepared noise."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen, self.drawn = gen, []

    def __call__(self, *shape: int) -> Any:
        queue = self

        class _Draw:
            def normal_(self) -> torch.Tensor:
                queue.drawn.append(_half(torch.randn(shape, generator=queue.gen)))
                return queue.drawn[-1]

        return _Draw()


def _nvidia_old_layout(peer: torch.nn.Module) -> None:
    """Give ``peer`` NVIDIA's oldest WN layout (one cond conv per layer, separate residual and skip
    convs), as an old checkpoint unpickled with today's glow.py classes has it."""
    wn = torch.nn.utils.weight_norm
    for net in peer.WN:
        c, n, mels = net.n_channels, net.n_layers, net.cond_layer.in_channels
        net.cond_layers = torch.nn.ModuleList(wn(torch.nn.Conv1d(mels, 2 * c, 1)) for _ in range(n))
        net.res_layers = torch.nn.ModuleList(wn(torch.nn.Conv1d(c, c, 1)) for _ in range(n - 1))
        net.skip_layers = torch.nn.ModuleList(wn(torch.nn.Conv1d(c, c, 1)) for _ in range(n))
        del net.cond_layer, net.res_skip_layers


def _settle_weight_norm(model: torch.nn.Module) -> None:
    """Set each weight-normed conv's ``weight`` to ``g v / |v|`` as a plain tensor, as in a model
    unpickled from a checkpoint (``update_model`` deep-copies the model, which a weight still attached
    to the graph of its construction refuses)."""
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "weight_g"):
                norm = m.weight_v.flatten(1).norm(dim=1).reshape(-1, *[1] * (m.weight_v.dim() - 1))
                m.weight = m.weight_g * m.weight_v / norm


def nvidia_case(repo: Path, size: str, old: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    glow = _load("glow", repo / "glow.py")
    n_mels, n_flows, n_group, every, early, layers, channels = SIZES[size]["nvidia"]
    torch.manual_seed(0)
    wn_config = {"n_layers": layers, "n_channels": channels, "kernel_size": 3}
    peer = glow.WaveGlow(n_mels, n_flows, n_group, every, early, wn_config).eval()
    if old:
        _nvidia_old_layout(peer)
    _randomise(peer, skip="convinv")
    tensors = _weights(peer.state_dict())
    if old:  # NVIDIA's own converter to today's layout, then today's glow.py
        _settle_weight_norm(peer)
        peer = _load("convert_model", repo / "convert_model.py").update_model(peer)
    gen = torch.Generator().manual_seed(2)
    mel = _half(torch.randn(1, n_mels, FRAMES, generator=gen) * 0.5)
    noise = _NoiseQueue(gen)
    torch.cuda.FloatTensor = noise  # type: ignore[attr-defined,misc]  # the shim, see the docstring
    with torch.no_grad():
        audio = peer.infer(mel, sigma=1.0)
        x = audio[:, : 256 * (FRAMES - 4)]
        out = peer((mel, x))
        nll = glow.WaveGlowLoss(sigma=1.0)(out)
    tensors.update({"io/mel": mel.half(), "io/audio": audio, "io/z_forward": out[0], "io/nll": _scalar(nll)})
    tensors.update({f"io/noise.{i}": z.half() for i, z in enumerate(noise.drawn)})
    name = "nvidia-waveglow-old" if old else "nvidia-waveglow"
    call = f"WaveGlow({n_mels}, {n_flows}, {n_group}, {every}, {early}, {wn_config})"
    case = {
        "name": name,
        "peer": "nvidia-waveglow",
        "source": f"github.com/NVIDIA/waveglow@{_commit(repo)}",
        "built": call + (" in the oldest layout, then convert_model.update_model" if old else ""),
        "reference": "infer(mel, sigma=1.0); forward((mel, x)); WaveGlowLoss(sigma=1.0)",
        "checkpoint": "torch-state-dict",
        "layout": "nvidia",
        "forward_samples": x.shape[1],
        "nll": "WaveGlowLoss: mean of z^2/2 - log|det|, without the 0.5 log(2 pi) of a normal density",
    }
    return case, tensors


def _l0sg(repo: Path) -> tuple[type, type]:
    _load("functions", repo / "functions.py")
    _load("modules", repo / "modules.py")
    wf = _load("l0sg_waveflow", repo / "models" / "waveflow.py")
    loss = _load("l0sg_loss", repo / "models" / "loss.py")
    return wf.WaveFlow, loss.WaveFlowLossDataParallel


def l0sg_case(repo: Path, size: str, h: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    waveflow, loss = _l0sg(repo)
    s = SIZES[size]["l0sg"]
    cycle, bipartize = (1, True) if h == 16 else (3, False)
    torch.manual_seed(0)
    peer = waveflow(1, s["cin"], s["res"], h, s["flows"], s["layers"], cycle, bipartize=bipartize).eval()
    _randomise(peer, std=0.02)
    tensors = _weights(peer.state_dict())
    gen = torch.Generator().manual_seed(3)
    mel = _half(torch.randn(1, s["cin"], FRAMES, generator=gen) * 0.5)
    t = FRAMES * 256 - 768  # their reverse trims the upsampler's last 768 samples
    z = _half(torch.randn(1, 1, h, t // h, generator=gen))
    with torch.no_grad():
        audio = peer.reverse(mel, debug_z=z)
        x = audio[:, : (t // h - 4) * h]
        z_forward, logdet = peer(x, mel)
        nll = loss(sigma=1.0)((z_forward, logdet))
        tensors.update({"io/mel": mel.half(), "io/z": z.half(), "io/audio": audio, "io/z_forward": z_forward})
        tensors["io/nll"] = _scalar(nll)
        if cycle == 1:  # their reverse_fast keeps a 2-row queue: right for height dilation 1 only
            peer.fuse_conditioning_layers()
            tensors["io/audio_fast"] = peer.reverse_fast(mel, debug_z=z)
            fused = {k: v for k, v in peer.state_dict().items() if "fused" in k}
            tensors.update({f"fused/{k}": v.contiguous() for k, v in fused.items()})
    config = {
        "data_config": {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024},
        "waveflow_config": {
            "cin_channels": s["cin"],
            "res_channels": s["res"],
            "n_height": h,
            "n_layer": s["layers"],
            "n_flow": s["flows"],
            "n_layer_per_cycle": cycle,
            "coupling_type": "waveflow_bipartize" if bipartize else "waveflow",
        },
    }
    sizes = f"{s['cin']}, {s['res']}, {h}, {s['flows']}, {s['layers']}, {cycle}"
    call = f"WaveFlow(1, {sizes}, bipartize={bipartize})"
    case = {
        "name": f"l0sg-waveflow-h{h}",
        "peer": "l0sg-waveflow",
        "source": f"github.com/L0SG/WaveFlow@{_commit(repo)}",
        "built": call,
        "reference": "reverse(mel, debug_z=z); forward(x, mel); WaveFlowLossDataParallel(sigma=1.0)"
        + ("; fuse_conditioning_layers + reverse_fast (io/audio_fast)" if cycle == 1 else ""),
        "checkpoint": "torch-model-state",
        "fused": cycle == 1,
        "config": config,
        "layout": "l0sg",
        "forward_samples": x.shape[1],
        "nll": "WaveFlowLossDataParallel: negative log-likelihood in nats per sample",
    }
    return case, tensors


def parakeet_case(ref: Path, h: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """From scripts/parakeet_reference.py's output; the .pdparams is read with our restricted unpickler."""
    from waveflow_py.pretrained.imports.safe_pickle import load_pickle_file

    raw = load_pickle_file(ref / f"wf_h{h}.pdparams")
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in raw.items() if isinstance(v, np.ndarray)}
    tensors = _weights(state)
    d = {k: torch.from_numpy(v) for k, v in np.load(ref / f"out_h{h}.npz").items()}
    n = d["audio"].shape[1]
    assert torch.equal(d["audio"], d["x"][:, :n])  # its forward input is a prefix of its inverse's output
    assert torch.equal(_half(d["mel"]), d["mel"]) and torch.equal(_half(d["z"]), d["z"])
    tensors.update(
        {"io/mel": d["mel"].half(), "io/z": d["z"].half(), "io/audio": d["x"], "io/z_forward": d["zf"]}
    )
    tensors["io/nll"] = _scalar(d["nll"])
    meta = json.loads((ref / "meta.json").read_text())
    case = {
        "name": f"parakeet-waveflow-h{h}",
        "peer": "parakeet-waveflow",
        "source": f"github.com/PaddlePaddle/Parakeet@{meta['commit']} (paddlepaddle {meta['paddle']})",
        "built": meta["call"].replace(", h,", f", {h},"),
        "reference": "decoder.inverse(z, encoder(mel, trim_conv_artifact=True)); forward(audio, mel); "
        "WaveFlowLoss(1.0)",
        "checkpoint": "paddle-pdparams",
        "layout": "parakeet",
        "forward_samples": n,
        "nll": "WaveFlowLoss: negative log-likelihood in nats per sample",
    }
    return case, tensors


def write(out: Path, cases: list[tuple[dict[str, Any], dict[str, torch.Tensor]]], command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"command": command, "torch": torch.__version__, "cases": []}
    for case, tensors in cases:
        case["file"] = f"{case['name']}.safetensors"
        save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(out / case["file"]))
        manifest["cases"].append(case)
        print(f"{case['name']}: {(out / case['file']).stat().st_size / 1024:.0f} KiB, {case['built']}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", type=Path, help="checkout of github.com/NVIDIA/waveglow")
    p.add_argument("--l0sg", type=Path, help="checkout of github.com/L0SG/WaveFlow")
    p.add_argument("--parakeet", type=Path, help="output folder of scripts/parakeet_reference.py")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny", help="model sizes (default tiny)")
    p.add_argument("--out", type=Path, help="fixture folder (default: a temporary one; needs --check)")
    p.add_argument("--check", action="store_true", help="run tests/test_peer_import_numbers.py on --out")
    args = p.parse_args()
    if args.out is None and not args.check:
        p.error("give --out, --check or both")
    torch.set_num_threads(1)
    cases = []
    if args.nvidia:
        cases += [nvidia_case(args.nvidia, args.size, old) for old in (False, True)]
    if args.l0sg:
        cases += [l0sg_case(args.l0sg, args.size, h) for h in (16, 32)]
    if args.parakeet:
        cases += [parakeet_case(args.parakeet, h) for h in (16, 64)]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        write(out, cases, "python scripts/verify_peer_import.py " + " ".join(sys.argv[1:]))
        if not args.check:
            return 0
        test = ROOT / "tests" / "test_peer_import_numbers.py"
        env = {**os.environ, "WAVEFLOW_PEER_FIXTURES": str(out)}
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", str(test)], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())

"""Check that imported peer checkpoints synthesise exactly what the peer's own code does.

Builds each peer's model from ITS OWN source (a checkout you pass; nothing of it is in this package),
with random weights, saves it in the peer's own checkpoint format, imports that with
``waveflow_py.pretrained.imports``, and compares audio from the same noise (and ``z`` from the same
audio), max abs error, fp32 on CPU::

    git clone https://github.com/NVIDIA/waveglow /tmp/waveglow
    git clone https://github.com/L0SG/WaveFlow /tmp/l0sg
    python scripts/verify_peer_import.py --nvidia /tmp/waveglow --l0sg /tmp/l0sg
    # Parakeet: first scripts/parakeet_reference.py under paddlepaddle, then --parakeet its output

Small shims, applied here only: NVIDIA's ``infer`` draws its noise with ``torch.cuda.FloatTensor``, which
is replaced by a function handing out prepared noise (so it runs on CPU and both sides get the same z).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch


def _load(name: str, path: Path) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # the pickle of a whole model refers to it by this name
    spec.loader.exec_module(mod)
    return mod


def _perturb(model: torch.nn.Module, skip: str = "convinv", std: float = 0.05) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if skip not in name:
                p.add_(torch.randn(p.shape, generator=gen) * std)


def check_nvidia(repo: Path, frames: int, tmp: Path) -> float:
    from waveflow_py.pretrained.imports import import_checkpoint

    glow = _load("glow", repo / "glow.py")
    torch.manual_seed(0)
    wn = {"n_layers": 4, "n_channels": 32, "kernel_size": 3}
    peer = glow.WaveGlow(80, 12, 8, 4, 2, wn)
    _perturb(peer)
    ckpt = tmp / "waveglow.pt"
    torch.save({"model": peer, "iteration": 7}, ckpt)  # NVIDIA's train.py format: a whole-model pickle
    ours, report = import_checkpoint("nvidia-waveglow", ckpt)
    print(report.summary())
    mel = torch.randn(1, 80, frames) * 0.5
    n = frames * 256 // 8
    noise = [torch.randn(1, 4, n), torch.randn(1, 2, n), torch.randn(1, 2, n)]  # last, early k=8, early k=4
    queue = list(noise)

    class _Noise:
        def __init__(self, *shape: int) -> None:
            self.t = queue.pop(0)
            assert tuple(self.t.shape) == shape, (self.t.shape, shape)

        def normal_(self) -> torch.Tensor:
            return self.t

    torch.cuda.FloatTensor = _Noise  # type: ignore[attr-defined,misc]  # shim: CPU noise, same for both
    with torch.no_grad():
        theirs = peer.infer(mel, sigma=1.0)
        z = torch.cat([noise[2], noise[1], noise[0]], dim=1).transpose(1, 2).reshape(1, -1)
        mine, _ = ours.inverse(z, mel, cache=ours.fast_cache())
        ref, _ = ours.inverse(z, mel)
        audio = theirs[:, : 256 * (frames - 4)]
        z_theirs = peer((mel, audio))[0].transpose(1, 2).reshape(1, -1)
        z_mine, _ = ours(audio, mel)
    err = (mine - theirs).abs().max().item()
    print(
        f"nvidia-waveglow: audio max|ours cached - NVIDIA infer| = {err:.2e}, "
        f"plain {(ref - theirs).abs().max().item():.2e}, "
        f"forward z {(z_mine - z_theirs).abs().max().item():.2e}"
        f" (audio peak {theirs.abs().max().item():.2f}, {theirs.shape[1]} samples)"
    )
    return err


def check_l0sg(repo: Path, h: int, frames: int, tmp: Path) -> float:
    from waveflow_py.pretrained.imports import import_checkpoint

    sys.path.insert(0, str(repo))  # their modules import each other by top-level name
    from models.waveflow import WaveFlow  # type: ignore[import-not-found]

    torch.manual_seed(0)
    cycle = {16: 1, 64: 5}[h]
    peer = WaveFlow(1, 80, 32, h, 8, 8, cycle, bipartize=True).eval()
    _perturb(peer, skip="<none>", std=0.02)
    ckpt = tmp / f"l0sg_h{h}.pt"
    torch.save(
        {"model": peer.state_dict(), "iteration": 5, "learning_rate": 2e-4}, ckpt
    )  # their save_checkpoint
    cfg = tmp / f"l0sg_h{h}.json"
    cfg.write_text(
        '{"data_config": {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, '
        '"win_length": 1024,'
        ' "mel_fmin": 0.0, "mel_fmax": 8000.0}, "waveflow_config": {"cin_channels": 80, "res_channels": 32,'
        f' "n_height": {h}, "n_layer": 8, "n_flow": 8, "n_layer_per_cycle": {cycle},'
        ' "coupling_type": "waveflow_bipartize"}}'
    )
    ours, report = import_checkpoint("l0sg-waveflow", ckpt, cfg)
    print(report.summary())
    mel = torch.randn(1, 80, frames) * 0.5
    t = frames * 256 - 768  # their reverse trims the upsampler's last 768 samples
    z4 = torch.randn(1, 1, h, t // h)
    with torch.no_grad():
        plain = peer.reverse(mel, debug_z=z4)
        audio = plain[:, : (t // h - 4) * h]
        z_theirs, ld_theirs = peer(audio, mel)
        theirs = plain
        if h == 16:  # L0SG's reverse_fast keeps a 2-row queue: right for height dilation 1 only
            peer.fuse_conditioning_layers()
            theirs = peer.reverse_fast(mel, debug_z=z4)
        z = z4[:, 0].transpose(1, 2).reshape(1, -1)
        mine, _ = ours.inverse(z, mel, cache=ours.fast_cache())
        ref, _ = ours.inverse(z, mel)
        z_mine, ld_mine = ours(audio, mel)
    z_theirs = z_theirs[:, 0].transpose(1, 2).reshape(1, -1)
    err = (mine - theirs).abs().max().item()
    fast = "reverse_fast" if h == 16 else "reverse (their reverse_fast needs height dilation 1)"
    print(
        f"l0sg-waveflow h={h}: audio max|ours cached - L0SG {fast}| = {err:.2e}, "
        f"ours plain vs L0SG reverse {(ref - plain).abs().max().item():.2e}, "
        f"forward z {(z_mine - z_theirs).abs().max().item():.2e}, "
        f"log-det {abs(ld_mine.item() - ld_theirs.item()):.2e} of {abs(ld_theirs.item()):.1f} "
        f"(audio peak {theirs.abs().max().item():.2f}, {theirs.shape[1]} samples)"
    )
    return err


def check_parakeet(ref_dir: Path, h: int) -> float:
    """Compare with the outputs of scripts/parakeet_reference.py (run under paddlepaddle)."""
    import numpy as np

    from waveflow_py.pretrained.imports import import_checkpoint

    ours, report = import_checkpoint("parakeet-waveflow", ref_dir / f"wf_h{h}.pdparams")
    print(report.summary())
    d = np.load(ref_dir / f"out_h{h}.npz")
    mel, z, x = (torch.from_numpy(d[k]) for k in ("mel", "z", "x"))
    with torch.no_grad():
        mine, _ = ours.inverse(z, mel, cache=ours.fast_cache())
        ref, _ = ours.inverse(z, mel)
        z_mine, ld = ours(torch.from_numpy(d["audio"]), mel)
    err = (mine - x).abs().max().item()
    print(
        f"parakeet-waveflow h={h}: audio max|ours cached - Parakeet inverse| = {err:.2e}, "
        f"plain {(ref - x).abs().max().item():.2e}, "
        f"forward z {(z_mine - torch.from_numpy(d['zf'])).abs().max().item():.2e}, "
        f"log-det {abs(ld.item() - float(d['ld'])):.2e} of {abs(float(d['ld'])):.1f} "
        f"(audio peak {x.abs().max().item():.2f}, {x.shape[1]} samples)"
    )
    return err


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", type=Path, help="checkout of github.com/NVIDIA/waveglow")
    p.add_argument("--l0sg", type=Path, help="checkout of github.com/L0SG/WaveFlow")
    p.add_argument("--parakeet", type=Path, help="output folder of scripts/parakeet_reference.py")
    p.add_argument("--frames", type=int, default=8, help="mel frames (default 8)")
    p.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    torch.set_num_threads(1)
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.nvidia:
            errors.append(check_nvidia(args.nvidia, args.frames, Path(tmp)))
        if args.l0sg:
            for h in (16, 64):
                errors.append(check_l0sg(args.l0sg, h, args.frames, Path(tmp)))
    if args.parakeet:
        errors += [check_parakeet(args.parakeet, h) for h in (16, 64)]
    ok = all(e <= args.tol for e in errors)
    print("PASS" if ok else "FAIL", f"(tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

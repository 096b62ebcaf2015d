"""Speed of imported peer checkpoints: the peer's own fastest inverse vs our cached inverse vs the
exported ONNX graph in onnxruntime, side by side in one run (CPU, random weights at paper size).

Peers are built from THEIR checkouts (nothing of them is in this package), saved in their own
checkpoint format and imported with ``waveflow_py.pretrained.imports``; then every method vocodes the
same mel with the same noise::

    nice python benchmarks/bench_import_export.py --nvidia /tmp/waveglow --l0sg /tmp/l0sg \
        --seconds 0.5 --threads 2

Prints samples per second (kHz), x real time and each method's max abs difference from ours.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch


def _timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _row(model: str, method: str, sec: float, samples: int, sr: int, err: float | None) -> str:
    khz = samples / sec / 1e3
    diff = "" if err is None else f"{err:.1e}"
    return f"| {model} | {method} | {sec:.3f} | {khz:.1f} | {khz * 1e3 / sr:.2f} | {diff} |"


def _onnx_runner(model: torch.nn.Module, tmp: Path, threads: int) -> Callable[..., torch.Tensor]:
    import onnxruntime as ort

    from waveflow_py.inference.onnx_export import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx(model, tmp / "model.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda mel, noise: torch.from_numpy(
        session.run(None, {"mel": mel.numpy(), "noise": noise.numpy()})[0]
    )


def bench_nvidia(repo: Path, tmp: Path, frames: int, repeats: int, threads: int) -> list[str]:
    from waveflow_py.pretrained.imports import import_checkpoint

    spec = importlib.util.spec_from_file_location("glow", repo / "glow.py")
    assert spec is not None and spec.loader is not None
    glow = importlib.util.module_from_spec(spec)
    sys.modules["glow"] = glow
    spec.loader.exec_module(glow)
    torch.manual_seed(0)
    peer = glow.WaveGlow(80, 12, 8, 4, 2, {"n_layers": 8, "n_channels": 256, "kernel_size": 3}).eval()
    torch.save({"model": peer}, tmp / "waveglow.pt")
    ours, _ = import_checkpoint("nvidia-waveglow", tmp / "waveglow.pt")
    peer = glow.WaveGlow.remove_weightnorm(peer)  # what NVIDIA's inference.py does before infer
    mel = torch.randn(1, 80, frames)
    n = frames * 256 // 8
    noise = [torch.randn(1, 4, n), torch.randn(1, 2, n), torch.randn(1, 2, n)]
    z = torch.cat([noise[2], noise[1], noise[0]], 1).transpose(1, 2).reshape(1, -1)

    def theirs() -> torch.Tensor:
        queue = list(noise)

        class _Noise:  # shim: NVIDIA's infer draws with torch.cuda.FloatTensor; hand it our noise
            def __init__(self, *shape: int) -> None:
                self.t = queue.pop(0)

            def normal_(self) -> torch.Tensor:
                return self.t

        torch.cuda.FloatTensor = _Noise  # type: ignore[attr-defined,misc]
        with torch.no_grad():
            return peer.infer(mel, sigma=1.0)

    def mine(dtype: torch.dtype | None = None) -> torch.Tensor:
        with torch.no_grad():
            return ours.inverse(z, mel, cache=ours.fast_cache(dtype))[0]

    onnx = _onnx_runner(ours, tmp, threads)
    samples, rows = frames * 256, []
    t_ref, ref = _timed(mine, repeats)
    for name, fn in [
        ("NVIDIA infer (weight norm removed)", theirs),
        ("ours cached fp32", mine),
        ("ours cached bf16", lambda: mine(torch.bfloat16)),
        ("ONNX Runtime fp32", lambda: onnx(mel, z)),
    ]:
        sec, out = (t_ref, ref) if name == "ours cached fp32" else _timed(fn, repeats)
        rows.append(
            _row("WaveGlow 12x8, 256 ch (NVIDIA)", name, sec, samples, 22050, (out - ref).abs().max().item())
        )
    return rows


def bench_l0sg(repo: Path, tmp: Path, frames: int, repeats: int, threads: int, onnx_too: bool) -> list[str]:
    from waveflow_py.pretrained.imports import import_checkpoint

    sys.path.insert(0, str(repo))  # their modules import each other by top-level name
    from models.waveflow import WaveFlow  # type: ignore[import-not-found]

    torch.manual_seed(0)
    peer = WaveFlow(1, 80, 64, 16, 8, 8, 1, bipartize=True).eval()
    torch.save({"model": peer.state_dict()}, tmp / "l0sg.pt")
    (tmp / "l0sg.json").write_text(
        '{"waveflow_config": {"cin_channels": 80, "res_channels": 64, "n_height": 16, "n_layer": 8, '
        '"n_flow": 8, "n_layer_per_cycle": 1, "coupling_type": "waveflow_bipartize"}}'
    )
    ours, _ = import_checkpoint("l0sg-waveflow", tmp / "l0sg.pt", tmp / "l0sg.json")
    peer.remove_weight_norm()
    peer.fuse_conditioning_layers()  # what their synthesize does before reverse_fast
    mel = torch.randn(1, 80, frames)
    t = frames * 256 - 768  # their reverse_fast trims the upsampler's last 768 samples
    z4 = torch.randn(1, 1, 16, t // 16)
    z = z4[:, 0].transpose(1, 2).reshape(1, -1)

    def theirs() -> torch.Tensor:
        with torch.no_grad():
            return peer.reverse_fast(mel, debug_z=z4)

    def mine(dtype: torch.dtype | None = None) -> torch.Tensor:
        with torch.no_grad():
            return ours.inverse(z, mel, cache=ours.fast_cache(dtype))[0]

    methods = [
        ("L0SG reverse_fast (wn removed, fused)", theirs),
        ("ours cached fp32", mine),
        ("ours cached bf16", lambda: mine(torch.bfloat16)),
    ]
    if onnx_too:  # the unrolled h=16 x 8 x 8 graph takes many minutes to export (see docs/import.md)
        onnx = _onnx_runner(ours, tmp, threads)
        z_full = torch.cat([z, torch.zeros(1, 768)], 1)  # the graph takes F * hop samples: first t compared
        methods.append(("ONNX Runtime fp32", lambda: onnx(mel, z_full)[:, :t]))
    rows = []
    t_ref, ref = _timed(mine, repeats)
    for name, fn in methods:
        sec, out = (t_ref, ref) if name == "ours cached fp32" else _timed(fn, repeats)
        rows.append(_row("WaveFlow h16 r64 8x8 (L0SG)", name, sec, t, 22050, (out - ref).abs().max().item()))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", type=Path, help="checkout of github.com/NVIDIA/waveglow")
    p.add_argument("--l0sg", type=Path, help="checkout of github.com/L0SG/WaveFlow")
    p.add_argument("--seconds", type=float, default=0.5, help="audio length (default 0.5 s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--onnx-waveflow",
        action="store_true",
        help="also export and time the WaveFlow graph (its export takes many minutes)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames = max(4, round(args.seconds * 22050 / 256))
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in flags.splitlines() if ":" in ln)}
    isa = [f for f in info.get("Flags", "").split() if f.startswith(("avx", "amx", "fma", "f16c"))]
    print(
        f"CPU: {info.get('Model name', '?')}; {args.threads} threads; torch {torch.__version__}; "
        f"flags: {' '.join(isa)}"
    )
    print(
        f"{frames} mel frames ({frames * 256 / 22050:.2f} s), best of {args.repeats} after a warm-up, "
        "random weights\n"
    )
    print("| model | method | seconds | kHz | x real time | max abs diff vs ours fp32 |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        if args.nvidia:
            print("\n".join(bench_nvidia(args.nvidia, Path(tmp), frames, args.repeats, args.threads)))
        if args.l0sg:
            rows = bench_l0sg(args.l0sg, Path(tmp), frames, args.repeats, args.threads, args.onnx_waveflow)
            print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

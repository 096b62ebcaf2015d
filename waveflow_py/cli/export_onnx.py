"""``waveflow export-onnx RELEASE -o model.onnx``: the release's inverse as an ONNX graph
``(mel, noise) -> audio`` for onnxruntime / TensorRT, without this package. See docs/import.md."""

from __future__ import annotations

import argparse

HELP = "export a release's inverse as ONNX: (mel, noise) -> audio, dynamic batch and frames"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="release name or directory")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument(
        "--static", action="store_true", help="fixed shapes (batch 1, --frames) instead of dynamic"
    )
    p.add_argument("--frames", type=int, default=8, help="mel frames of the example input (default 8)")
    p.add_argument(
        "--check",
        action="store_true",
        help="run the graph in onnxruntime and compare with the PyTorch cached inverse",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")


def run(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from waveflow_py.inference.onnx_export import check_onnx, export_onnx
    from waveflow_py.pretrained import load_release

    out = Path(args.output)
    if out.is_dir():
        raise ValueError(f"-o {out} is a directory: give the .onnx file to write")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; use --force to overwrite it")
    if args.frames < 1 or not 7 <= args.opset <= 23:
        raise ValueError(f"expected --frames >= 1 and 7 <= --opset <= 23, got {args.frames}, {args.opset}")
    model, info = load_release(args.model)
    partial = out.with_name(out.name + ".partial")  # where the exporter writes before it renames
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shape checks of fixed channel counts
            export_onnx(model, out, frames=args.frames, opset=args.opset, dynamic=not args.static)
    finally:  # a failed or interrupted export leaves nothing behind
        partial.unlink(missing_ok=True)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): inputs mel (B, {info.mel.n_mels}, F), "
        f"noise (B, F*{info.mel.hop_length}); output audio (B, F*{info.mel.hop_length})"
        + ("" if args.static else "; B and F dynamic")
    )
    if args.check:
        err = check_onnx(
            model, out, frames=args.frames if args.static else args.frames + 3, batch=1 if args.static else 2
        )
        print(f"onnxruntime vs PyTorch cached inverse: max abs error {err:.2e}")
        if err > 1e-4:
            raise ValueError(f"the exported graph differs from PyTorch by {err:.2e} (> 1e-4)")
    return 0

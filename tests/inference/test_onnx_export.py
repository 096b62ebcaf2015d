"""ONNX export: the graph run by onnxruntime equals the PyTorch cached inverse (dynamic batch and
frames), envelopes other than "none" are refused, and the CLI fails in one line on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.inference.conftest import tiny_waveflow, tiny_waveglow
from waveflow_py.cli import main
from waveflow_py.config import SourceFilterConfig
from waveflow_py.inference.onnx_export import ExportableInverse, check_onnx, export_onnx, onnx_inputs
from waveflow_py.pretrained import save_release

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning", "ignore::UserWarning"
)

MODELS = {
    "waveflow": lambda: tiny_waveflow(n_layers=3, height_dilations=[1, 2, 1]),
    "waveflow-identity-first-row": lambda: tiny_waveflow(first_row="identity", scale_bound=None),
    "waveglow": lambda: tiny_waveglow(),
    "waveglow-nvidia-upsampler": lambda: tiny_waveglow(upsampler="nvidia"),
    "waveglow-pooled": lambda: tiny_waveglow(condition="pooled"),
}


def _perturb_all(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "transforms.0" not in name:  # keep the 1x1 convolutions well conditioned
                p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_graph_equals_the_cached_inverse(name: str, tmp_path: Path) -> None:
    model = _perturb_all(MODELS[name]())
    mel, noise = onnx_inputs(model, 5, batch=1)
    with torch.no_grad():
        want, _ = model.inverse(noise, mel, cache=model.fast_cache())
        got = ExportableInverse(model)(mel, noise)
    assert (got - want).abs().max() <= 1e-5
    path = export_onnx(model, tmp_path / "m.onnx", frames=3)
    for frames, batch in [(3, 1), (6, 2)]:  # other frames and batch than the export example: dynamic axes
        assert check_onnx(model, path, frames=frames, batch=batch) <= 1e-4


@pytest.mark.parametrize(
    "stage", [{"envelope": "gain"}, {"pitch": "ltp"}, {"preemphasis": 0.9}], ids=lambda d: next(iter(d))
)
def test_fixed_filter_stages_are_refused(tmp_path: Path, stage: dict) -> None:
    model = tiny_waveflow(source_filter=SourceFilterConfig(**stage))
    with pytest.raises(ValueError, match=f"fixed filter stage \\({next(iter(stage))}"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_and_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = save_release(
        tmp_path / "rel", _perturb_all(tiny_waveflow()), provenance={"weights": "untrained (random)"}
    )
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(release), "-o", str(out), "--check"]) == 0
    assert "max abs error" in capsys.readouterr().out
    before = out.read_bytes()
    for argv, message in [
        ([str(release), "-o", str(out)], "exists; use --force"),
        # the message names the problem, not only the path (which alone would match any error about it)
        ([str(tmp_path / "missing"), "-o", str(tmp_path / "n.onnx")], "release directory not found: "),
        ([str(release), "-o", str(tmp_path / "n.onnx"), "--frames", "0"], "--frames >= 1"),
    ]:
        assert main(["export-onnx", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == before and not (tmp_path / "n.onnx").exists()

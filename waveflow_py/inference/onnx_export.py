"""Export a vocoder's cached inverse as a self-contained ONNX graph ``(mel, noise) -> audio``.

The graph is built from :class:`ExportableInverse`, a functional (no in-place buffers, no Python state)
restatement of the same inverse as the models' cached paths, on a copy of the model with weight norm
folded into plain weights:

* WaveFlow: for fixed ``h`` the row loop is unrolled; every 2-D WaveNet row is computed once from a
  per-layer history of its input rows (the ring buffer of :mod:`waveflow_py.nn.wavenet2d_step`, as
  graph values), and the mel projections of all rows are one 1x1 conv per layer up front.
* WaveGlow: the inverse is parallel over time; the inverse 1x1 matrices are computed once in float64
  at export time and stored as constants.

Inputs ``mel (B, n_mels, F)`` and ``noise (B, F * hop)`` (``z``: ``prior.sample(temperature)``, i.e.
``sigma * temperature * N(0, 1)``); output ``audio (B, F * hop)``. Batch ``B`` and frames ``F`` are
dynamic axes. A test keeps the graph (in onnxruntime) equal to the PyTorch cached inverse.
Only models without a fixed filter stage (``envelope: none``, ``pitch: none``, no pre-emphasis) are
exported.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from waveflow_py.config import source_filter_of

__all__ = ["ExportableInverse", "export_onnx", "check_onnx", "onnx_inputs", "DEFAULT_OPSET"]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17


def _fold_weight_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every parametrisation (weight norm) folded into a plain weight."""
    # a fresh build, not a deepcopy: a parametrised module's class is created per instance and a
    # deepcopy shares it, so removing the parametrisation from a copy would break the original
    fresh = type(model)(model.config)
    fresh.load_state_dict(model.state_dict())
    model = fresh.float().eval()
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_exportable(model: nn.Module) -> None:
    cfg = source_filter_of(getattr(model, "config", None))
    stages = {
        "envelope": cfg.envelope,
        "pitch": cfg.pitch,
        "preemphasis": cfg.preemphasis,
        "source": cfg.source,
    }
    active = [f"{k} {v!r}" for k, v in stages.items() if v not in (None, "none", 0.0, 0)]
    if active:
        raise ValueError(
            f"export: the model has a fixed filter stage ({', '.join(active)}); only models without one "
            "(envelope 'none', pitch 'none', source 'none', no pre-emphasis) are exported: the recursive "
            "filters are not part of the graph"
        )


class ExportableInverse(nn.Module):
    """``forward(mel (B, n_mels, F), noise (B, F * hop)) -> audio (B, F * hop)``: the model's inverse
    as plain tensor operations (see the module docstring); ``model`` itself is not modified."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from waveflow_py.models.waveflow import WaveFlow
        from waveflow_py.models.waveglow import WaveGlow

        _check_exportable(model)
        if not isinstance(model, (WaveFlow, WaveGlow)):
            raise ValueError(f"export: expected a WaveFlow or WaveGlow model, got {type(model).__name__}")
        self.kind = "waveflow" if isinstance(model, WaveFlow) else "waveglow"
        self.net: Any = _fold_weight_norm(model)
        self.n_group = int(model.n_group)
        self.hop = int(model.hop_length)
        if self.kind == "waveglow":
            inv = [torch.linalg.inv(flow.transforms[0].weight().double()).float() for flow in self.net.flows]
            self.register_buffer(
                "w_inv",
                torch.stack(
                    [F.pad(w, (0, self.n_group - w.shape[0], 0, self.n_group - w.shape[0])) for w in inv]
                ),
            )

    def forward(self, mel: Tensor, noise: Tensor) -> Tensor:
        # the model's own conditioning: upsampled, trimmed to the noise, squeezed (or pooled)
        cond = self.net._condition(mel, noise.shape[1])
        if self.kind == "waveflow":
            return self._waveflow(cond, noise)
        return self._waveglow(cond, noise)

    # ------------------------------------------------------------------ WaveFlow
    def _waveflow(self, cond: Tensor, noise: Tensor) -> Tensor:
        h, b = self.n_group, noise.shape[0]
        y = noise.reshape(b, -1, h).transpose(1, 2).unsqueeze(1)  # (B, 1, h, W)
        c = cond  # (B, A, h, W)
        net = self.net
        for k in reversed(range(len(net.flows))):
            y = y[:, :, net._inv_perm[k]]  # undo the permutation that followed flow k
            ctx = c if k == 0 else c[:, :, net._ctx_idx[k]]
            y = self._flow_rows(net.flows[k], y, ctx)
        return y[:, 0].transpose(1, 2).reshape(b, -1)

    def _flow_rows(self, flow: Any, y: Tensor, ctx: Tensor) -> Tensor:
        net, h = flow.conditioner, y.shape[2]
        identity = bool(getattr(flow, "identity_first_row", False))
        if identity:
            ctx = ctx[:, :, 1:]
        # mel projections (+ both biases) of every layer for every row, up front
        conds = [layer.cond(ctx) + layer.conv.bias[None, :, None, None] for layer in net.layers]
        hist: list[list[Tensor]] = [[] for _ in net.layers]
        rows = [y[:, :, 0]] if identity else []
        zero = torch.zeros_like(y[:, :, 0])
        for j in range(h - 1 if identity else h):
            u = rows[j] if identity else (zero if j == 0 else rows[j - 1])
            x = net.start_conv(u.unsqueeze(2)).squeeze(2)  # (B, C, W)
            skip_sum: Tensor | None = None
            for li, layer in enumerate(net.layers):
                hist[li].append(x)
                kh, dh = layer.kernel_size[0], layer.dilation[0]
                taps = [
                    hist[li][j - (kh - 1 - q) * dh] if j - (kh - 1 - q) * dh >= 0 else torch.zeros_like(x)
                    for q in range(kh)
                ]
                stack = F.pad(torch.stack(taps, dim=2), layer.padding[:2])  # (B, C, kh, W + pad)
                pre = F.conv2d(stack, layer.conv.weight, None, dilation=(1, layer.dilation[1])).squeeze(2)
                pre = pre + conds[li][:, :, j]
                a, g = pre.chunk(2, dim=1)
                out = F.conv1d(
                    torch.tanh(a) * torch.sigmoid(g), layer.res_skip.weight.squeeze(-1), layer.res_skip.bias
                )
                res, skip = out.split([out.shape[1] - layer.residual_channels, layer.residual_channels], 1)
                x = x + res
                skip_sum = skip if skip_sum is None else skip_sum + skip
            assert skip_sum is not None
            params = F.conv1d(skip_sum, net.end_conv.weight.squeeze(-1), net.end_conv.bias)
            raw, shift = params.split(flow.channels, dim=1)
            log_s = raw if flow.scale_bound is None else flow.scale_bound * torch.tanh(raw / flow.scale_bound)
            i = j + 1 if identity else j
            rows.append((y[:, :, i] - shift) * torch.exp(-log_s))
        return torch.stack(rows, dim=2)

    # ------------------------------------------------------------------ WaveGlow
    def _waveglow(self, cond: Tensor, noise: Tensor) -> Tensor:
        g, b = self.n_group, noise.shape[0]
        y = noise.reshape(b, -1, g).transpose(1, 2)  # (B, g, T / g)
        c = cond  # (B, n_mels * g, T / g), or (B, n_mels, T / g) pooled
        net = self.net
        early = net.config.n_early_size
        pos = g - net.channels[-1]
        x = y[:, pos:]
        for k in range(len(net.flows) - 1, -1, -1):
            coupling = net.flows[k].transforms[1]
            n_c = net.channels[k]
            half = n_c // 2
            x_a, x_b = x[:, :half], x[:, half:]
            shift, raw = coupling.conditioner(x_a, c).chunk(2, dim=1)
            x = torch.cat([x_a, (x_b - shift) * torch.exp(-raw)], dim=1)
            x = torch.matmul(self.w_inv[k, :n_c, :n_c], x)
            if net._early(k):
                x = torch.cat([y[:, pos - early : pos], x], dim=1)
                pos -= early
        return x.transpose(1, 2).reshape(b, -1)


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    frames: int = 8,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
) -> Path:
    """Write ``model``'s inverse as ONNX to ``path``: inputs ``mel (B, n_mels, F)``, ``noise (B, F*hop)``,
    output ``audio (B, F*hop)``; ``dynamic``: batch and frames are dynamic axes (else fixed to the
    example ``(1, frames)``). Needs the ``onnx`` package (``pip install waveflow-py[export]``)."""
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ValueError("export-onnx needs the onnx package: pip install 'waveflow-py[export]'") from e
    graph = ExportableInverse(model).eval()
    n_mels = model.config.mel.n_mels
    mel = torch.randn(1, n_mels, frames)
    noise = torch.randn(1, frames * graph.hop)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    axes: dict[str, dict[int, str]] | None = None
    if dynamic:
        axes = {
            "mel": {0: "batch", 2: "frames"},
            "noise": {0: "batch", 1: "samples"},
            "audio": {0: "batch", 1: "samples"},
        }
    tmp = out.with_name(out.name + ".partial")
    with torch.no_grad():
        torch.onnx.export(
            graph,
            (mel, noise),
            str(tmp),
            input_names=["mel", "noise"],
            output_names=["audio"],
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False,
            do_constant_folding=True,
        )
    os.replace(tmp, out)
    logger.info("exported %s inverse to %s (opset %d)", graph.kind, out, opset)
    return out


def onnx_inputs(model: Any, frames: int, batch: int = 1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Example ``(mel, noise)`` for a model (for checks and benchmarks)."""
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, model.config.mel.n_mels, frames, generator=gen)
    noise = torch.randn(batch, frames * model.hop_length, generator=gen)
    return mel, noise


def check_onnx(model: Any, path: str | os.PathLike[str], frames: int = 8, batch: int = 1) -> float:
    """Max abs difference between the ONNX graph in onnxruntime (CPU) and the PyTorch cached inverse."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ValueError("checking needs onnxruntime: pip install 'waveflow-py[export]'") from e
    mel, noise = onnx_inputs(model, frames, batch)
    ref = next(model.parameters())
    with torch.no_grad():
        want, _ = model.inverse(noise.to(ref), mel.to(ref), cache=model.fast_cache())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"mel": mel.numpy(), "noise": noise.numpy()})[0]
    return float((torch.from_numpy(got) - want.float().cpu()).abs().max())

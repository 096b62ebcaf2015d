"""Import WaveFlow checkpoints of L0SG's PyTorch port (github.com/L0SG/WaveFlow) and of the authors'
PaddlePaddle release (Parakeet / PaddleSpeech, Ping et al. 2020) exactly.

Both share one architecture, which differs from our default WaveFlow in two ways, selected by config
fields: the first row of every flow is copied unchanged and row ``i > 0`` is predicted from rows
``0 .. i-1`` with conditioning rows ``1 .. i`` (``WaveFlowConfig.first_row = "identity"``), and the
log-scale is unbounded (``scale_bound = None``). Upsampler (two weight-normed ``ConvTranspose2d`` +
leaky ReLU 0.4), 2-D WaveNet (1x1 input conv, causal-in-height dilated 3x3 convs, per-layer 1x1 mel
projection, residual-first res/skip 1x1 convs, unscaled skip sum, zero-initialised output conv:
log-scale first), squeeze (column ``j`` = samples ``j*h .. j*h + h - 1``) and permutations (reverse for
the first half of the flows, then reverse within each half of the height) are the same as ours.

* **L0SG** (``train.py`` saves ``{"model": state_dict, "optimizer", "scheduler", "learning_rate",
  "iteration"}``; read with ``torch.load(weights_only=True)``): ``upsample_conv.{0,2}`` ->
  ``upsampler.stages.{0,1}``; ``flows.k.coupling.net.front_conv.0.conv`` -> ``start_conv``;
  ``res_blocks.i.filter_gate_conv.conv / filter_gate_conv_c / res_skip_conv`` -> ``layers.i.conv /
  cond / res_skip``; ``flows.k.coupling.proj_log_s_t.conv`` -> ``end_conv``; a ``fused_filter_gate_conv_c``
  (after their ``fuse_conditioning_layers``) is split per layer. Height, height-dilation cycle and
  permutation are not in the weights: their config JSON (``--config``) gives them.
* **Parakeet** (``.pdparams``, a pickle of numpy arrays, read with the restricted unpickler):
  ``encoder.{0,1}`` -> ``upsampler.stages.{0,1}``; ``decoder.k.input_proj`` -> ``start_conv``;
  ``decoder.k.resnet.i.conv / condition_proj / out_proj`` -> ``layers.i.conv / cond / res_skip``;
  ``decoder.k.output_proj`` -> ``end_conv``; the permutation buffers are checked against ours, then
  ignored. Parakeet's ``dilations_dict`` gives the height dilations for ``n_group``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from waveflow_py.config import WaveFlowConfig, mel_preset
from waveflow_py.pretrained.imports.common import (
    ImportReport,
    StateMapper,
    as_tensor_dict,
    nvidia_mel_settings,
    read_json_config,
    strip_prefix,
)
from waveflow_py.pretrained.imports.errors import CheckpointImportError
from waveflow_py.pretrained.imports.safe_pickle import load_pickle_file

__all__ = ["import_l0sg_waveflow", "import_parakeet_waveflow", "PARAKEET_HEIGHT_DILATIONS"]

# parakeet/models/waveflow.py, Flow.dilations_dict
PARAKEET_HEIGHT_DILATIONS = {
    8: [1] * 8, 16: [1] * 8, 32: [1, 2, 4, 1, 2, 4, 1, 2], 64: [1, 2, 4, 8, 16, 1, 2, 4],
    128: [1, 2, 4, 8, 16, 32, 64, 1],
}  # fmt: skip


def _count(state: dict[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in state if (m := rx.match(k))}
    return max(found) + 1 if found else 0


def _shape(state: dict[str, Tensor], prefix: str, where: str) -> tuple[int, ...]:
    for suffix in (".weight_v", ".weight"):
        if prefix + suffix in state:
            return tuple(state[prefix + suffix].shape)
    raise CheckpointImportError(f"{where}: missing tensor {prefix}.weight_v (or {prefix}.weight)")


def _config(where: str, **kw: Any) -> WaveFlowConfig:
    try:
        return WaveFlowConfig(scale_bound=None, first_row="identity", **kw)
    except ValueError as e:
        raise CheckpointImportError(f"{where}: {e}") from e


def _map_flows(m: StateMapper, cfg: WaveFlowConfig, names: dict[str, str]) -> None:
    """The flows' 2-D WaveNets, with the peer's name templates (``{k}`` flow, ``{i}`` layer) in ``names``."""
    for k in range(cfg.n_flows):
        ours = f"flows.{k}.conditioner"
        m.weight_norm(names["start"].format(k=k), f"{ours}.start_conv")
        m.plain(names["end"].format(k=k), f"{ours}.end_conv")
        fused = names["fused"].format(k=k) if "fused" in names else ""
        if fused and m.has(f"{fused}.weight"):  # L0SG fuse_conditioning_layers(): split per layer
            w, b = m.take(f"{fused}.weight"), m.take(f"{fused}.bias")
            if w is None or b is None or w.shape[0] != 2 * cfg.residual_channels * cfg.n_layers:
                raise CheckpointImportError(f"{fused}: unexpected fused conditioning shape")
            for i, (wi, bi) in enumerate(zip(w.chunk(cfg.n_layers), b.chunk(cfg.n_layers), strict=True)):
                g = wi.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
                m.put(f"{ours}.layers.{i}.cond.parametrizations.weight.original0", g)
                m.put(f"{ours}.layers.{i}.cond.parametrizations.weight.original1", wi)
                m.put(f"{ours}.layers.{i}.cond.bias", bi)
        for i in range(cfg.n_layers):
            m.weight_norm(names["conv"].format(k=k, i=i), f"{ours}.layers.{i}.conv")
            m.weight_norm(names["res_skip"].format(k=k, i=i), f"{ours}.layers.{i}.res_skip")
            if not (fused and f"{fused}.weight" in m.used):
                m.weight_norm(names["cond"].format(k=k, i=i), f"{ours}.layers.{i}.cond")


# ----------------------------------------------------------------------------- L0SG
def import_l0sg_waveflow(
    checkpoint: str | Path, config: str | Path | None = None, allow_unmapped: bool = False
) -> tuple[Any, ImportReport]:
    """L0SG WaveFlow checkpoint + their config JSON -> (our WaveFlow, report)."""
    from waveflow_py.models.waveflow import WaveFlow

    where = str(checkpoint)
    state, steps = _load_l0sg_state(Path(checkpoint), where)
    cfg = _l0sg_config(state, config, where)
    model = WaveFlow(cfg)
    report = ImportReport(source=where, peer="l0sg-waveflow", steps=steps)
    m = StateMapper(state, model, report)
    net = "flows.{k}.coupling.net"
    for s in range(2):  # upsample_conv: ConvTranspose2d, LeakyReLU, ConvTranspose2d, LeakyReLU
        m.weight_norm(f"upsample_conv.{2 * s}", f"upsampler.stages.{s}")
    _map_flows(
        m,
        cfg,
        {
            "start": net + ".front_conv.0.conv",
            "end": "flows.{k}.coupling.proj_log_s_t.conv",
            "conv": net + ".res_blocks.{i}.filter_gate_conv.conv",
            "res_skip": net + ".res_blocks.{i}.res_skip_conv",
            "cond": net + ".res_blocks.{i}.filter_gate_conv_c",
            "fused": net + ".fused_filter_gate_conv_c",
        },
    )
    return m.finish(allow_unmapped), report


def _load_l0sg_state(path: Path, where: str) -> tuple[dict[str, Tensor], int | None]:
    """Their checkpoint (tensors and containers only) -> (the model's state dict, training steps)."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch raises many types for bad/unsafe files: one line each
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            raise CheckpointImportError(
                f"{where}: refusing to load: the pickle needs more than tensors and containers "
                f"(torch weights_only: {_unsupported(str(e))}); nothing from it was run"
            ) from e
        raise CheckpointImportError(f"{where}: truncated or corrupt torch checkpoint ({msg})") from e
    steps = obj.get("iteration") if isinstance(obj, dict) and isinstance(obj.get("iteration"), int) else None
    if isinstance(obj, dict) and "model" in obj:
        obj = obj["model"]
    state = strip_prefix(as_tensor_dict(obj, where))
    if not any(k.startswith("flows.") and ".coupling." in k for k in state):
        raise CheckpointImportError(
            f"{where}: no L0SG WaveFlow tensors (flows.k.coupling.*): not an L0SG WaveFlow checkpoint "
            f"(first keys {sorted(state)[:4]})"
        )
    return state, steps


def _l0sg_config(state: dict[str, Tensor], config: str | Path | None, where: str) -> WaveFlowConfig:
    """Our config from their config JSON (height, cycle, coupling, mel) and the checkpoint's shapes."""
    theirs = read_json_config(config, "L0SG WaveFlow")
    if theirs is None:
        raise CheckpointImportError(
            f"{where}: an L0SG checkpoint does not record n_height, n_layer_per_cycle or coupling_type: "
            "pass their config JSON with --config (e.g. configs/waveflow-h16-r64-bipartize.json)"
        )
    wf = theirs.get("waveflow_config", theirs)
    need = ("n_height", "n_flow", "n_layer", "res_channels", "n_layer_per_cycle", "coupling_type")
    lacking = [k for k in need if k not in wf]
    if lacking:
        raise CheckpointImportError(f"{config}: not an L0SG WaveFlow config: missing {lacking}")
    if wf["coupling_type"] not in ("waveflow", "waveflow_bipartize"):
        raise CheckpointImportError(f"{config}: unsupported coupling_type {wf['coupling_type']!r}")
    derived = _l0sg_shapes(state, wf, where)
    bad = [f"{k}: config {wf[k]} vs checkpoint {v}" for k, v in derived.items() if k in wf and wf[k] != v]
    if bad:
        raise CheckpointImportError(f"{where}: the config does not match the checkpoint ({'; '.join(bad)})")
    cycle, n_layers = int(wf["n_layer_per_cycle"]), derived["n_layer"]
    return _config(
        where,
        n_group=int(wf["n_height"]),
        n_flows=derived["n_flow"],
        n_layers=n_layers,
        residual_channels=derived["res_channels"],
        height_dilations=[2 ** (i % cycle) for i in range(n_layers)],
        permutation="bipartition" if wf["coupling_type"] == "waveflow_bipartize" else "reverse",
        mel=mel_preset("tacotron2", n_mels=derived["cin_channels"], **_l0sg_mel(theirs, config)),
        upsample_scales=[16, 16],
    )


def _l0sg_shapes(state: dict[str, Tensor], wf: dict[str, Any], where: str) -> dict[str, int]:
    """``n_flow``, ``n_layer``, ``res_channels`` and ``cin_channels`` as the checkpoint's tensors say."""
    n_flows = _count(state, r"flows\.(\d+)\.coupling\.")
    n_layers = _count(state, r"flows\.0\.coupling\.net\.res_blocks\.(\d+)\.")
    res = _shape(state, "flows.0.coupling.net.front_conv.0.conv", where)[0]
    n_mels = (
        _shape(state, "flows.0.coupling.net.res_blocks.0.filter_gate_conv_c", where)[1]
        if n_layers and any("filter_gate_conv_c" in k and "fused" not in k for k in state)
        else int(wf.get("cin_channels", 80))
    )
    return {"n_flow": n_flows, "n_layer": n_layers, "res_channels": res, "cin_channels": n_mels}


def _l0sg_mel(theirs: dict[str, Any], config: str | Path | None) -> dict[str, Any]:
    """The mel settings of their ``data_config`` under our names (hop 256: their upsampler's)."""
    mel_kw = nvidia_mel_settings(theirs)
    if mel_kw.get("hop_length", 256) != 256:
        raise CheckpointImportError(f"{config}: L0SG's upsampler is fixed at hop 256, config says {mel_kw}")
    return mel_kw


def _unsupported(text: str) -> str:
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if not found:
        return text.strip().splitlines()[0][:200]
    hint = (
        " -- an NVIDIA whole-model pickle? try --from nvidia-waveglow"
        if found.group(1).startswith("glow.")
        else ""
    )
    return f"it references {found.group(1)}{hint}"


# ----------------------------------------------------------------------------- Parakeet / PaddleSpeech
def _parakeet_config(path: str | Path | None) -> dict[str, Any]:
    data = read_json_config(path, "Parakeet WaveFlow") if path is not None else {}
    assert data is not None
    model, mel = data.get("model", {}), data.get("data", {})
    if path is not None and not model:
        raise CheckpointImportError(f"{path}: not a Parakeet WaveFlow config (no 'model' section)")
    return {"model": model, "data": mel}


def import_parakeet_waveflow(
    checkpoint: str | Path, config: str | Path | None = None, allow_unmapped: bool = False
) -> tuple[Any, ImportReport]:
    """Parakeet/PaddleSpeech WaveFlow ``.pdparams`` (+ optional their YAML config) -> (our WaveFlow,
    report). Without a config, Parakeet's defaults (``examples/waveflow/config.py``) apply where the
    weights do not tell: upsample factors 16 x 16, 22.05 kHz, hop 256, 80 mels 0-8000 Hz."""
    from waveflow_py.models.waveflow import WaveFlow

    where = str(checkpoint)
    state = as_tensor_dict(load_pickle_file(checkpoint), where)
    if not any(k.startswith("decoder.") and ".resnet." in k for k in state):
        raise CheckpointImportError(
            f"{where}: no Parakeet WaveFlow tensors (decoder.k.resnet.*): not a Parakeet WaveFlow checkpoint "
            f"(first keys {sorted(state)[:4]})"
        )
    perms = {
        k: v
        for k, v in state.items()
        if k.startswith("decoder.") and v.dim() == 1 and not v.is_floating_point()
    }
    cfg = _parakeet_waveflow_config(state, _parakeet_config(config), perms, where)
    model = WaveFlow(cfg)
    report = ImportReport(source=where, peer="parakeet-waveflow")
    m = StateMapper(state, model, report)
    ours_perms = [list(p) for p in model.perms]
    for key, value in perms.items():
        if value.tolist() not in ours_perms:
            raise CheckpointImportError(
                f"{where}: permutation buffer {key} = {value.tolist()} is not WaveFlow's"
            )
        m.ignore(key)
    for s in range(len(cfg.upsample_scales or ())):
        m.weight_norm(f"encoder.{s}", f"upsampler.stages.{s}")
    _map_flows(
        m,
        cfg,
        {
            "start": "decoder.{k}.input_proj",
            "end": "decoder.{k}.output_proj",
            "conv": "decoder.{k}.resnet.{i}.conv",
            "res_skip": "decoder.{k}.resnet.{i}.out_proj",
            "cond": "decoder.{k}.resnet.{i}.condition_proj",
        },
    )
    return m.finish(allow_unmapped), report


def _parakeet_waveflow_config(
    state: dict[str, Tensor], theirs: dict[str, Any], perms: dict[str, Tensor], where: str
) -> WaveFlowConfig:
    """Our config from the checkpoint's shapes and permutation buffers, checked against their config."""
    model_cfg, data = theirs["model"], theirs["data"]
    n_flows = _count(state, r"decoder\.(\d+)\.")
    n_layers = _count(state, r"decoder\.0\.resnet\.(\d+)\.")
    channels = _shape(state, "decoder.0.input_proj", where)[0]
    kh, kw = _shape(state, "decoder.0.resnet.0.conv", where)[2:]
    n_mels = _shape(state, "decoder.0.resnet.0.condition_proj", where)[1]
    heights = {int(v.numel()) for v in perms.values()}
    n_group = int(model_cfg.get("n_group", heights.pop() if len(heights) == 1 else 16))
    derived = {"n_flows": n_flows, "n_layers": n_layers, "channels": channels, "kernel_size": [kh, kw]}
    bad = [
        f"{k}: config {model_cfg[k]} vs checkpoint {v}"
        for k, v in derived.items()
        if k in model_cfg and (list(model_cfg[k]) if isinstance(v, list) else model_cfg[k]) != v
    ]
    if data.get("n_mels", n_mels) != n_mels:
        bad.append(f"n_mels: config {data['n_mels']} vs checkpoint {n_mels}")
    if bad:
        raise CheckpointImportError(f"{where}: the config does not match the checkpoint ({'; '.join(bad)})")
    if n_group not in PARAKEET_HEIGHT_DILATIONS:
        raise CheckpointImportError(f"{where}: Parakeet has no height dilations for n_group {n_group}")
    names = ("sample_rate", "n_fft", "hop_length", "win_length", "fmin", "fmax")  # the same as ours
    mel_kw = {name: data[name] for name in names if name in data}
    return _config(
        where,
        n_group=n_group,
        n_flows=n_flows,
        n_layers=n_layers,
        residual_channels=channels,
        kernel_size=(kh, kw),
        height_dilations=PARAKEET_HEIGHT_DILATIONS[n_group][:n_layers],
        permutation="bipartition",
        # Parakeet's preprocess pads (n_fft - hop) // 2 on both sides, stft(center=False), |X|,
        # slaney mels, ln(max(x, 1e-5)): the hifigan framing without its 1e-9 magnitude epsilon
        mel=mel_preset("hifigan", mag_eps=0.0, n_mels=n_mels, **mel_kw),
        upsample_scales=[int(s) for s in model_cfg.get("upsample_factors", [16, 16])],
    )

"""Import NVIDIA WaveGlow checkpoints (github.com/NVIDIA/waveglow, Prenger et al. 2019) exactly.

NVIDIA's published checkpoints (``waveglow_256channels_universal_v5.pt`` ...) are ``{"model": <pickled
glow.WaveGlow object>, ...}``; they are read with :mod:`~waveflow_py.pretrained.imports.safe_pickle`,
which maps ``glow.*`` and the ``torch.nn`` module classes to inert records and refuses anything else.
State-dict checkpoints (``{"model": state_dict}``, ``{"state_dict": ...}`` with an optional ``module.``
prefix, NVIDIA DeepLearningExamples) are read the same way.

Mapping (their name -> ours, ``k`` = flow, ``i`` = layer), all shapes checked:

* ``upsample`` ``ConvTranspose1d(n_mels, n_mels, 1024, stride=256)`` -> ``upsampler.conv``
  (``WaveGlowConfig.upsampler = "nvidia"``);
* ``convinv.k.conv.weight`` ``(c, c, 1)`` -> our LU-parametrised ``InvConv1x1``: ``W = P L U`` in float64,
  ``perm = P``, ``lower = L``, ``upper = strict triu(U)``, ``sign_s/log_s`` from ``diag(U)``;
* ``WN.k.start / in_layers.i / cond_layer / res_skip_layers.i`` (weight norm ``g, v``) ->
  ``flows.k.transforms.1.conditioner.start_conv / in_layers.i / cond / res_skip.i`` (same layout: one
  shared cond conv for all layers, residual channels first, the last layer skip-only); ``WN.k.end`` ->
  ``end_conv``. The old layout (separate ``cond_layers`` / ``res_layers`` / ``skip_layers``) is folded
  and concatenated exactly (``v = W``, ``g = ||W||``).

The early outputs, the channel halves (the first half conditions the second) and ``exp`` scales are
the same in both. Synthesis trims the upsampled mel to ``F * hop`` samples, as NVIDIA's ``infer`` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from waveflow_py.config import WaveGlowConfig, mel_preset
from waveflow_py.pretrained.imports.common import (
    ImportReport,
    StateMapper,
    as_tensor_dict,
    nvidia_mel_settings,
    read_json_config,
    strip_prefix,
)
from waveflow_py.pretrained.imports.errors import CheckpointImportError
from waveflow_py.pretrained.imports.safe_pickle import ObjectRecord, load_torch_file, module_state_dict

__all__ = ["NVIDIA_RECORDS", "read_nvidia_state", "import_nvidia_waveglow"]

NVIDIA_RECORDS = (
    *(
        f"{m}.{c}"
        for m in ("glow", "glow_old")
        for c in ("WaveGlow", "WN", "Invertible1x1Conv", "WaveGlowLoss")
    ),
    "torch.nn.modules.conv.Conv1d",
    "torch.nn.modules.conv.ConvTranspose1d",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.Sequential",
    "torch.nn.utils.weight_norm.WeightNorm",
)


def read_nvidia_state(path: str | Path) -> tuple[dict[str, Tensor], int | None]:
    """The WaveGlow tensors of an NVIDIA checkpoint (whole-model pickle or state dict) and its iteration."""
    obj = load_torch_file(path, NVIDIA_RECORDS)
    steps = None
    if isinstance(obj, dict):
        steps = obj.get("iteration") if isinstance(obj.get("iteration"), int) else None
        for key in ("model", "state_dict"):
            if key in obj:
                obj = obj[key]
                break
        else:
            if not any(isinstance(v, Tensor) for v in obj.values()):
                raise CheckpointImportError(
                    f"{path}: a dict without 'model' or 'state_dict' (keys {sorted(map(str, obj))[:8]}): "
                    "not a WaveGlow checkpoint"
                )
    if isinstance(obj, ObjectRecord):
        if not obj.class_path.endswith(".WaveGlow"):
            raise CheckpointImportError(f"{path}: the pickled model is a {obj.class_path}, not glow.WaveGlow")
        state = module_state_dict(obj)
    else:
        state = as_tensor_dict(obj, str(path))
    state = strip_prefix(state)
    if not any(k.startswith("WN.") for k in state):
        raise CheckpointImportError(
            f"{path}: no WaveGlow tensors (WN.*) in it: not an NVIDIA WaveGlow checkpoint "
            f"(first keys {sorted(state)[:4]})"
        )
    return state, steps


def _count(state: dict[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in state if (m := rx.match(k))}
    return max(found) + 1 if found else 0


def _weight_shape(state: dict[str, Tensor], prefix: str) -> tuple[int, ...]:
    for suffix in (".weight_v", ".weight"):
        if prefix + suffix in state:
            return tuple(state[prefix + suffix].shape)
    raise CheckpointImportError(f"missing tensor {prefix}.weight_v (or {prefix}.weight)")


def _derive_config(state: dict[str, Tensor], theirs: dict[str, Any] | None, where: str) -> WaveGlowConfig:
    n_flows = _count(state, r"WN\.(\d+)\.")
    channels = [
        int(state[f"convinv.{k}.conv.weight"].shape[0])
        for k in range(n_flows)
        if f"convinv.{k}.conv.weight" in state
    ]
    if len(channels) != n_flows or n_flows == 0:
        raise CheckpointImportError(
            f"{where}: expected convinv.k.conv.weight for each of the {n_flows} flows"
        )
    drops = [k for k in range(1, n_flows) if channels[k] < channels[k - 1]]
    every = drops[0] if drops else n_flows
    size = channels[drops[0] - 1] - channels[drops[0]] if drops else 0
    layers_key = "in_layers" if any(".in_layers." in k for k in state) else None
    n_layers = _count(state, r"WN\.0\.in_layers\.(\d+)\.") if layers_key else 0
    start = _weight_shape(state, "WN.0.start")
    kernel = _weight_shape(state, "WN.0.in_layers.0")[2]
    up = state.get("upsample.weight")
    if up is None:
        raise CheckpointImportError(f"{where}: missing tensor upsample.weight")
    n_mels, up_kernel = int(up.shape[0]), int(up.shape[2])
    derived = {
        "n_mel_channels": n_mels,
        "n_flows": n_flows,
        "n_group": channels[0],
        "n_early_every": every,
        "n_early_size": size,
        "n_layers": n_layers,
        "n_channels": start[0],
        "kernel_size": kernel,
    }
    mel_kw: dict[str, Any] = {"n_mels": n_mels, "hop_length": up_kernel // 4}
    if theirs is not None:
        wg = theirs.get("waveglow_config", theirs)
        given = {**{k: v for k, v in wg.items() if k != "WN_config"}, **wg.get("WN_config", {})}
        if not drops:  # no early outputs: any n_early_every >= n_flows describes the same model
            given.pop("n_early_every", None), derived.pop("n_early_every")
        bad = [
            f"{k}: config {given[k]} vs checkpoint {v}"
            for k, v in derived.items()
            if k in given and given[k] != v
        ]
        if bad:
            raise CheckpointImportError(
                f"{where}: the config does not match the checkpoint ({'; '.join(bad)})"
            )
        mel_kw.update(nvidia_mel_settings(theirs))
    if up_kernel != 4 * mel_kw["hop_length"]:
        raise CheckpointImportError(
            f"{where}: the upsampler kernel {up_kernel} is not 4 x hop_length {mel_kw['hop_length']}"
        )
    try:
        return WaveGlowConfig(
            n_flows=n_flows,
            n_group=channels[0],
            n_early_every=every,
            n_early_size=size,
            n_layers=n_layers,
            residual_channels=start[0],
            kernel_size=kernel,
            mel=mel_preset("tacotron2", **mel_kw),
            upsampler="nvidia",
        )
    except ValueError as e:
        raise CheckpointImportError(f"{where}: {e}") from e


def _lu_into(m: StateMapper, w: Tensor | None, ours: str) -> None:
    if w is None:
        return
    w = w.squeeze(-1).double()
    p, lower, upper = torch.linalg.lu(w)
    diag = torch.diagonal(upper)
    if bool((diag == 0).any()):
        raise CheckpointImportError(f"{ours}: the 1x1 convolution weight is singular")
    m.put(f"{ours}.perm", p)
    m.put(f"{ours}.lower", torch.tril(lower, -1))
    m.put(f"{ours}.upper", torch.triu(upper, 1))
    m.put(f"{ours}.sign_s", torch.sign(diag))
    m.put(f"{ours}.log_s", diag.abs().log())


def _folded(m: StateMapper, peer: str) -> tuple[Tensor, Tensor] | None:
    """The effective weight and bias of one weight-normed (or plain) conv of the old layout."""
    if m.has(f"{peer}.weight_g"):
        g, v = m.take(f"{peer}.weight_g"), m.take(f"{peer}.weight_v")
        assert g is not None and v is not None
        w = g * v / v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
    else:
        w = m.take(f"{peer}.weight")
    b = m.take(f"{peer}.bias")
    return None if w is None or b is None else (w, b)


def _concat_into(m: StateMapper, parts: list[tuple[Tensor, Tensor] | None], ours: str) -> None:
    if any(p is None for p in parts):
        return
    w = torch.cat([p[0] for p in parts if p is not None])
    m.put(f"{ours}.parametrizations.weight.original0", w.flatten(1).norm(dim=1).reshape(-1, 1, 1))
    m.put(f"{ours}.parametrizations.weight.original1", w)
    m.put(f"{ours}.bias", torch.cat([p[1] for p in parts if p is not None]))


def import_nvidia_waveglow(
    checkpoint: str | Path, config: str | Path | None = None, allow_unmapped: bool = False
) -> tuple[Any, ImportReport]:
    """NVIDIA WaveGlow checkpoint (+ optional their ``config.json``) -> (our WaveGlow, report)."""
    from waveflow_py.models.waveglow import WaveGlow

    state, steps = read_nvidia_state(checkpoint)
    cfg = _derive_config(state, read_json_config(config, "NVIDIA WaveGlow"), str(checkpoint))
    model = WaveGlow(cfg)
    report = ImportReport(source=str(checkpoint), peer="nvidia-waveglow", steps=steps)
    m = StateMapper(state, model, report)
    m.plain("upsample", "upsampler.conv")
    for k in range(cfg.n_flows):
        _lu_into(m, m.take(f"convinv.{k}.conv.weight"), f"flows.{k}.transforms.0")
        wn, ours = f"WN.{k}", f"flows.{k}.transforms.1.conditioner"
        m.weight_norm(f"{wn}.start", f"{ours}.start_conv")
        m.plain(f"{wn}.end", f"{ours}.end_conv")
        if m.has(f"{wn}.cond_layers.0.bias"):  # old layout: one cond conv per layer
            parts = [_folded(m, f"{wn}.cond_layers.{i}") for i in range(cfg.n_layers)]
            _concat_into(m, parts, f"{ours}.cond")
        else:
            m.weight_norm(f"{wn}.cond_layer", f"{ours}.cond")
        for i in range(cfg.n_layers):
            m.weight_norm(f"{wn}.in_layers.{i}", f"{ours}.in_layers.{i}")
            if m.has(f"{wn}.skip_layers.{i}.bias"):  # old layout: separate residual and skip convs
                res = [_folded(m, f"{wn}.res_layers.{i}")] if i < cfg.n_layers - 1 else []
                _concat_into(m, [*res, _folded(m, f"{wn}.skip_layers.{i}")], f"{ours}.res_skip.{i}")
            else:
                m.weight_norm(f"{wn}.res_skip_layers.{i}", f"{ours}.res_skip.{i}")
    return m.finish(allow_unmapped), report

"""Our imports reproduce the peers' own numbers: NVIDIA WaveGlow, L0SG WaveFlow, Parakeet WaveFlow.

The fixtures in tests/data/peer_import were made once by scripts/verify_peer_import.py with the peers'
own code (their checkouts; none of it is here): random weights under the peer's own names (float16
values, stored exactly), a fixed mel and noise, and what the peer's code made of them: audio from its
inverse, ``z`` from its forward pass on a prefix of that audio, and its log-likelihood (its training
loss). Here each case is written back in the peer's checkpoint format, imported with
``import_checkpoint`` and run through our model; a mapping that is wrong but shape-compatible (a swapped
conv, a transposed permutation, an off-by-one conditioning row, a different prior) moves these numbers
by far more than the tolerances. ``WAVEFLOW_PEER_FIXTURES`` points the test at another fixture folder
(the script's ``--check`` uses it for paper-size models).

Tolerances: the peers ran in float32 on CPU; our model computes the same maps with other kernels and
summation orders (and the NVIDIA 1x1 convolutions through an LU factorisation in float64), so results
agree to float32 rounding, amplified a little by the autoregressive inverses: on the tiny fixtures at
most 1.5e-6 on audio of peak 3-5, and 1.3e-7 nats per sample on the log-likelihood (docs/import.md).
AUDIO_TOL = 1e-4 leaves a margin of more than 50x for other BLAS builds and machines, and is 60x below
the smallest error of a broken mapping (broken once each: NVIDIA's 1x1 convolution transposed: 4.7;
the old layout's skip and residual convs swapped: 0.29; L0SG's two upsampler stages swapped: 5.9e-3;
L0SG's permutations swapped: 6.7e-2; Parakeet's height dilations reversed: 0.48). NLL_TOL = 1e-5 nats
per sample (those broken mappings moved it by 4.9e-5 to 1.1e-2).
"""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from waveflow_py.pretrained.imports import import_checkpoint

FIXTURES = Path(os.environ.get("WAVEFLOW_PEER_FIXTURES", Path(__file__).parent / "data" / "peer_import"))
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())["cases"]
AUDIO_TOL = 1e-4
NLL_TOL = 1e-5


def _split(case: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(weights under the peer's names in float32 / int64, the peer's inputs and outputs, fused extras)"""
    raw = load_file(str(FIXTURES / case["file"]))
    part = lambda p: {k[len(p) :]: v for k, v in raw.items() if k.startswith(p)}  # noqa: E731
    weights = {k: v.float() if v.is_floating_point() else v for k, v in part("weight/").items()}
    io = {k: v.float() if v.dtype == torch.float16 else v for k, v in part("io/").items()}  # exact inputs
    return weights, io, part("fused/")


def _checkpoint(case: dict[str, Any], weights: dict[str, torch.Tensor], tmp: Path) -> Path:
    """The weights in the peer's own checkpoint format."""
    kind = case["checkpoint"]
    if kind == "torch-state-dict":  # {"model": state_dict}: NVIDIA DeepLearningExamples' form
        torch.save({"model": weights, "iteration": 1}, tmp / "ckpt.pt")
    elif kind == "torch-model-state":  # L0SG train.py's save_checkpoint
        torch.save({"model": weights, "iteration": 1, "learning_rate": 2e-4}, tmp / "ckpt.pt")
    elif kind == "paddle-pdparams":  # paddle.save(state_dict): pickle of arrays + paddle's name table
        arrays: dict[str, Any] = {k: v.numpy() for k, v in weights.items()}
        arrays["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(weights)}
        (tmp / "ckpt.pt").write_bytes(pickle.dumps(arrays, protocol=4))
    else:
        raise AssertionError(f"unknown checkpoint kind {kind}")
    return tmp / "ckpt.pt"


def _import(case: dict[str, Any], weights: dict[str, torch.Tensor], tmp: Path) -> torch.nn.Module:
    config = None
    if case.get("config") is not None:
        config = tmp / "config.json"
        config.write_text(json.dumps(case["config"]))
    model, report = import_checkpoint(case["peer"], _checkpoint(case, weights, tmp), config)
    assert not report.unmapped, report.unmapped
    return model.eval()


def _flat(z: torch.Tensor, layout: str) -> torch.Tensor:
    """A peer's latent in its own layout -> ours ``(B, T)`` (time-major over the squeezed groups)."""
    if layout == "nvidia":  # (B, n_group, T / n_group), early outputs first
        return z.transpose(1, 2).reshape(z.shape[0], -1)
    if layout == "l0sg":  # (B, 1, h, T / h)
        return z[:, 0].transpose(1, 2).reshape(z.shape[0], -1)
    return z  # parakeet: already (B, T)


def _noise(io: dict[str, torch.Tensor], layout: str) -> torch.Tensor:
    if layout == "nvidia":  # infer draws the last flow's noise first, then each early output's
        drawn = [io[f"noise.{i}"] for i in range(sum(k.startswith("noise.") for k in io))]
        return _flat(torch.cat(drawn[::-1], dim=1), layout)
    return _flat(io["z"], layout)


def _nll(case: dict[str, Any], io: dict[str, torch.Tensor]) -> float:
    """The peer's loss as a negative log-likelihood in nats per sample."""
    nll = float(io["nll"])
    return nll + 0.5 * math.log(2 * math.pi) if case["layout"] == "nvidia" else nll  # see the manifest


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_import_reproduces_the_peers_own_numbers(case: dict[str, Any], tmp_path: Path) -> None:
    weights, io, _ = _split(case)
    model = _import(case, weights, tmp_path)
    layout = case["layout"]
    mel, z = io["mel"], _noise(io, layout)
    with torch.no_grad():
        cached, _ = model.inverse(z, mel, cache=model.fast_cache())
        plain, _ = model.inverse(z, mel)
        x = io["audio"][:, : case["forward_samples"]]  # the peer's forward ran on this prefix
        z_forward, _ = model(x, mel)
        nll = -float(model.log_prob(x, mel))
    theirs = io["audio"]
    assert cached.shape == theirs.shape
    err = {
        "cached": (cached - theirs).abs().max().item(),
        "plain": (plain - theirs).abs().max().item(),
        "z": (z_forward - _flat(io["z_forward"], layout)).abs().max().item(),
    }
    nll_err = abs(nll - _nll(case, io))
    print(  # shown by `pytest -rA` (scripts/verify_peer_import.py --check)
        f"{case['name']}: max |ours - theirs| audio (cached) {err['cached']:.1e}, audio (plain) "
        f"{err['plain']:.1e}, forward z {err['z']:.1e}; NLL {nll:.4f} nats/sample, off by {nll_err:.1e} "
        f"(audio peak {theirs.abs().max().item():.2f}, {theirs.shape[1]} samples)"
    )
    assert max(err.values()) <= AUDIO_TOL, f"ours vs the peer's audio and forward z: {err}"
    assert nll_err <= NLL_TOL, f"NLL {nll} vs the peer's {_nll(case, io)}"


@pytest.mark.parametrize("case", [c for c in CASES if c.get("fused")], ids=lambda c: c["name"])
def test_l0sg_fused_conditioning_reproduces_their_reverse_fast(case: dict[str, Any], tmp_path: Path) -> None:
    """After L0SG's ``fuse_conditioning_layers`` the per-layer mel convs are one fused conv."""
    weights, io, fused = _split(case)
    weights = {k: v for k, v in weights.items() if ".filter_gate_conv_c." not in k} | fused
    model = _import(case, weights, tmp_path)
    with torch.no_grad():
        cached, _ = model.inverse(_noise(io, "l0sg"), io["mel"], cache=model.fast_cache())
    assert (cached - io["audio_fast"]).abs().max() <= AUDIO_TOL


def test_the_fixtures_are_small_data_without_code() -> None:
    """Data only (safetensors + JSON, no pickle), a few hundred KiB together."""
    files = sorted(FIXTURES.iterdir())
    assert {f.suffix for f in files} <= {".safetensors", ".json"}, files
    assert sum(f.stat().st_size for f in files) < 600 * 1024 or "WAVEFLOW_PEER_FIXTURES" in os.environ
    assert {c["peer"] for c in CASES} >= {"nvidia-waveglow", "l0sg-waveflow", "parakeet-waveflow"}
    assert all(np.isfinite(float(load_file(str(FIXTURES / c["file"]))["io/nll"])) for c in CASES)

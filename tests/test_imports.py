"""Peer checkpoint imports: synthetic checkpoints in each peer's layout (names and shapes only), the
restricted unpickler refusing code, and one-line errors for every bad input.

Exactness against the peers' own code (their audio, forward z and log-likelihood) is checked by
tests/test_peer_import_numbers.py on fixtures made with their code by scripts/verify_peer_import.py;
here: import -> our model -> forward/inverse consistent, weights where they belong, unmapped and
missing tensors reported by name, every checkpoint format and bad input.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from waveflow_py.cli import main
from waveflow_py.pretrained import load_release
from waveflow_py.pretrained.imports import (
    CheckpointImportError,
    UnsafeCheckpointError,
    import_checkpoint,
    import_release,
)
from waveflow_py.pretrained.imports.safe_pickle import load_pickle_file, load_torch_file


def _wn(conv: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the old hook-style weight norm NVIDIA's checkpoints contain
        conv = torch.nn.utils.weight_norm(conv, name="weight")
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return conv


def _roundtrip(model: nn.Module, frames: int = 3) -> None:
    """forward -> inverse recovers the audio; the cached inverse equals the plain one."""
    mel = torch.randn(1, model.config.mel.n_mels, frames)
    audio = torch.randn(1, frames * model.hop_length) * 0.1
    with torch.no_grad():
        z, ld = model(audio, mel)
        back, ld_inv = model.inverse(z, mel)
        fast, _ = model.inverse(z, mel, cache=model.fast_cache())
    assert torch.allclose(back, audio, atol=1e-4) and torch.allclose(fast, back, atol=1e-4)
    assert torch.allclose(ld, -ld_inv, atol=1e-3)


# ----------------------------------------------------------------------------- NVIDIA WaveGlow
@pytest.fixture
def glow_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Empty stand-ins registered as ``glow.WaveGlow`` etc., so torch.save pickles them by those names."""
    mod = types.ModuleType("glow")
    for name in ("WaveGlow", "WN", "Invertible1x1Conv"):
        cls = type(name, (nn.Module,), {"__module__": "glow", "__qualname__": name})
        setattr(mod, name, cls)
    monkeypatch.setitem(sys.modules, "glow", mod)
    return mod


def _nvidia_model(
    glow: types.ModuleType,
    n_flows: int = 5,
    g: int = 8,
    every: int = 2,
    layers: int = 2,
    ch: int = 8,
    n_mels: int = 8,
    hop: int = 16,
) -> nn.Module:
    """NVIDIA WaveGlow's module layout (glow.py), built from plain torch layers."""
    wg = glow.WaveGlow()
    wg.upsample = nn.ConvTranspose1d(n_mels, n_mels, 4 * hop, stride=hop)
    wg.WN, wg.convinv = nn.ModuleList(), nn.ModuleList()
    c = g
    for k in range(n_flows):
        if k and k % every == 0:
            c -= 2
        inv = glow.Invertible1x1Conv()
        inv.conv = nn.Conv1d(c, c, 1, bias=False)
        with torch.no_grad():
            inv.conv.weight.copy_(torch.linalg.qr(torch.randn(c, c))[0][..., None])
        wn = glow.WN()
        wn.in_layers, wn.res_skip_layers = nn.ModuleList(), nn.ModuleList()
        wn.start = _wn(nn.Conv1d(c // 2, ch, 1))
        wn.end = nn.Conv1d(ch, 2 * (c // 2), 1)
        nn.init.normal_(wn.end.weight, std=0.05)
        wn.cond_layer = _wn(nn.Conv1d(n_mels * g, 2 * ch * layers, 1))
        for i in range(layers):
            wn.in_layers.append(_wn(nn.Conv1d(ch, 2 * ch, 3, dilation=2**i, padding=2**i)))
            wn.res_skip_layers.append(_wn(nn.Conv1d(ch, 2 * ch if i < layers - 1 else ch, 1)))
        wg.WN.append(wn)
        wg.convinv.append(inv)
    return wg


def test_nvidia_whole_model_pickle_imports_exactly(glow_module: types.ModuleType, tmp_path: Path) -> None:
    peer = _nvidia_model(glow_module)
    path = tmp_path / "waveglow.pt"
    torch.save({"model": peer, "iteration": 12, "learning_rate": 1e-4}, path)
    model, report = import_checkpoint("nvidia-waveglow", path)
    cfg = model.config
    assert (cfg.n_flows, cfg.n_group, cfg.n_early_every, cfg.n_early_size, cfg.upsampler) == (
        5,
        8,
        2,
        2,
        "nvidia",
    )
    assert report.steps == 12 and not report.unmapped and len(report.mapped) == len(peer.state_dict())
    with torch.no_grad():
        for k, inv in enumerate(peer.convinv):  # the LU factors reproduce the 1x1 weight
            w = model.flows[k].transforms[0].weight()
            assert torch.allclose(w, inv.conv.weight.squeeze(-1), atol=1e-6)
        ours = model.flows[1].transforms[1].conditioner.in_layers[1].weight
        conv = peer.WN[1].in_layers[1]
        want = conv.weight_g * conv.weight_v / conv.weight_v.flatten(1).norm(dim=1)[:, None, None]
        assert torch.allclose(ours, want, atol=1e-6)
        assert torch.equal(model.upsampler.conv.weight, peer.upsample.weight)
    _roundtrip(model)


@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")
def test_nvidia_legacy_format_and_state_dict(glow_module: types.ModuleType, tmp_path: Path) -> None:
    peer = _nvidia_model(glow_module, n_flows=3)
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": peer}, legacy, _use_new_zipfile_serialization=False)
    states = tmp_path / "state.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in peer.state_dict().items()}}, states)
    a, _ = import_checkpoint("nvidia-waveglow", legacy)
    b, _ = import_checkpoint("nvidia-waveglow", states)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_nvidia_config_mismatch_is_named(glow_module: types.ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "waveglow.pt"
    torch.save({"model": _nvidia_model(glow_module, n_flows=3)}, path)
    theirs = tmp_path / "config.json"
    theirs.write_text(
        json.dumps({"waveglow_config": {"n_flows": 12, "n_group": 8, "WN_config": {"n_layers": 2}}})
    )
    with pytest.raises(CheckpointImportError, match="n_flows: config 12 vs checkpoint 3"):
        import_checkpoint("nvidia-waveglow", path, theirs)


# ----------------------------------------------------------------------------- L0SG WaveFlow
def _l0sg_state(n_flow: int = 2, n_layer: int = 2, res: int = 8, cin: int = 8) -> dict[str, torch.Tensor]:
    """Names and shapes of L0SG's WaveFlow state dict (models/waveflow.py, modules.py)."""
    state: dict[str, torch.Tensor] = {}

    def wn(name: str, shape: tuple[int, ...]) -> None:
        state[f"{name}.weight_g"] = torch.rand(shape[0], *([1] * (len(shape) - 1))) + 0.5
        state[f"{name}.weight_v"] = torch.randn(shape)
        state[f"{name}.bias"] = torch.randn(shape[1] if name.startswith("upsample") else shape[0]) * 0.1

    wn("upsample_conv.0", (1, 1, 3, 32))
    wn("upsample_conv.2", (1, 1, 3, 32))
    for k in range(n_flow):
        net = f"flows.{k}.coupling.net"
        wn(f"{net}.front_conv.0.conv", (res, 1, 1, 1))
        for i in range(n_layer):
            wn(f"{net}.res_blocks.{i}.filter_gate_conv.conv", (2 * res, res, 3, 3))
            wn(f"{net}.res_blocks.{i}.filter_gate_conv_c", (2 * res, cin, 1, 1))
            wn(f"{net}.res_blocks.{i}.res_skip_conv", (2 * res, res, 1, 1))
        state[f"flows.{k}.coupling.proj_log_s_t.conv.weight"] = torch.randn(2, res, 1, 1) * 0.05
        state[f"flows.{k}.coupling.proj_log_s_t.conv.bias"] = torch.randn(2) * 0.05
    return state


def _l0sg_config(path: Path, h: int = 8, n_flow: int = 2, n_layer: int = 2, cycle: int = 1) -> Path:
    path.write_text(
        json.dumps(
            {
                "data_config": {"sampling_rate": 22050, "hop_length": 256, "mel_fmax": 8000.0},
                "waveflow_config": {
                    "cin_channels": 8,
                    "res_channels": 8,
                    "n_height": h,
                    "n_layer": n_layer,
                    "n_flow": n_flow,
                    "n_layer_per_cycle": cycle,
                    "coupling_type": "waveflow_bipartize",
                },
            }
        )
    )
    return path


def test_l0sg_round_trip_and_release(tmp_path: Path) -> None:
    ckpt = tmp_path / "waveflow.pt"
    torch.save({"model": _l0sg_state(), "optimizer": {}, "iteration": 3}, ckpt)
    cfg = _l0sg_config(tmp_path / "c.json", cycle=2)
    out, report = import_release("l0sg-waveflow", ckpt, tmp_path / "release", cfg)
    model, info = load_release(out)
    assert info.provenance["imported_from"] == "l0sg-waveflow" and info.provenance["steps"] == 3
    assert model.config.first_row == "identity" and model.config.scale_bound is None
    assert model.config.height_dilations == [1, 2] and not report.unmapped
    _roundtrip(model, frames=2)


def test_l0sg_missing_and_unmapped_tensors_are_named(tmp_path: Path) -> None:
    cfg = _l0sg_config(tmp_path / "c.json")
    state = _l0sg_state()
    del state["flows.1.coupling.net.res_blocks.0.res_skip_conv.weight_v"]
    torch.save({"model": state}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointImportError, match=r"missing tensors \['flows.1.coupling.net.res_blocks.0"):
        import_checkpoint("l0sg-waveflow", tmp_path / "missing.pt", cfg)
    state = {**_l0sg_state(), "flows.0.coupling.extra.weight": torch.zeros(3)}
    torch.save({"model": state}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointImportError, match="flows.0.coupling.extra.weight"):
        import_checkpoint("l0sg-waveflow", tmp_path / "extra.pt", cfg)
    _, report = import_checkpoint("l0sg-waveflow", tmp_path / "extra.pt", cfg, allow_unmapped=True)
    assert report.unmapped == ["flows.0.coupling.extra.weight"]
    with pytest.raises(CheckpointImportError, match="n_flow: config 3 vs checkpoint 2"):
        import_checkpoint("l0sg-waveflow", tmp_path / "extra.pt", _l0sg_config(tmp_path / "3.json", n_flow=3))
    with pytest.raises(CheckpointImportError, match="pass their config JSON with --config"):
        import_checkpoint("l0sg-waveflow", tmp_path / "extra.pt")


# ----------------------------------------------------------------------------- Parakeet WaveFlow
def _parakeet_pdparams(
    path: Path,
    h: int = 8,
    n_flows: int = 2,
    n_layers: int = 2,
    ch: int = 8,
    n_mels: int = 8,
    perm: list[int] | None = None,
) -> Path:
    """A .pdparams as paddle.save writes it: a pickle of {name: (variable name, ndarray)}, gains 1-D."""
    rng = np.random.default_rng(0)
    state: dict[str, object] = {}

    def put(name: str, arr: np.ndarray) -> None:
        state[name] = (f"var_{len(state)}", arr.astype(arr.dtype))

    def wn(name: str, shape: tuple[int, ...], bias: int) -> None:
        put(f"{name}.weight_g", (rng.random(shape[0]) + 0.5).astype("float32"))
        put(f"{name}.weight_v", rng.standard_normal(shape).astype("float32"))
        put(f"{name}.bias", (rng.standard_normal(bias) * 0.1).astype("float32"))

    for s in range(2):
        wn(f"encoder.{s}", (1, 1, 3, 32), 1)
    for k in range(n_flows):
        wn(f"decoder.{k}.input_proj", (ch, 1, 1, 1), ch)
        for i in range(n_layers):
            wn(f"decoder.{k}.resnet.{i}.conv", (2 * ch, ch, 3, 3), 2 * ch)
            wn(f"decoder.{k}.resnet.{i}.condition_proj", (2 * ch, n_mels, 1, 1), 2 * ch)
            wn(f"decoder.{k}.resnet.{i}.out_proj", (2 * ch, ch, 1, 1), 2 * ch)
        put(f"decoder.{k}.output_proj.weight", (rng.standard_normal((2, ch, 1, 1)) * 0.05).astype("float32"))
        put(f"decoder.{k}.output_proj.bias", np.zeros(2, "float32"))
    half = h // 2
    perms = [list(range(h))[::-1]] * (n_flows // 2) + [
        list(range(half))[::-1] + list(range(half, h))[::-1]
    ] * (n_flows - n_flows // 2)
    for i, p in enumerate(perms):
        put(f"decoder.generated_tensor_{i}", np.array(perm if perm and i == 0 else p, dtype="int64"))
    path.write_bytes(pickle.dumps(state, protocol=2))
    return path


def test_parakeet_pdparams_round_trip(tmp_path: Path) -> None:
    model, report = import_checkpoint("parakeet-waveflow", _parakeet_pdparams(tmp_path / "w.pdparams"))
    assert model.config.n_group == 8 and model.config.mel.padding == "hifigan"
    assert len(report.ignored) == 2 and all("generated_tensor" in k for k in report.ignored)
    _roundtrip(model, frames=2)
    bad = _parakeet_pdparams(tmp_path / "bad.pdparams", perm=[0, 1, 2, 3, 4, 5, 7, 6])
    with pytest.raises(CheckpointImportError, match="is not WaveFlow's"):
        import_checkpoint("parakeet-waveflow", bad)


# ----------------------------------------------------------------------------- refusing code
class _Evil:
    """Unpickling this would run ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")
def test_malicious_pickles_are_refused_and_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch_file = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": _Evil(marker)}, torch_file)
    legacy = tmp_path / "evil_legacy.pt"
    torch.save({"payload": _Evil(marker)}, legacy, _use_new_zipfile_serialization=False)
    plain = tmp_path / "evil.pdparams"
    plain.write_bytes(pickle.dumps({"a": _Evil(marker)}, protocol=2))
    for path in (torch_file, legacy):
        with pytest.raises(
            UnsafeCheckpointError, match=r"refusing to load: the pickle references (posix|nt)\.system"
        ):
            load_torch_file(path)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_pickle_file(plain)
    with pytest.raises(CheckpointImportError, match="refusing to load"):
        import_checkpoint("l0sg-waveflow", torch_file, _l0sg_config(tmp_path / "c.json"))
    eval_pickle = tmp_path / "eval.pdparams"  # builtins.eval through a hand-written opcode stream
    eval_pickle.write_bytes(b"\x80\x02cbuiltins\neval\nX\x0f\x00\x00\x00open('x', 'w')\x85R.")
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        load_pickle_file(eval_pickle)
    assert not marker.exists() and not (Path.cwd() / "x").exists()


# ----------------------------------------------------------------------------- the CLI
def test_cli_import_writes_a_release_and_bad_inputs_fail_in_one_line(
    glow_module: types.ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "waveglow.pt"
    torch.save({"model": _nvidia_model(glow_module, n_flows=3)}, good)
    out = tmp_path / "release"
    assert main(["import", "--from", "nvidia-waveglow", str(good), "-o", str(out)]) == 0
    model, _ = load_release(out)
    _roundtrip(model)
    capsys.readouterr()

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Evil(marker)}, evil)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    l0sg = tmp_path / "l0sg.pt"
    torch.save({"model": _l0sg_state()}, l0sg)
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({"waveglow_config": {"n_flows": 7}}))
    cases = [
        (["--from", "nvidia-waveglow", str(evil)], "refusing to load"),
        (["--from", "nvidia-waveglow", str(truncated)], "truncated or corrupt"),
        (
            ["--from", "l0sg-waveflow", str(truncated), "--config", str(_l0sg_config(tmp_path / "c.json"))],
            "truncated or corrupt",
        ),
        (["--from", "parakeet-waveflow", str(truncated)], "not a paddle .pdparams pickle"),
        (["--from", "nvidia-waveglow", str(l0sg)], "not an NVIDIA WaveGlow checkpoint"),
        (
            ["--from", "nvidia-waveglow", str(good), "--config", str(bad_config)],
            "n_flows: config 7 vs checkpoint 3",
        ),
        (["--from", "nvidia-waveglow", str(tmp_path / "nope.pt")], "checkpoint not found"),
        (["--from", "nvidia-waveglow", str(good)], "already holds a release"),
    ]
    before = (out / "model.safetensors").read_bytes()
    for argv, message in cases:
        target = out if "already" in message else tmp_path / "new"
        assert main(["import", *argv, "-o", str(target)]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "new").exists()
    assert (out / "model.safetensors").read_bytes() == before and not marker.exists()

"""The source-filter stages inside the vocoders (models/base.py delegating to sourcefilter.SourceFilter):
WaveFlow and WaveGlow with a gain or LPC envelope, pre-emphasis and the pitch predictor: exact inverse,
log-det == autograd Jacobian, cached == plain inverse, chunked envelope synthesis with state == one pass,
calibration and its state_dict key, configs old and new."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.flows.contract import perturb_parameters
from tests.models.factories import tiny_mel_config, tiny_waveflow_config
from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import SourceFilterConfig, WaveFlowConfig, WaveGlowConfig, from_dict, to_dict
from waveflow_py.models.waveflow import WaveFlow
from waveflow_py.models.waveglow import WaveGlow
from waveflow_py.sourcefilter import SourceFilterState

# "+ltp": the pitch prior after the envelope (tiny mel: n_fft 64, so every lag is 31 samples); "+harmonic":
# the learnable harmonic source (threshold 0 in these tests, so every frame has harmonics)
VARIANTS = [
    ("gain", 0.0),
    ("lpc", 0.0),
    ("lpc", 0.9),
    ("none", 0.9),
    ("lpc+ltp", 0.9),
    ("gain+ltp", 0.0),
    ("lpc+ltp+harmonic", 0.0),
    ("gain+harmonic", 0.9),
    ("lpc+harmonic+learned", 0.0),  # the learned pitch predictor (random weights) gives F0 and voicing
    ("lpc+harmonic+hybrid", 0.0),  # the analysis, and the predictor where the analysis is unvoiced
]


def tiny(kind: str, envelope: str, preemphasis: float = 0.0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    envelope, *extra = envelope.split("+")
    stages = SourceFilterConfig(
        envelope=envelope,
        lpc_order=8,
        preemphasis=preemphasis,
        pitch="ltp" if "ltp" in extra else "none",
        pitch_strength=2.0,
        pitch_threshold=0.0,
        source="harmonic" if "harmonic" in extra else "none",
        source_threshold=0.0,
        source_pitch=next((p for p in ("learned", "hybrid") if p in extra), "analysis"),
        source_pitch_hidden=8,
    )
    if kind == "waveflow":
        cfg = dataclasses.replace(tiny_waveflow_config(8), source_filter=stages)
        model: torch.nn.Module = WaveFlow(cfg)
    else:
        cfg = WaveGlowConfig(
            n_flows=4,
            n_group=4,
            n_early_every=2,
            n_early_size=1,
            n_layers=2,
            residual_channels=8,
            mel=tiny_mel_config(),
            source_filter=stages,
        )
        model = WaveGlow(cfg)
    perturb_parameters(model, std=0.2, seed=seed + 1)
    return model.eval()


def speech_like(batch: int = 2, frames: int = 6, hop: int = 16, seed: int = 0) -> tuple:
    """Coloured noise with a changing level, and its own log-mel (so the envelope fits the audio)."""
    gen = torch.Generator().manual_seed(seed)
    t = frames * hop
    white = torch.randn(batch, t, generator=gen)
    coloured = white + 0.8 * torch.roll(white, 1, dims=1) + 0.5 * torch.roll(white, 2, dims=1)
    x = 0.1 * coloured * torch.linspace(0.3, 1.5, t)
    mel = MelSpectrogram(tiny_mel_config())(x)
    return x, mel


@pytest.mark.parametrize("kind", ["waveflow", "waveglow"])
@pytest.mark.parametrize("envelope,preemphasis", VARIANTS)
def test_inverse_of_forward_is_exact(kind: str, envelope: str, preemphasis: float) -> None:
    model = tiny(kind, envelope, preemphasis).double()
    x, mel = speech_like()
    x, mel = x.double()[:, :93], mel.double()  # a length that is not a multiple of the group or hop
    z, ld = model(x, mel)
    x2, ld2 = model.inverse(z, mel)
    torch.testing.assert_close(x2[:, :93], x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(x2[:, 93:], torch.zeros_like(x2[:, 93:]), atol=1e-9, rtol=0)
    torch.testing.assert_close(ld + ld2, torch.zeros_like(ld), atol=1e-8, rtol=0)
    if envelope != "none":
        e, ld_env = model.envelope_analysis(x, mel)
        assert not torch.allclose(e, x) and bool(ld_env.abs().min() > 0)
    if "+ltp" in envelope:  # the pitch stage is active (non-zero gains) and is undone exactly
        _, gain = model.source_filter.periodicity(mel, 6)
        assert bool((gain > 0.05).any())
    if "+harmonic" in envelope:  # the harmonics and the noise gain are active and undone exactly
        ctx = model.source_filter.harmonic.context(mel, 93)
        assert bool((ctx[..., 3:] > 0.05).any()) and bool((ctx[..., 2].abs() > 0.01).any())


@pytest.mark.parametrize("kind", ["waveflow", "waveglow"])
@pytest.mark.parametrize("envelope,preemphasis", [("lpc", 0.9), ("gain", 0.0), ("lpc+ltp", 0.0)])
def test_logdet_matches_autograd_jacobian_float64(kind: str, envelope: str, preemphasis: float) -> None:
    model = tiny(kind, envelope, preemphasis).double()
    x, mel = speech_like(batch=1, frames=3)
    x, mel = x.double(), mel.double()
    with torch.no_grad():
        model.source_filter.envelope_log_scale.fill_(0.7)  # the calibration constant enters the log-det too
    _, ld = model(x, mel)
    jac = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0), mel)[0][0], x[0])
    torch.testing.assert_close(ld[0], torch.linalg.slogdet(jac)[1], atol=1e-7, rtol=1e-9)
    # and the inverse's log-det is the Jacobian of the inverse (torch synthesis under autograd)
    z, _ = model(x, mel)
    _, ld_inv = model.inverse(z, mel)
    jac_inv = torch.autograd.functional.jacobian(lambda v: model.inverse(v.unsqueeze(0), mel)[0][0], z[0])
    torch.testing.assert_close(ld_inv[0], torch.linalg.slogdet(jac_inv)[1], atol=1e-7, rtol=1e-9)


@pytest.mark.parametrize("kind", ["waveflow", "waveglow"])
@pytest.mark.parametrize("envelope,preemphasis", VARIANTS)
def test_cached_inverse_equals_plain_inverse(kind: str, envelope: str, preemphasis: float) -> None:
    model = tiny(kind, envelope, preemphasis)
    x, mel = speech_like()
    z = torch.randn_like(x)
    plain, ld = model.inverse(z, mel)
    fast, ld_fast = model.inverse(z, mel, cache=model.fast_cache())
    scale = float(plain.detach().abs().max())
    torch.testing.assert_close(fast, plain, atol=1e-5 * scale, rtol=1e-4)
    torch.testing.assert_close(ld_fast, ld, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("kind", ["waveflow", "waveglow"])
@pytest.mark.parametrize("envelope,preemphasis", VARIANTS)
def test_envelope_synthesis_in_two_chunks_equals_one_pass(
    kind: str, envelope: str, preemphasis: float
) -> None:
    model = tiny(kind, envelope, preemphasis).double()
    x, mel = speech_like(frames=10)
    mel = mel.double()
    hop = model.hop_length
    e = torch.randn(2, 10 * hop, dtype=torch.float64)
    whole, ld, state = model.envelope_synthesis(e, mel)
    assert isinstance(state, SourceFilterState)
    cut = 4  # frames in the first chunk; it is given one mel frame beyond (centred frames)
    predictor = "learned" in envelope or "hybrid" in envelope  # it reads +-16 frames
    if predictor:  # lookahead, then the left context
        first, ld1, s1 = model.envelope_synthesis(e[:, : cut * hop], mel)
        second, ld2, s2 = model.envelope_synthesis(e[:, cut * hop :], mel, state=s1, mel_offset=cut)
        blind, _, _ = model.envelope_synthesis(e[:, cut * hop :], mel[:, :, cut:], state=s1)
        assert not torch.allclose(blind, second, atol=1e-4)  # without its context the pitch differs
    else:
        first, ld1, s1 = model.envelope_synthesis(e[:, : cut * hop], mel[:, :, : cut + 1])
        second, ld2, s2 = model.envelope_synthesis(e[:, cut * hop :], mel[:, :, cut:], state=s1)
    # float64: equal up to the rounding of the per-frame mel inversion, whose BLAS kernels differ with the
    # number of frames (measured 3e-10 absolute, 2e-9 relative on an AVX2 CPU); the harmonic source's
    # fractional lag (a parabola through three autocorrelation values) and its running phase amplify that
    # rounding (measured 2e-7 absolute on this test's signal)
    tol = 1e-6 if "harmonic" in envelope else 1e-8
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=tol, rtol=tol)
    torch.testing.assert_close(ld1 + ld2, ld)
    pairs = [(s2.lpc, state.lpc), (s2.preemphasis, state.preemphasis), (s2.ltp, state.ltp)]
    for got, want in [*pairs, (s2.harmonic, state.harmonic)]:
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="SourceFilterState"):
        model.envelope_synthesis(e, mel, state=torch.zeros(2, 8))


@pytest.mark.parametrize("envelope", ["gain", "lpc"])
def test_calibration_gives_unit_variance_and_is_saved(envelope: str) -> None:
    model = tiny("waveflow", envelope)
    x, mel = speech_like(frames=12)
    log_scale = model.calibrate_envelope(3.0 * x, mel)  # audio louder than its mel says
    assert log_scale == pytest.approx(float(model.source_filter.envelope_log_scale))
    e, _ = model.envelope_analysis(3.0 * x, mel)
    assert float(e.square().mean()) == pytest.approx(1.0, rel=1e-4)
    state = model.state_dict()
    assert "envelope_log_scale" in state  # at the model's root, where releases store it
    fresh = tiny("waveflow", envelope, seed=5)
    fresh.load_state_dict(state)
    assert float(fresh.source_filter.envelope_log_scale) == pytest.approx(log_scale)
    assert tiny("waveflow", "none").calibrate_envelope(x, mel) == 0.0


def test_configs_new_fields_old_configs_and_errors() -> None:
    default = WaveFlowConfig().source_filter
    assert (default.envelope, default.lpc_order, default.preemphasis) == ("none", 16, 0.0)
    assert WaveGlowConfig().source_filter.envelope == "none"
    # an old release config (no envelope fields) loads with the defaults, and its weights still load
    old = to_dict(tiny_waveflow_config(8))
    old.pop("source_filter")
    cfg = from_dict(WaveFlowConfig, old)
    assert cfg.source_filter.envelope == "none"
    assert not any("envelope" in k for k in WaveFlow(cfg).state_dict())
    new = from_dict(
        WaveGlowConfig, {"source_filter": {"envelope": "lpc", "lpc_order": 12, "preemphasis": 0.86}}
    )
    assert (new.source_filter.envelope, new.source_filter.lpc_order) == ("lpc", 12)
    assert new.source_filter.preemphasis == 0.86
    assert to_dict(new)["source_filter"]["envelope"] == "lpc"
    with pytest.raises(ValueError, match="envelope"):
        SourceFilterConfig(envelope="lsp")
    with pytest.raises(ValueError, match="lpc_order"):
        SourceFilterConfig(lpc_order=0)
    with pytest.raises(ValueError, match="lpc_order"):  # n_fft 64: at most 31
        WaveFlowConfig(mel=tiny_mel_config(), source_filter=SourceFilterConfig(envelope="lpc", lpc_order=32))
    WaveFlowConfig(mel=tiny_mel_config(), source_filter=SourceFilterConfig(lpc_order=32))  # unused: accepted
    with pytest.raises(ValueError, match="preemphasis"):
        SourceFilterConfig(preemphasis=1.0)
    with pytest.raises(ValueError, match="pitch_threshold"):
        from_dict(WaveGlowConfig, {"source_filter": {"pitch": "ltp", "pitch_threshold": 1.0}})


def test_fixed_stages_ignore_mixed_precision() -> None:
    """Training under bf16 autocast sees the same envelope and pitch coefficients as float32 synthesis."""
    model = tiny("waveflow", "lpc+ltp").eval()
    x, mel = speech_like(frames=8)
    stages = model.source_filter
    want_env = stages.envelope_context(mel, x.shape[1])
    want_pitch = stages.pitch_context(mel, x.shape[1])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got_env = stages.envelope_context(mel, x.shape[1])
        got_pitch = stages.pitch_context(mel, x.shape[1])
    assert torch.equal(got_env, want_env) and torch.equal(got_pitch, want_pitch)

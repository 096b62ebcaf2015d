"""WaveGlow (Prenger et al. 2019): the flow contract on tiny configs, the cached inverse, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from waveflow_py.config import MelConfig, WaveGlowConfig
from waveflow_py.flows.base import NonFiniteError
from waveflow_py.models.waveglow import WaveGlow, WaveGlowCache, early_channels


def tiny_config(**over: object) -> WaveGlowConfig:
    mel = MelConfig(sample_rate=8000, n_fft=32, win_length=32, hop_length=8, n_mels=5, fmax=4000.0)
    base = dict(
        n_flows=4,
        n_group=4,
        n_early_every=2,
        n_early_size=1,
        n_layers=2,
        residual_channels=8,
        kernel_size=3,
        mel=mel,
    )
    base.update(over)
    return WaveGlowConfig(**base)  # type: ignore[arg-type]


def tiny_model(**over: object) -> WaveGlow:
    """A tiny WaveGlow whose couplings are not the identity (the end convs start at zero)."""
    model = WaveGlow(tiny_config(**over))
    with torch.no_grad():
        for flow in model.flows:
            flow.transforms[1].conditioner.end_conv.weight.normal_(0.0, 0.2)
            flow.transforms[1].conditioner.end_conv.bias.normal_(0.0, 0.1)
    return model.eval()


def test_early_output_schedule() -> None:
    assert early_channels(8, 12, 4, 2) == [8] * 4 + [6] * 4 + [4] * 4  # the paper's configuration
    assert tiny_model().channels == [4, 4, 3, 3]


@pytest.mark.parametrize("length", [64, 61])  # a multiple of n_group, and one that needs padding
def test_inverse_of_forward_is_identity(length: int) -> None:
    model = tiny_model()
    x, mel = torch.randn(3, length), torch.randn(3, 5, 8)
    z, ld = model(x, mel)
    assert z.shape == (3, 64) and ld.shape == (3,)
    x2, ld2 = model.inverse(z, mel)
    torch.testing.assert_close(x2[:, :length], x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x2[:, length:], torch.zeros(3, 64 - length), atol=1e-5, rtol=0)
    torch.testing.assert_close(ld + ld2, torch.zeros(3), atol=1e-4, rtol=0)
    assert not torch.allclose(z, x2)  # the flow is not the identity


def test_bounded_scale_keeps_the_inverse_exact_where_exp_would_overflow() -> None:
    """``scale_bound``: log-scales are ``b tanh(raw / b)``; with couplings that output huge raw scales the
    bounded model stays finite and exactly invertible, the unbounded one (old releases) overflows."""
    x, mel = torch.randn(2, 64), torch.randn(2, 5, 8)
    for bound in (None, 2.0):
        model = tiny_model(scale_bound=bound)
        with torch.no_grad():
            for flow in model.flows:
                flow.transforms[1].conditioner.end_conv.bias.fill_(60.0)  # raw log-scale ~60: exp overflows
        if bound is None:
            with pytest.raises(NonFiniteError):
                model(x, mel)
            continue
        z, ld = model(x, mel)
        assert bool(torch.isfinite(z).all()) and bool(torch.isfinite(ld).all())
        # every coupling scales by at most exp(bound) per sample
        assert float(ld.detach().max()) <= bound * 64 * len(model.flows) + 1e-3
        x2, ld2 = model.inverse(z, mel)
        torch.testing.assert_close(x2, x, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ld + ld2, torch.zeros(2), atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="scale_bound: expected a positive number or null"):
        tiny_config(scale_bound=0.0)


def test_logdet_matches_autograd_jacobian_float64() -> None:
    model = tiny_model().double()
    mel = torch.randn(1, 5, 4, dtype=torch.float64)
    x = torch.randn(1, 32, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda a: model(a.unsqueeze(0), mel)[0][0], x[0])
    _, ld = model(x, mel)
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign != 0
    torch.testing.assert_close(ld[0], logabs, atol=1e-8, rtol=1e-8)


def test_log_prob_is_nats_per_sample() -> None:
    model = tiny_model(sigma=0.7)
    x, mel = torch.randn(2, 64) * 0.3, torch.randn(2, 5, 8)
    z, ld = model(x, mel)
    gauss = -0.5 * (z / 0.7).pow(2).sum(1) - z.shape[1] * (math.log(0.7) + 0.5 * math.log(2 * math.pi))
    torch.testing.assert_close(model.log_prob(x, mel), (gauss + ld) / 64)


def test_gradients_reach_every_parameter_and_state_dict_round_trip() -> None:
    model = tiny_model()
    x, mel = torch.randn(2, 64), torch.randn(2, 5, 8)
    (-model.log_prob(x, mel).mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, missing
    other = WaveGlow(tiny_config())
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.eval()(x, mel)[0], model(x, mel)[0])


def test_cached_inverse_equals_plain_inverse() -> None:
    model = tiny_model()
    z, mel = torch.randn(2, 64), torch.randn(2, 5, 8)
    plain, ld = model.inverse(z, mel)
    cache = WaveGlowCache()
    cached, ldc = model.inverse(z, mel, cache=cache)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ldc, ld, atol=1e-4, rtol=1e-5)
    assert cache.inverse_weights is not None and len(cache.inverse_weights) == 4
    # the cache is rebuilt from the current weights: it cannot go stale after a weight update
    with torch.no_grad():
        model.flows[0].transforms[0].log_s.add_(0.1)
    torch.testing.assert_close(
        model.inverse(z, mel, cache=cache)[0], model.inverse(z, mel)[0], atol=1e-5, rtol=1e-5
    )
    low, _ = model.inverse(z, mel, cache=WaveGlowCache(dtype=torch.bfloat16))
    ref, _ = model.inverse(z, mel, cache=WaveGlowCache())  # the same cached inverse in float32
    rel = float((low - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    assert rel > 1e-4  # bf16 really ran (float32 gives the identical result)
    assert -20 * math.log10(rel) >= 30.0  # SNR against float32


def test_synthesis_shapes_lengths_and_generator() -> None:
    from waveflow_py.inference import synthesize

    model = tiny_model()
    mel = torch.randn(2, 5, 6)
    a, _ = synthesize(model, mel, [6, 3], 0.5, generator=torch.Generator().manual_seed(1))
    b, _ = synthesize(model, mel, [6, 3], 0.5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 48) and torch.equal(a, b)
    assert torch.all(a[1, 24:] == 0) and a[1, :24].abs().sum() > 0
    assert torch.isfinite(a).all()
    assert model.hop_length == 8 and model.sample_rate == 8000 and model.config.n_group == 4


def test_bad_input_raises_value_error() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="mel bands"):
        model(torch.randn(2, 64), torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="samples of conditioning"):
        model(torch.randn(2, 65), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="batch size"):
        model(torch.randn(2, 64), torch.randn(3, 5, 8))
    with pytest.raises(ValueError, match="rank"):
        model.inverse(torch.randn(2, 1, 64), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="non-finite"):
        model(torch.full((2, 64), float("nan")), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="WaveGlowCache"):
        model.inverse(torch.randn(2, 64), torch.randn(2, 5, 8), cache="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channel"):
        WaveGlow(tiny_config(n_early_size=2, n_flows=6))
    with pytest.raises(ValueError, match="WaveGlowConfig"):
        WaveGlow({"n_flows": 2})  # type: ignore[arg-type]


def test_registered_in_models() -> None:
    from waveflow_py.models import MODELS, build_model

    cls, cfg_cls = MODELS["waveglow"]
    assert cls is WaveGlow and cfg_cls is WaveGlowConfig
    assert isinstance(build_model(tiny_config()), WaveGlow)
    assert isinstance(build_model("waveglow", {"n_flows": 4, "n_early_every": 2}), WaveGlow)
    with pytest.raises(ValueError, match="model_type"):
        build_model("wavenet", None)

"""WaveFlow (Ping et al. 2020) on tiny configs: the flow contract, the paper's settings, the cached
inverse == the reference inverse for every h and dilation cycle, log_prob, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from tests.flows.contract import perturb_parameters
from tests.models.factories import tiny_waveflow_config
from waveflow_py.config import WaveFlowConfig
from waveflow_py.flows.causal import RowCache
from waveflow_py.models import MODELS
from waveflow_py.models.waveflow import WaveFlow, height_dilations, height_permutations


def tiny(h: int = 8, seed: int = 0, **over: object) -> WaveFlow:
    torch.manual_seed(seed)
    model = WaveFlow(tiny_waveflow_config(h, **over))  # type: ignore[arg-type]
    perturb_parameters(model, std=0.2, seed=seed + 1)  # the end convs start at zero: perturb everything
    return model.eval()


def inputs(model: WaveFlow, batch: int = 2, frames: int = 5, samples: int | None = None) -> tuple:
    hop, n_mels = model.hop_length, model.config.mel.n_mels
    t = frames * hop if samples is None else samples
    return 0.3 * torch.randn(batch, t), torch.randn(batch, n_mels, frames)


# ---------------------------------------------------------------------------- paper settings
def test_default_config_is_the_paper_model() -> None:
    model = WaveFlow(WaveFlowConfig())
    assert len(model.flows) == 8 and model.n_group == 16
    net = model.flows[0].conditioner
    assert len(net.layers) == 8 and net.residual_channels == 64
    assert net.height_dilations == [1] * 8 and net.width_dilations == [1, 2, 4, 8, 16, 32, 64, 128]
    assert model.upsampler.scales == [16, 16]
    assert (model.hop_length, model.sample_rate) == (256, 22050)
    # the paper reports 5.91M parameters for WaveFlow (h=16, r=64); weight norm adds the gains
    assert 5.8e6 < sum(p.numel() for p in model.parameters()) < 6.1e6
    assert MODELS["waveflow"] == (WaveFlow, WaveFlowConfig)


def test_height_dilation_cycles_and_permutations() -> None:
    assert height_dilations(8, 8) == [1] * 8
    assert height_dilations(32, 8) == [1, 2, 4, 1, 2, 4, 1, 2]
    assert height_dilations(64, 8) == [1, 2, 4, 8, 16, 1, 2, 4]
    assert height_dilations(32, 4) == [1, 2, 4, 1]
    perms = height_permutations(8, 4, "bipartition")
    assert perms[0] == perms[1] == [7, 6, 5, 4, 3, 2, 1, 0]
    assert perms[2] == perms[3] == [3, 2, 1, 0, 7, 6, 5, 4]
    assert height_permutations(4, 3, "reverse") == [[3, 2, 1, 0]] * 3


# ---------------------------------------------------------------------------- the flow contract
@pytest.mark.parametrize("samples", [80, 77])  # a multiple of h, and not (padded inside)
def test_inverse_of_forward_is_identity(samples: int) -> None:
    model = tiny(n_flows=3).double()
    audio, mel = (a.double() for a in inputs(model, samples=samples))
    z, ld = model(audio, mel)
    assert z.shape == (2, math.ceil(samples / 8) * 8) and ld.shape == (2,)
    for cache in (None, RowCache()):
        back, ld_inv = model.inverse(z, mel, cache=cache)
        torch.testing.assert_close(back[:, :samples], audio, rtol=0, atol=1e-10)
        torch.testing.assert_close(ld + ld_inv, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-9)


def test_logabsdet_matches_autograd_jacobian() -> None:
    model = tiny(h=4, n_flows=2).double()
    audio, mel = (a.double() for a in inputs(model, batch=1, frames=1))  # 16 samples
    _, ld = model(audio, mel)
    jac = torch.autograd.functional.jacobian(lambda a: model(a[None], mel)[0][0], audio[0])
    torch.testing.assert_close(ld[0], torch.linalg.slogdet(jac)[1], rtol=0, atol=1e-8)


def test_log_prob_is_nats_per_sample() -> None:
    model = tiny(sigma=0.7)
    audio, mel = inputs(model)
    z, ld = model(audio, mel)
    n = z.shape[1]
    manual = (-0.5 * z.pow(2).sum(1) / 0.49 - n * (math.log(0.7) + 0.5 * math.log(2 * math.pi)) + ld) / n
    torch.testing.assert_close(model.log_prob(audio, mel), manual)
    (-model.log_prob(audio, mel).mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_state_dict_roundtrip_through_safetensors() -> None:
    model = tiny()
    fresh = WaveFlow(model.config)
    fresh.load_state_dict(st_load(st_save({k: v.contiguous() for k, v in model.state_dict().items()})))
    audio, mel = inputs(model)
    torch.testing.assert_close(fresh(audio, mel)[0], model(audio, mel)[0])


# ---------------------------------------------------------------------------- the cached inverse
CACHE_CASES = [
    (8, None, 2),
    (16, None, 2),
    (16, [1, 2, 4, 8], 4),
    (32, None, 8),
    (32, [3, 1, 5], 3),
    (64, None, 8),
]


@pytest.mark.parametrize(("h", "dilations", "layers"), CACHE_CASES)
def test_cached_inverse_equals_reference(h: int, dilations: list[int] | None, layers: int) -> None:
    model = tiny(h, n_flows=2, n_layers=layers, residual_channels=4, height_dilations=dilations)
    assert model.flows[0].conditioner.height_dilations == (dilations or height_dilations(h, layers))
    mel = torch.randn(2, 8, 2 * h // 16 + 1)
    z = torch.randn(2, mel.shape[-1] * 16)
    with torch.no_grad():
        ref, ld_ref = model.inverse(z, mel)
    fast, ld_fast = model.inverse(z, mel, cache=RowCache())
    assert ref.abs().max() > 0.1  # a non-trivial model
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(ld_fast, ld_ref, rtol=1e-5, atol=1e-3)


def test_cached_inverse_equals_reference_at_paper_width() -> None:
    """r = 64, 8 layers (the paper's layer shapes) on a narrow input: same GEMM folding as at full size."""
    model = tiny(16, n_flows=1, n_layers=8, residual_channels=64)
    mel = torch.randn(1, 8, 3)
    z = torch.randn(1, 48)
    with torch.no_grad():
        ref, _ = model.inverse(z, mel)
    fast, _ = model.inverse(z, mel, cache=RowCache())
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-4)


def test_cached_inverse_in_bfloat16_is_close() -> None:
    model = tiny(16, residual_channels=16)
    audio, mel = inputs(model, frames=8)
    z, _ = model(audio, mel)
    z = z.detach()
    back, _ = model.inverse(z, mel, cache=RowCache(dtype=torch.bfloat16))
    ref, _ = model.inverse(z, mel, cache=RowCache())  # the same cached inverse in float32
    assert back.dtype == torch.float32
    rel = float((back - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    assert rel > 1e-4  # bf16 really ran (float32 gives the identical result)
    assert -20 * math.log10(rel) >= 30.0  # SNR against float32


def test_cache_reads_new_weights() -> None:
    model = tiny()
    audio, mel = inputs(model)
    z, _ = model(audio, mel)
    cache = RowCache()
    model.inverse(z, mel, cache=cache)
    perturb_parameters(model, std=0.1, seed=99)  # training continues
    z2, _ = model(audio, mel)
    back, _ = model.inverse(z2.detach(), mel, cache=cache)
    torch.testing.assert_close(back, audio, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs() -> None:
    model = tiny()
    audio, mel = inputs(model, frames=5)
    with pytest.raises(ValueError, match="8 mel bands"):
        model(audio, mel[:, :7])
    with pytest.raises(ValueError, match=r"4 frames x hop 16 = 64 .* 80 samples"):
        model(audio, mel[..., :4])
    with pytest.raises(ValueError, match="rank 2"):
        model(audio[0], mel)
    with pytest.raises(ValueError, match="batch"):
        model(audio, mel[:1])
    with pytest.raises(ValueError, match="non-finite"):
        model(audio.clone().fill_(float("nan")), mel)
    with pytest.raises(ValueError, match="RowCache"):
        model.inverse(audio, mel, cache=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="even n_group"):
        WaveFlow(tiny_waveflow_config(h=5))
    bad = tiny_waveflow_config()
    bad.upsample_scales = [4, 3]
    with pytest.raises(ValueError, match="hop_length 16"):
        WaveFlow(bad)


def test_hop_not_a_multiple_of_h() -> None:
    model = tiny(8, hop_length=12)  # 12 samples per frame, columns of 8: padded inside
    audio, mel = inputs(model, frames=5)  # 60 samples
    z, _ = model(audio, mel)
    assert z.shape == (2, 64)
    back, _ = model.inverse(z, mel, cache=RowCache())
    torch.testing.assert_close(back[:, :60], audio, rtol=0, atol=1e-4)
    from waveflow_py.inference import synthesize

    assert synthesize(model, mel)[0].shape == (2, 60)


def test_cache_survives_inference_mode_switches() -> None:
    model = tiny()
    audio, mel = inputs(model)
    z, _ = model(audio, mel)
    z = z.detach()
    cache = RowCache()
    with torch.inference_mode():
        first, _ = model.inverse(z, mel, cache=cache)
    second, _ = model.inverse(z, mel, cache=cache)  # buffers made in inference mode are not reused
    with torch.no_grad():
        plain, _ = model.inverse(z, mel)  # the reference inverse, no cache
    torch.testing.assert_close(first.clone(), plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(second, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(second, audio, rtol=0, atol=1e-4)

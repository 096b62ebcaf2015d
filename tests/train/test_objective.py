"""The training objective (train.objective): each term equals a direct computation, gradients through the
sampling path are finite and match finite differences (float64, a tiny model with both fixed stages), and
the path is the one synthesis uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import MelConfig, ObjectiveConfig, WaveGlowConfig, from_dict
from waveflow_py.evaluation.spectral import multi_resolution_stft
from waveflow_py.inference.core import run_inverse, sample_path
from waveflow_py.models import build_model
from waveflow_py.sampling import SamplingConfig
from waveflow_py.train.objective import TrainingObjective, log_mel_l1, mrstft_terms, step_seed

MEL = {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "win_length": 256, "n_mels": 16, "fmax": 4000.0}
RES = ((128, 32), (256, 64))


def _model(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    cfg = from_dict(
        WaveGlowConfig,
        {
            "n_flows": 2,
            "n_group": 8,
            "n_early_every": 4,
            "n_early_size": 2,
            "n_layers": 2,
            "residual_channels": 8,
            "mel": MEL,
            "envelope": "lpc",
            "lpc_order": 8,
            "pitch": "ltp",
        },
    )
    torch.manual_seed(0)
    model = build_model("waveglow", cfg).to(dtype)
    with torch.no_grad():  # non-trivial couplings (a zero-initialised end conv is the identity)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _signal(n: int = 1024, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=dtype) / 8000
    x = 0.3 * torch.sin(2 * torch.pi * 140 * t) * torch.sin(torch.pi * t / t[-1])
    return (x + 0.01 * torch.randn(n, generator=g, dtype=dtype))[None]


def test_mrstft_terms_equal_the_evaluation_metric() -> None:
    ref = torch.cat([_signal(seed=1), _signal(seed=2)])
    gen = ref.flip(-1) * 0.7 + 0.01
    sc, lm = mrstft_terms(gen, ref, RES)
    direct = [multi_resolution_stft(ref[i].numpy(), gen[i].numpy(), RES) for i in range(2)]
    assert float(sc) == pytest.approx(np.mean([d["sc"] for d in direct]), rel=1e-9)
    assert float(lm) == pytest.approx(np.mean([d["log_mag"] for d in direct]), rel=1e-9)
    zero_sc, zero_lm = mrstft_terms(ref, ref, RES)
    assert float(zero_sc) == 0.0 and float(zero_lm) == 0.0


def test_validation_mrstft_is_the_evaluation_metric_at_both_resolution_sets() -> None:
    from waveflow_py.config import DEFAULT_STFT_RESOLUTIONS, UNSEEN_STFT_RESOLUTIONS
    from waveflow_py.train.validate import VocodedClip, clips_mrstft

    def clip(n: int, seed: int) -> VocodedClip:
        ref = _signal(n=n, seed=seed)[0]
        noise = torch.randn(n, generator=torch.Generator().manual_seed(seed + 9), dtype=ref.dtype)
        gen = 0.8 * ref + 0.02 * noise
        return VocodedClip(f"c{seed}", ref, gen, torch.zeros(4, 3), torch.zeros(4, 3))

    long_clips = [clip(6000, 1), clip(5000, 2)]
    short = clip(1500, 3)  # longer than half of 2048, not of 4096: graded at the usual resolutions only
    for resolutions in (DEFAULT_STFT_RESOLUTIONS, UNSEEN_STFT_RESOLUTIONS):
        graded = long_clips + ([short] if resolutions == DEFAULT_STFT_RESOLUTIONS else [])
        pairs = [(c.reference.numpy(), c.generated.numpy()) for c in graded]
        expected = np.mean([multi_resolution_stft(r, g, resolutions)["total"] for r, g in pairs])
        assert clips_mrstft(long_clips + [short], resolutions) == pytest.approx(expected, rel=1e-9)
    assert clips_mrstft([short], UNSEEN_STFT_RESOLUTIONS) is None and clips_mrstft([]) is None


def test_log_mel_l1_is_the_mean_absolute_difference() -> None:
    a, b = torch.randn(2, 16, 9, dtype=torch.float64), torch.randn(2, 16, 7, dtype=torch.float64)
    assert float(log_mel_l1(a, b)) == pytest.approx(float((a[..., :7] - b).abs().mean()), rel=1e-12)


def test_sample_path_is_the_synthesis_path() -> None:
    model = _model(torch.float32).eval()
    mel = MelSpectrogram(model.config.mel)(_signal(dtype=torch.float32))
    z = 0.9 * torch.randn(1, 1024, generator=torch.Generator().manual_seed(3))
    for settings in (SamplingConfig(), SamplingConfig(excitation_rms=0.7, pitch_strength=2.0)):
        model.sampling = settings  # the model's settings
        with torch.no_grad():
            want = run_inverse(model, z, mel, cached=False)
            got = sample_path(model, z, mel)
            explicit = sample_path(model, z, mel, sampling=settings)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(explicit, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert (sample_path(model, z, mel, sampling=SamplingConfig()) - want).abs().max() > 1e-3


def test_gradients_through_the_sampling_path_match_finite_differences() -> None:
    model = _model()
    cfg = ObjectiveConfig(nll=0.0, stft=1.0, mel=0.5, crop=512, items=1, resolutions=RES)
    mel_fn = MelSpectrogram(from_dict(MelConfig, MEL)).double()
    objective = TrainingObjective(model, cfg, mel_fn, SamplingConfig(temperature=0.8), seed=5)
    audio = _signal()
    mel = mel_fn(audio)

    def loss() -> torch.Tensor:
        return objective(audio, mel, step=0).loss(cfg)

    value = loss()
    value.backward()
    # a weight of the last coupling's WaveNet and one of the first: the gradient crosses the flows' inverse,
    # the pitch filter's and the LPC filter's torch recursions
    params = [
        p for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0 and p.numel() > 1
    ]
    assert len(params) >= 4 and all(torch.isfinite(p.grad).all() for p in params)
    for p in (params[0], params[-1]):
        flat, grad = p.data.view(-1), p.grad.view(-1)
        for i in torch.topk(grad.abs(), 2).indices.tolist():
            h = 1e-6
            old = float(flat[i])
            with torch.no_grad():
                flat[i] = old + h
                up = float(loss())
                flat[i] = old - h
                down = float(loss())
                flat[i] = old
            assert float(grad[i]) == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)


def test_step_noise_is_a_function_of_seed_and_step() -> None:
    assert step_seed(7, 3) == step_seed(7, 3)
    assert len({step_seed(7, s) for s in range(100)} | {step_seed(8, 0)}) == 101


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"stft": -1.0}, "objective.stft: expected a finite weight >= 0"),
        ({"nll": 0.0}, "every weight is 0"),
        ({"crop": 0}, "objective.crop: expected a positive integer"),
        ({"temperature": -1.0}, "objective.temperature: expected a finite number >= 0"),
        ({"temperature": float("nan")}, "objective.temperature: expected a finite number >= 0"),
        ({"resolutions": [[64, 128]]}, "objective.resolutions"),
    ],
)
def test_bad_objective_settings_are_refused(over: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(ObjectiveConfig, over)


def test_crop_must_fit_the_segment() -> None:
    objective = TrainingObjective(_model(), ObjectiveConfig(stft=1.0, crop=1000), torch.nn.Identity())
    with pytest.raises(ValueError, match=r"objective.crop: expected a multiple of the hop \(64\)"):
        objective.check_segment(4096, 64)
    with pytest.raises(ValueError, match="at most data.segment_length"):
        TrainingObjective(
            _model(), ObjectiveConfig(stft=1.0, crop=1024), torch.nn.Identity(), 1.0
        ).check_segment(512, 64)

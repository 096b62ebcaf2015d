"""The adversarial stage's pieces (train.adversarial): discriminator output shapes for odd lengths, each loss
against a direct computation, where the gradients go, a discriminator step that learns, and the settings'
validation. The stage inside a training run is in test_adversarial_training.py."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import MelConfig, ObjectiveConfig, WaveGlowConfig, from_dict
from waveflow_py.models import build_model
from waveflow_py.sampling import SamplingConfig
from waveflow_py.train.adversarial import (
    Adversary,
    Discriminators,
    PeriodDiscriminator,
    SpectrogramDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from waveflow_py.train.distributed import DistInfo
from waveflow_py.train.objective import TrainingObjective

MEL = {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "win_length": 256, "n_mels": 16, "fmax": 4000.0}
TINY = {
    "disc_periods": [2, 3],
    "disc_period_channels": [4, 8],
    "disc_resolutions": [[64, 16], [128, 32]],
    "disc_resolution_channels": [4, 4],
}


def _critic(**over) -> Discriminators:
    torch.manual_seed(0)
    cfg = from_dict(ObjectiveConfig, {"adversarial": 1.0, **TINY, **over})
    return Discriminators.from_config(cfg)


def _conv_len(n: int, stride: int, kernel: int) -> int:
    pad = kernel // 2
    return (n + 2 * pad - kernel) // stride + 1


@pytest.mark.parametrize("T", [37, 1001, 1024])
@pytest.mark.parametrize("period", [2, 5, 11])
def test_period_discriminator_shapes(T: int, period: int) -> None:
    channels = (4, 8, 8)
    scores, feats = PeriodDiscriminator(period, channels)(torch.randn(3, T))
    rows = -(-T // period)
    want = []
    for i, c in enumerate(channels):
        rows = _conv_len(rows, 3 if i < len(channels) - 1 else 1, 5)
        want.append((3, c, rows, period))
    assert [tuple(f.shape) for f in feats] == want
    assert scores.shape == (3, rows * period)


@pytest.mark.parametrize("T", [37, 1001])
@pytest.mark.parametrize(("n_fft", "hop"), [(64, 16), (256, 64)])
def test_spectrogram_discriminator_shapes(T: int, n_fft: int, hop: int) -> None:
    channels = (4, 8, 8)
    scores, feats = SpectrogramDiscriminator(n_fft, hop, channels)(torch.randn(2, T))
    bins, frames = n_fft // 2 + 1, T // hop + 1
    want = []
    for i, c in enumerate(channels):
        frames = _conv_len(frames, 1 if i == 0 else 2, 9)
        want.append((2, c, bins, frames))
    assert [tuple(f.shape) for f in feats] == want
    assert scores.shape == (2, bins * frames)


def test_discriminators_judge_in_order_and_check_shapes() -> None:
    critic = _critic()
    out = critic(torch.randn(2, 999))
    assert len(out) == 4 and all(s.shape[0] == 2 and len(f) == 2 for s, f in out)
    assert out[0][1][0].shape[-1] == 2 and out[1][1][0].shape[-1] == 3  # periods first, then resolutions
    assert out[2][1][0].shape[2] == 33 and out[3][1][0].shape[2] == 65
    with pytest.raises(ValueError, match=r"expected audio \(batch, samples >= 2\), got shape \(999,\)"):
        critic(torch.randn(999))


def test_period_discriminator_reads_one_phase_per_column() -> None:
    """A signal of period p is constant down each column of its (T / p, p) image, and so is the first
    layer's output away from the edges (its kernel is (5, 1): columns never mix); the columns differ."""
    p = 5
    x = torch.randn(1, p).repeat(1, 61)[:, :-1]  # 300 samples, no padding needed
    first = PeriodDiscriminator(p, (4, 4))(x)[1][0]  # (1, 4, 100, 5)
    inner = first[:, :, 2:-2]
    torch.testing.assert_close(inner, inner[:, :, :1].expand_as(inner))
    assert all(not torch.allclose(inner[..., 0], inner[..., c]) for c in range(1, p))


def _outputs(scores: list[list[float]], feats: list[list[list[float]]]) -> list:
    def t(v):
        return torch.tensor([v], dtype=torch.float64)

    return [(t(s), [t(f) for f in fs]) for s, fs in zip(scores, feats, strict=True)]


def test_losses_equal_a_direct_computation() -> None:
    real = _outputs([[0.5, 1.5], [1.0, 1.0, 1.0]], [[[1.0, 2.0], [0.0]], [[3.0, 3.0, 3.0]]])
    fake = _outputs([[0.2, -0.2], [1.0, 0.0, 0.0]], [[[1.5, 1.0], [-2.0]], [[3.0, 0.0, 3.0]]])
    d_direct = ((0.25 + 0.25) / 2 + (0.04 + 0.04) / 2 + 0 + 1 / 3) / 2
    g_direct = ((0.64 + 1.44) / 2 + (0 + 1 + 1) / 3) / 2
    fm_direct = ((0.5 + 1.0) / 2 + 2.0 + 3.0 / 3) / 3  # mean over the three (discriminator, layer) pairs
    assert float(discriminator_loss(real, fake)) == pytest.approx(d_direct, rel=1e-12)
    assert float(generator_loss(fake)) == pytest.approx(g_direct, rel=1e-12)
    assert float(feature_matching_loss(real, fake)) == pytest.approx(fm_direct, rel=1e-12)
    assert float(discriminator_loss(_outputs([[1.0]], [[]]), _outputs([[0.0]], [[]]))) == 0.0


def test_generator_terms_are_the_losses_of_the_discriminators() -> None:
    critic = _critic()
    ref, gen = torch.randn(2, 700), torch.randn(2, 700)
    adv, fm = critic.generator_terms(ref, gen)
    torch.testing.assert_close(adv, generator_loss(critic(gen)))
    torch.testing.assert_close(fm, feature_matching_loss(critic(ref), critic(gen)))
    assert critic.generator_terms(ref, gen, feature_matching=False)[1] is None


def test_generator_terms_reach_the_audio_not_the_discriminators() -> None:
    critic = _critic()
    gen = torch.randn(2, 700, requires_grad=True)
    adv, fm = critic.generator_terms(torch.randn(2, 700), gen)
    (adv + fm).backward()
    assert gen.grad is not None and gen.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())
    assert all(p.requires_grad for p in critic.parameters())  # unfrozen afterwards


def _separable(n: int = 4, T: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Real: sines of a few pitches; fake: white noise of the same RMS."""
    g = torch.Generator().manual_seed(1)
    t = torch.arange(T) / 8000
    f0 = torch.tensor([120.0, 180.0, 240.0, 300.0])[:n, None]
    real = 0.3 * torch.sin(2 * torch.pi * f0 * t)
    return real, 0.3 / 2**0.5 * torch.randn(n, T, generator=g)


def test_a_discriminator_step_learns_a_separable_case() -> None:
    cfg = from_dict(ObjectiveConfig, {"adversarial": 1.0, "disc_lr": 2e-3, **TINY})
    adversary = Adversary(_critic(), cfg, DistInfo(), torch.device("cpu"))
    real, fake = _separable()
    losses = [adversary.step(real, fake)["disc_loss"] for _ in range(30)]
    after = float(discriminator_loss(*_halves(adversary.critic, real, fake)))
    assert after < 0.25 * losses[0], (losses[0], after)
    assert all(p.grad is not None for p in adversary.critic.parameters())  # every parameter was trained


def _halves(critic: Discriminators, real: torch.Tensor, fake: torch.Tensor) -> tuple[list, list]:
    with torch.no_grad():
        return critic(real), critic(fake)


def test_a_non_finite_discriminator_loss_skips_the_step() -> None:
    cfg = from_dict(ObjectiveConfig, {"adversarial": 1.0, **TINY})
    adversary = Adversary(_critic(), cfg, DistInfo(), torch.device("cpu"))
    before = {k: v.clone() for k, v in adversary.critic.state_dict().items()}
    real, fake = _separable()
    fake[0, 3] = float("nan")
    assert adversary.step(real, fake) == {}
    for k, v in adversary.critic.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def _model() -> torch.nn.Module:
    cfg = from_dict(
        WaveGlowConfig,
        {
            "n_flows": 2,
            "n_group": 8,
            "n_early_every": 4,
            "n_early_size": 2,
            "n_layers": 2,
            "residual_channels": 8,
        }
        | {"mel": MEL},
    )
    torch.manual_seed(0)
    model = build_model("waveglow", cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("weights", [{"adversarial": 1.0}, {"feature_matching": 1.0}])
def test_objective_gradients_reach_the_generator_when_on(weights: dict) -> None:
    model, critic = _model(), _critic()
    cfg = from_dict(ObjectiveConfig, {"nll": 0.0, "crop": 512, "items": 2, **TINY, **weights})
    mel_fn = MelSpectrogram(from_dict(MelConfig, MEL))
    objective = TrainingObjective(model, cfg, mel_fn, SamplingConfig(temperature=0.8))
    audio = _separable(2, 1024)[0]
    mel = mel_fn(audio)
    terms = objective(audio, mel, step=3, critic=critic)
    assert terms.adversarial is not None and terms.crops is not None
    assert (terms.feature_matching is not None) == ("feature_matching" in weights)
    reference, generated = terms.crops
    torch.testing.assert_close(reference, audio[:, :512])
    assert generated.shape == (2, 512) and not generated.requires_grad
    terms.loss(cfg).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in critic.parameters())


def test_objective_has_no_adversarial_terms_when_off() -> None:
    model, critic = _model(), _critic()
    mel_fn = MelSpectrogram(from_dict(MelConfig, MEL))
    audio = _separable(2, 1024)[0]
    mel = mel_fn(audio)
    on = from_dict(
        ObjectiveConfig, {"stft": 1.0, "adversarial": 1.0, "adversarial_from": 4, "crop": 512, **TINY}
    )
    off = from_dict(ObjectiveConfig, {"stft": 1.0, "crop": 512})
    for cfg, step in ((on, 3), (off, 4)):  # before adversarial_from; weights 0
        terms = TrainingObjective(model, cfg, mel_fn, SamplingConfig(temperature=0.8))(
            audio, mel, step, critic
        )
        assert terms.stft_sc is not None
        assert terms.adversarial is None and terms.feature_matching is None and terms.crops is None
        terms.loss(cfg).backward()
        assert all(p.grad is None for p in critic.parameters())
    with pytest.raises(ValueError, match="adversarial terms need the discriminators"):
        TrainingObjective(model, on, mel_fn, SamplingConfig(temperature=0.8))(audio, mel, 4)


def test_adversarial_terms_turn_the_crop_sampling_on() -> None:
    cfg = from_dict(ObjectiveConfig, {"adversarial": 0.5, "every": 3, "adversarial_from": 4})
    assert cfg.sampled and cfg.adversarial_on and cfg.first_adversarial_step() == 6
    assert [s for s in range(13) if cfg.sampled_at(s)] == [6, 9, 12]
    assert [s for s in range(13) if cfg.adversarial_at(s)] == [6, 9, 12]
    both = from_dict(ObjectiveConfig, {"stft": 1.0, "adversarial": 0.5, "every": 3, "adversarial_from": 4})
    assert [s for s in range(13) if both.sampled_at(s)] == [0, 3, 6, 9, 12]
    assert [s for s in range(13) if both.adversarial_at(s)] == [6, 9, 12]
    spectral = from_dict(ObjectiveConfig, {"stft": 1.0, "every": 3})
    assert not spectral.adversarial_on and not spectral.adversarial_at(6) and spectral.sampled_at(6)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"adversarial": -1.0}, r"train\.objective\.adversarial: expected a finite weight >= 0"),
        ({"feature_matching": float("nan")}, r"train\.objective\.feature_matching: expected a finite weight"),
        ({"adversarial_from": -1}, r"train\.objective\.adversarial_from: expected a step >= 0"),
        ({"disc_lr": 0.0}, r"train\.objective\.disc_lr: expected a finite learning rate > 0"),
        ({"disc_betas": [0.8, 1.0]}, r"train\.objective\.disc_betas: expected two values in \[0, 1\)"),
        ({"disc_periods": [2, 0]}, r"train\.objective\.disc_periods: expected a list of positive integers"),
        (
            {"disc_period_channels": []},
            r"train\.objective\.disc_period_channels: expected a list of positive",
        ),
        (
            {"disc_resolutions": [[64, 128]]},
            r"train\.objective\.disc_resolutions: expected a list of \[n_fft, hop",
        ),
        (
            {"disc_resolution_channels": [8, -1]},
            r"train\.objective\.disc_resolution_channels: expected a list",
        ),
        ({"disc_periods": [], "disc_resolutions": []}, r"disc_periods, disc_resolutions: both empty"),
        ({"nll": 0.0, "adversarial_from": 5}, r"adversarial_from: the steps before it would train nothing"),
    ],
)
def test_bad_adversarial_settings_are_refused(over: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(ObjectiveConfig, {"adversarial": 1.0, **over})

"""The training objective: the exact NLL, plus spectral terms on audio sampled through the synthesis path.

Maximum likelihood alone stops buying perceptual quality early on a small compute budget (the dev NLL
flattens while the spectra stay far from the reference: docs/quality-per-compute.md). Following WG-WaveNet
(Hsu & Lee 2020, "WG-WaveNet: Real-Time High-Fidelity Speech Synthesis without GPU", Interspeech), which
trains a compact WaveGlow with a spectral loss on its own samples, a step can add, on ``items`` crops of
``crop`` samples of the batch:

* ``x_hat = inverse(temperature * eps, mel)``: the model's synthesis path as it ships
  (:func:`waveflow_py.inference.core.sample_path`: the flows' reference inverse, then the mel-conditioned
  fixed stages in their differentiable torch form), with the run's sampling settings
  (:class:`~waveflow_py.sampling.SamplingConfig`: temperature, truncation, excitation level, pitch
  strength, resolved by the one rule: ``train.objective.temperature``, else the run's ``val_temperature``,
  else the release's, else the library default), and ``eps`` from the model's prior drawn from a
  generator seeded by ``(seed, step)``, so a resumed run draws the same noise as a straight one;
* the multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN): per ``(n_fft, hop)`` the
  spectral convergence ``||S - S_hat||_F / ||S||_F`` and the log-magnitude L1 ``mean |ln S - ln S_hat|``
  (Hann window of ``n_fft``, centred reflect-padded frames, magnitudes floored at 1e-7), each averaged over
  the resolutions and the crops (the definition of :mod:`waveflow_py.evaluation.spectral`, in torch);
* the L1 distance of the model's own log-mel of ``x_hat`` and of the reference crop.

``loss = nll * NLL + stft * (SC + logmag) + mel * mel_L1``; the NLL (nats/sample) is computed and logged on
every step whatever its weight, so ``log_prob`` and the likelihood curves mean what they always did.

With the adversarial terms on (``adversarial``/``feature_matching`` > 0, from step ``adversarial_from``), the
same sampled crop is judged by the run's discriminators (:mod:`waveflow_py.train.adversarial`, passed to
``forward`` as ``critic``): ``+ adversarial * LSGAN_G + feature_matching * FM``; the terms keep the reference
crop and the detached generated one (``crops``) for the discriminator step that follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from waveflow_py.config import ObjectiveConfig
from waveflow_py.inference.core import full_precision, sample_path
from waveflow_py.sampling import SamplingConfig, resolve_sampling, sampling_of

__all__ = [
    "Critic",
    "ObjectiveTerms",
    "TrainingObjective",
    "stft_magnitude",
    "mrstft_terms",
    "log_mel_l1",
    "step_seed",
]

_FLOOR = 1e-7


def stft_magnitude(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """``|STFT|`` of ``x (B, T)``: ``(B, n_fft // 2 + 1, frames)``, Hann window of ``n_fft``, centred frames
    (reflect padding; constant for signals shorter than half a window), floored at 1e-7."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(x, n_fft, hop, window=window, center=True, pad_mode=mode, return_complex=True)
    return spec.abs().clamp_min(_FLOOR)


def mrstft_terms(
    generated: Tensor, reference: Tensor, resolutions: Sequence[tuple[int, int]]
) -> tuple[Tensor, Tensor]:
    """``(spectral convergence, log-magnitude L1)`` of ``generated`` against ``reference`` (both ``(B, T)``),
    each the mean over the resolutions and the batch items (scalars)."""
    sc, lm = [], []
    for n_fft, hop in resolutions:
        s_hat = stft_magnitude(generated, n_fft, hop)
        s = stft_magnitude(reference, n_fft, hop)
        sc.append(torch.linalg.norm(s - s_hat, dim=(1, 2)) / torch.linalg.norm(s, dim=(1, 2)))
        lm.append((s.log() - s_hat.log()).abs().mean(dim=(1, 2)))
    return torch.stack(sc).mean(), torch.stack(lm).mean()


def log_mel_l1(generated_mel: Tensor, reference_mel: Tensor) -> Tensor:
    """Mean absolute difference of two log-mels ``(B, n_mels, F)`` over their common frames."""
    frames = min(generated_mel.shape[-1], reference_mel.shape[-1])
    return (generated_mel[..., :frames] - reference_mel[..., :frames]).abs().mean()


def step_seed(seed: int, step: int) -> int:
    """The noise seed of step ``step``: a pure function of the run's seed and the step (exact resume)."""
    return (int(seed) * 1_000_003 + int(step) * 7919 + 17) % (2**63 - 1)


class Critic(Protocol):
    """What the objective needs of the run's discriminators
    (:class:`waveflow_py.train.adversarial.Discriminators`, which import this module: typed here by what
    they do, so the import goes one way)."""

    def generator_terms(
        self, reference: Tensor, generated: Tensor, feature_matching: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """``(least-squares generator loss, feature-matching L1 or None)`` of ``generated``."""
        ...


@dataclass
class ObjectiveTerms:
    """One step's terms (scalars). ``stft_sc``/``stft_logmag``/``mel_l1`` are ``None`` on steps without the
    sampled terms (``objective.every``), ``adversarial``/``feature_matching`` on steps without the
    adversarial terms; ``crops`` (reference, detached generated: ``(items, crop)`` each) is set on the
    steps with the adversarial terms, for the discriminator step."""

    nll: Tensor
    stft_sc: Tensor | None = None
    stft_logmag: Tensor | None = None
    mel_l1: Tensor | None = None
    adversarial: Tensor | None = None
    feature_matching: Tensor | None = None
    crops: tuple[Tensor, Tensor] | None = None

    def loss(self, cfg: ObjectiveConfig) -> Tensor:
        """The weighted sum that is minimised."""
        total = cfg.nll * self.nll
        if self.stft_sc is not None and self.stft_logmag is not None:
            total = total + cfg.stft * (self.stft_sc + self.stft_logmag)
        if self.mel_l1 is not None:
            total = total + cfg.mel * self.mel_l1
        if self.adversarial is not None:
            total = total + cfg.adversarial * self.adversarial
        if self.feature_matching is not None:
            total = total + cfg.feature_matching * self.feature_matching
        return total

    def scalars(self) -> dict[str, float]:
        out = {"nll": float(self.nll.detach())}
        for name in ("stft_sc", "stft_logmag", "mel_l1", "adversarial", "feature_matching"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value.detach())
        return out


class TrainingObjective(nn.Module):
    """What DDP / ``torch.compile`` wrap: ``(audio (B, T), mel, step) -> ObjectiveTerms``.

    Args:
        model: the flow vocoder (``log_prob``, ``inverse_excitation``, ``envelope_synthesis``, ``prior``).
        cfg: the ``train.objective`` settings.
        mel_fn: the model's mel front end (log-mels of the sampled and the reference crops).
        sampling: the run's sampling settings (``None``: the model's); ``cfg.temperature`` overrides its
            temperature (:attr:`settings`).
        seed: the run's seed (the noise of step ``s`` is drawn from :func:`step_seed`).
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: ObjectiveConfig,
        mel_fn: nn.Module,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.mel_fn = mel_fn
        self.sampling = sampling
        self.seed = int(seed)

    @property
    def settings(self) -> SamplingConfig:
        """The settings the sampled crops are drawn with: ``cfg.temperature`` over :attr:`sampling` (the
        run's) over the model's (the one rule, :func:`~waveflow_py.sampling.resolve_sampling`)."""
        base = sampling_of(self.model) if self.sampling is None else self.sampling
        return resolve_sampling(base, temperature=self.cfg.temperature)

    def check_segment(self, segment_length: int, hop: int) -> None:
        """``ValueError`` unless a crop fits the training segments and starts/ends on a hop boundary."""
        crop = self.cfg.crop
        if self.cfg.sampled and (crop > segment_length or crop % hop):
            raise ValueError(
                f"train.objective.crop: expected a multiple of the hop ({hop}) of at most "
                f"data.segment_length ({segment_length}), got {crop}"
            )

    def forward(self, audio: Tensor, mel: Tensor, step: int, critic: Critic | None = None) -> ObjectiveTerms:
        """The terms of step ``step``; ``critic``: the run's discriminators (needed on the steps with the
        adversarial terms; held by the caller, outside this module, so that a DDP around the objective
        never owns their parameters)."""
        nll = -self.model.log_prob(audio, mel).float().mean()
        terms = ObjectiveTerms(nll)
        if self.cfg.sampled_at(step):
            if self.cfg.adversarial_at(step) and critic is None:
                raise ValueError(f"step {step}: train.objective's adversarial terms need the discriminators")
            self._sampled_terms(audio, mel, step, terms, critic if self.cfg.adversarial_at(step) else None)
        return terms

    def _sampled_terms(
        self, audio: Tensor, mel: Tensor, step: int, terms: ObjectiveTerms, critic: Critic | None
    ) -> None:
        cfg = self.cfg
        hop = int(self.model.hop_length)
        reference = full_precision(audio[: cfg.items, : cfg.crop])
        # one mel frame beyond the crop's last segment, as whole-signal synthesis has (centred frames)
        cond = mel[: cfg.items, :, : cfg.crop // hop + 1]
        gen = torch.Generator(device="cpu").manual_seed(step_seed(self.seed, step))
        settings = self.settings
        z = self.model.prior.sample(
            reference.shape[0],
            shape=(cfg.crop,),
            temperature=settings.temperature,
            truncation=settings.truncation,
            generator=gen,
            device=audio.device,
            dtype=audio.dtype,
        )
        generated = full_precision(sample_path(self.model, z, cond, sampling=settings))
        with torch.autocast(device_type=audio.device.type, enabled=False):  # losses in >= float32
            if cfg.stft > 0:
                terms.stft_sc, terms.stft_logmag = mrstft_terms(generated, reference, cfg.resolutions)
            if cfg.mel > 0:
                terms.mel_l1 = log_mel_l1(self.mel_fn(generated), self.mel_fn(reference))
            if critic is not None:
                fm = cfg.feature_matching > 0
                terms.adversarial, terms.feature_matching = critic.generator_terms(reference, generated, fm)
                terms.crops = (reference.detach(), generated.detach())

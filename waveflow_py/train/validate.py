"""Validation: dev-set NLL on full utterances and mel L1 of vocoded dev clips.

NLL is reported in nats per sample (the models' ``log_prob`` unit) and in bits per sample (nats / ln 2).
Mel L1 is the mean absolute difference between the log-mels of a clip vocoded from its reference mel
(through the one sampler, :func:`waveflow_py.inference.synthesize`, with the run's sampling settings)
and of the reference audio, over the same frames; MR-STFT is the multi-resolution STFT distance
of the same pair (spectral convergence + log-magnitude L1 at the evaluation's three resolutions,
:func:`waveflow_py.train.objective.mrstft_terms`), and "MR-STFT unseen" the same distance at the two
resolutions the default spectral loss does not use (256/64 and 4096/1024, as ``waveflow eval``'s
``mrstft_unseen``): a run that trains on the first can overfit its resolutions, and the second shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from waveflow_py.config import DEFAULT_STFT_RESOLUTIONS
from waveflow_py.inference.synthesis import synthesize
from waveflow_py.sampling import SamplingConfig
from waveflow_py.train.data import DevSet
from waveflow_py.train.logging import bits_per_sample
from waveflow_py.train.objective import mrstft_terms

__all__ = ["VocodedClip", "ValidationResult", "dev_nll", "vocode_clips", "clips_mrstft"]


@dataclass
class VocodedClip:
    """One vocoded dev clip: reference and generated audio ``(T,)`` and log-mels ``(n_mels, F)``."""

    name: str
    reference: Tensor
    generated: Tensor
    reference_mel: Tensor
    generated_mel: Tensor


@dataclass
class ValidationResult:
    nll: float
    mel_l1: float | None
    clips: list[VocodedClip] = field(default_factory=list)
    mrstft: float | None = None
    mrstft_unseen: float | None = None

    def scalars(self) -> dict[str, float]:
        out = {"nll": self.nll, "bits_per_sample": bits_per_sample(self.nll)}
        if self.mel_l1 is not None:
            out["mel_l1"] = self.mel_l1
        if self.mrstft is not None:
            out["mrstft"] = self.mrstft
        if self.mrstft_unseen is not None:
            out["mrstft_unseen"] = self.mrstft_unseen
        return out


@torch.no_grad()
def dev_nll(model: nn.Module, mel_fn: nn.Module, dev: DevSet, device: torch.device) -> float:
    """Length-weighted mean negative log-likelihood (nats per sample) over the dev utterances."""
    total, count = 0.0, 0
    for i in range(len(dev)):
        _, audio = dev[i]
        a = audio.to(device)[None]
        lp = model.log_prob(a, mel_fn(a))
        total += -float(lp.double().sum()) * a.shape[-1]
        count += a.shape[-1]
    if count == 0:
        raise ValueError("dev set is empty: no utterance to validate on")
    return total / count


@torch.no_grad()
def vocode_clips(
    model: nn.Module,
    mel_fn: nn.Module,
    dev: DevSet,
    n: int,
    sampling: SamplingConfig | None,
    device: torch.device,
    seed: int,
) -> tuple[float | None, list[VocodedClip]]:
    """Vocode the first ``n`` dev clips with the ``sampling`` settings (``None``: the model's); returns the
    mean mel L1 and the clips (on CPU)."""
    clips: list[VocodedClip] = []
    errors = []
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    for i in range(min(n, len(dev))):
        name, audio = dev[i]
        a = audio.to(device)[None]
        ref_mel = mel_fn(a)
        out = synthesize(model, ref_mel, sampling=sampling, generator=gen)[0][..., : a.shape[-1]]
        out = torch.nan_to_num(out).clamp(-1.0, 1.0)
        gen_mel = mel_fn(out)
        frames = min(ref_mel.shape[-1], gen_mel.shape[-1])
        errors.append(float((gen_mel[..., :frames] - ref_mel[..., :frames]).abs().mean()))
        clips.append(VocodedClip(name, audio.cpu(), out[0].cpu(), ref_mel[0].cpu(), gen_mel[0].cpu()))
    return (sum(errors) / len(errors) if errors else None), clips


@torch.no_grad()
def clips_mrstft(
    clips: list[VocodedClip], resolutions: tuple[tuple[int, int], ...] = DEFAULT_STFT_RESOLUTIONS
) -> float | None:
    """Mean multi-resolution STFT distance (SC + log-magnitude L1) at ``resolutions`` (``(n_fft, hop)``
    pairs) of the vocoded clips to their references (``None`` without clips); clips no longer than half the
    longest window are skipped."""
    longest = max(n_fft for n_fft, _ in resolutions)
    values = []
    for c in clips:
        n = min(c.reference.shape[-1], c.generated.shape[-1])
        if n <= longest // 2:
            continue
        sc, lm = mrstft_terms(c.generated[None, :n].double(), c.reference[None, :n].double(), resolutions)
        values.append(float(sc + lm))
    return sum(values) / len(values) if values else None

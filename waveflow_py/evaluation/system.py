"""The vocoder under evaluation, as three plain callables (so any model, or a test double, fits).

``EvalModel.from_model(model)`` wraps a :mod:`waveflow_py.models` vocoder (``config.mel``,
``log_prob(audio, mel)`` in nats per sample); ``EvalModel.from_pretrained(name_or_dir)`` loads a release
first (:meth:`waveflow_py.vocoder.Vocoder.from_pretrained`: a bundled name or a directory,
sha256-verified; its temperature becomes the default). Sampling goes through the one sampler,
:func:`waveflow_py.inference.synthesize`, with an explicit ``torch.Generator`` so that each clip's noise
is reproducible without touching the global random state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from waveflow_py.config import MelConfig
from waveflow_py.sampling import (
    DEFAULT_SAMPLING,
    KEEP,
    SamplingConfig,
    describe_sampling,
    resolve_sampling,
    sampling_of,
)

__all__ = ["EvalModel", "NLL_WARNING_NATS", "nll_from_log_prob", "nll_warning"]

# NLL (nats per sample) above which a clip's likelihood is reported as exploding: a model that has learnt
# speech at all scores well below 0 (pretrained/universal-16k-preview/eval-dev24.json: mean -4.7, worst clip
# -3.7; the zero-parameter envelope baseline -4.8), while an overflowing coupling scale gave +18,613
NLL_WARNING_NATS = 0.0

MelFn = Callable[[np.ndarray], np.ndarray]  # audio (T,) -> log-mel (n_mels, F)
VocodeFn = Callable[[np.ndarray, float, int], np.ndarray]  # (log-mel, temperature, seed) -> audio (>= T,)
LogProbFn = Callable[[np.ndarray, np.ndarray], float]  # (audio (T,), log-mel) -> nats per sample


@dataclass
class EvalModel:
    """A vocoder seen by :func:`~waveflow_py.evaluation.runner.evaluate`.

    ``mel``: audio ``(T,)`` at ``sample_rate`` -> log-mel ``(n_mels, F)`` with ``mel_config``;
    ``vocode``: ``(log-mel, temperature, seed)`` -> audio ``(T',)``, time-aligned with the reference;
    ``log_prob`` (optional): average log-likelihood of the audio given its mel, nats per sample.
    ``sampling``: the sampling settings the vocoder uses (:class:`~waveflow_py.sampling.SamplingConfig`;
    its ``temperature`` is the default passed to ``vocode``).
    ``provenance`` and ``description`` are shown in the report.
    """

    name: str
    sample_rate: int
    mel_config: MelConfig
    mel: MelFn
    vocode: VocodeFn
    log_prob: LogProbFn | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)
    sampling: SamplingConfig = DEFAULT_SAMPLING

    @property
    def temperature(self) -> float:
        """The default sampling temperature (``sampling.temperature``)."""
        return self.sampling.temperature

    @property
    def is_untrained(self) -> bool:
        text = json.dumps(self.provenance, default=str).lower()
        return "untrained" in text or "random" in text

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        *,
        name: str | None = None,
        provenance: dict[str, Any] | None = None,
        description: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        sampling: SamplingConfig | None = None,
        temperature: float | None = None,
    ) -> EvalModel:
        """Wrap a vocoder with ``config.mel`` and ``log_prob``; it is sampled through ``synthesize`` with
        ``sampling`` (``None``: the model's) under ``temperature`` (``None``: as ``sampling``), the one
        rule (:func:`~waveflow_py.sampling.resolve_sampling`); ``vocode``'s temperature argument wins."""
        from waveflow_py.audio import MelSpectrogram
        from waveflow_py.inference.synthesis import synthesize

        config = getattr(model, "config", None)
        settings = resolve_sampling(
            sampling_of(model) if sampling is None else sampling, temperature=temperature
        )
        mel_config = getattr(config, "mel", None)
        if not isinstance(mel_config, MelConfig):
            raise ValueError(f"{type(model).__name__}: expected a model with config.mel (a MelConfig)")
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        model = model.to(dev).eval()
        front_end = MelSpectrogram(mel_config).to(dev)

        @torch.no_grad()
        def mel(audio: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=dev)[None]
            return front_end(x)[0].float().cpu().numpy()

        @torch.no_grad()
        def vocode(log_mel: np.ndarray, temperature: float, seed: int) -> np.ndarray:
            m = torch.as_tensor(log_mel, device=dev, dtype=dtype)[None]
            gen = torch.Generator(device=dev).manual_seed(int(seed))
            audio, _ = synthesize(model, m, temperature=temperature, sampling=settings, generator=gen)
            return audio[0].cpu().numpy()

        @torch.no_grad()
        def log_prob(audio: np.ndarray, log_mel: np.ndarray) -> float:
            x = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=dev, dtype=dtype)[None]
            m = torch.as_tensor(log_mel, device=dev, dtype=dtype)[None]
            return float(model.log_prob(x, m)[0])

        info = {
            "model_type": type(model).__name__,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "device": str(dev),
            "dtype": str(dtype).removeprefix("torch."),
            "sampling": describe_sampling(settings, config),  # the resolved settings, shown by the report
        }
        return cls(
            name=name or type(model).__name__,
            sample_rate=int(mel_config.sample_rate),
            mel_config=mel_config,
            mel=mel,
            vocode=vocode,
            log_prob=log_prob,
            provenance=dict(provenance or {}),
            description={**info, **(description or {})},
            sampling=settings,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str,
        device: torch.device | str | None = None,
        *,
        temperature: float | None = None,
        truncation: float | str | None = KEEP,
        excitation_rms: float | str | None = KEEP,
        pitch_strength: float | str | None = KEEP,
        mel_projection: float | str | None = KEEP,
        projection_iters: int | str | None = KEEP,
        projection_fit: int | str | None = KEEP,
    ) -> EvalModel:
        """Load a release with :meth:`waveflow_py.vocoder.Vocoder.from_pretrained` (name or directory;
        sha256 checked) and wrap its model, sampled through ``synthesize`` with a seeded generator and the
        vocoder's sampling settings (the release's, unless ``temperature``, ``truncation``,
        ``excitation_rms``, ``pitch_strength``, ``mel_projection``, ``projection_iters`` or ``projection_fit``
        override them)."""
        from waveflow_py.vocoder import Vocoder

        vocoder = Vocoder.from_pretrained(
            name_or_dir,
            device=device,
            temperature=temperature,
            truncation=truncation,
            excitation_rms=excitation_rms,
            pitch_strength=pitch_strength,
            mel_projection=mel_projection,
            projection_iters=projection_iters,
            projection_fit=projection_fit,
        )
        info = vocoder.info
        if info is None:  # pragma: no cover - from_pretrained always records its release
            raise ValueError(f"{name_or_dir}: the vocoder has no release information")
        return cls.from_model(
            vocoder.model,
            name=info.name,
            provenance=info.provenance,
            description={
                "release": str(info.path),
                "model_type": info.model_type,
                "weights_sha256": info.sha256,
                "verified": info.verified,
            },
            sampling=vocoder.sampling,
        )


def nll_from_log_prob(log_prob_nats: float) -> tuple[float, float]:
    """(NLL in nats per sample, NLL in bits per sample) from an average log-likelihood in nats."""
    return -log_prob_nats, -log_prob_nats / math.log(2.0)


def nll_warning(nll_nats: float) -> str | None:
    """The warning for a clip whose NLL (``-log p(audio | mel)`` per sample, nats) exceeds
    :data:`NLL_WARNING_NATS`, i.e. whose log-likelihood is below 0, or is not finite; else ``None``."""
    if not math.isfinite(nll_nats):
        return f"exploding likelihood: NLL {nll_nats} nats/sample (not finite)"
    if nll_nats <= NLL_WARNING_NATS:
        return None
    return (
        f"exploding likelihood: NLL {nll_nats:+,.3f} nats/sample > {NLL_WARNING_NATS:g} "
        "(the model's log-likelihood of the reference is below 0)"
    )

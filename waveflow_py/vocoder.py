"""`Vocoder`: the one object a text-to-speech user needs -- a release loaded, mels in, audio out.

>>> vocoder = Vocoder.from_pretrained()                 # the default bundled release, or a directory
>>> audio = vocoder.vocode(mel)                         # mel (n_mels, F) -> audio (F * hop,)
>>> audio = vocoder.vocode(mel, mel_format="log10", stats="stats.npy")  # an ESPnet-style mel

Mels from other front ends are converted to the model's convention by :mod:`waveflow_py.audio.conventions`
(``mel_format``: "ln" natural log, "log10" with optional mean/std stats, "db" Coqui-style dB, "model"
for features already in the model's convention, e.g. from :meth:`Vocoder.mel`) and validated
(bin count, value range, frame rate) before synthesis, so a mismatched front end fails with a message
instead of producing noise. Synthesis runs under ``torch.inference_mode`` through the one sampler,
:func:`waveflow_py.inference.synthesize` (fast cached inverse; long inputs in chunks of bounded memory),
with the vocoder's sampling settings (:attr:`Vocoder.sampling`, a
:class:`~waveflow_py.sampling.SamplingConfig` resolved once: explicit arguments over the release's over
the library default) passed explicitly, and in the compute dtype measured for this model and machine
(``dtype="auto"``, :mod:`waveflow_py.inference.precision`).
Shapes: a mel ``(n_mels, F)`` gives audio ``(F * hop,)``; a batch ``(B, n_mels, F)`` gives ``(B, F * hop)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from waveflow_py.audio.conventions import silent_mel
from waveflow_py.config import MelConfig, source_filter_of
from waveflow_py.dtypes import is_auto, parse_dtype
from waveflow_py.inference.denoiser import Denoiser, check_denoise
from waveflow_py.inference.precision import resolve_dtype
from waveflow_py.inference.synthesis import DEFAULT_MAX_FRAMES, synthesize
from waveflow_py.pretrained import ReleaseInfo, load_release, save_release
from waveflow_py.sampling import (
    DEFAULT_TEMPERATURE,
    KEEP,
    SamplingConfig,
    check_for_model,
    inert_settings,
    resolve_sampling,
    sampling_of,
)

__all__ = ["Vocoder", "DEFAULT_TEMPERATURE", "SamplingConfig"]

logger = logging.getLogger(__name__)


class Vocoder:
    """A loaded vocoder release: ``vocode`` mels, compute ``mel`` features, ``resynthesize`` audio.

    Args:
        model: a ``WaveFlow``/``WaveGlow``.
        info: the release it came from (``None`` for a model built in code).
        denoise: default strength of the bias-spectrum denoiser applied to every output (0: off).
        sampling: the sampling settings, whole (``None``: the release's, ``model.sampling``, which
            :func:`~waveflow_py.pretrained.load_release` sets; the library default for a model built in
            code). The single settings below override it (:func:`~waveflow_py.sampling.resolve_sampling`).
        temperature: sampling temperature (``None``: as ``sampling``).
        truncation: noise truncation in standard deviations (``"release"``: as ``sampling``; ``None``:
            off).
        excitation_rms: per-frame excitation level of envelope-prior models (``"release"``: as
            ``sampling``; ``None``: off).
        pitch_strength: the pitch predictor's strength of pitch-prior models (``"release"``: as
            ``sampling``; ``None``: the strength the model was built with).
        mel_projection: strength in [0, 1] of the mel projection post-filter (the output's STFT magnitude
            moved onto the mel's, its phase kept: :mod:`waveflow_py.inference.projection`;
            ``"release"``: as ``sampling``; ``None`` or 0: off).
        projection_iters: Griffin-Lim iterations after the mel projection, from the sample's phase
            (``"release"``: as ``sampling``; 0: none).
        projection_fit: the projection's magnitude: ``n >= 1`` fitted to the mel from the output's own,
            ``n`` updates per iteration; 0: the mel's smooth magnitude (``"release"``: as ``sampling``).
        compute_dtype: dtype of the networks during synthesis (``"auto"``: bfloat16 where it was measured
            faster than float32 for this model on this machine and its audio within tolerance, else
            float32, see :func:`waveflow_py.inference.precision.choose_dtype`; ``None``: the parameters'
            dtype).
        max_frames: inputs longer than this are synthesised in chunks (bounded memory), see
            :func:`~waveflow_py.inference.synthesize`.
    """

    def __init__(
        self,
        model: nn.Module,
        info: ReleaseInfo | None = None,
        *,
        denoise: float = 0.0,
        sampling: SamplingConfig | None = None,
        temperature: float | None = None,
        truncation: float | str | None = KEEP,
        excitation_rms: float | str | None = KEEP,
        pitch_strength: float | str | None = KEEP,
        mel_projection: float | str | None = KEEP,
        projection_iters: int | str | None = KEEP,
        projection_fit: int | str | None = KEEP,
        compute_dtype: torch.dtype | str | None = None,
        max_frames: int | None = DEFAULT_MAX_FRAMES,
    ) -> None:
        self.model = model.eval()
        self.info = info
        self.denoise_strength = check_denoise(denoise)
        self._sampling = self._resolve(
            sampling,
            temperature=temperature,
            truncation=truncation,
            excitation_rms=excitation_rms,
            pitch_strength=pitch_strength,
            mel_projection=mel_projection,
            projection_iters=projection_iters,
            projection_fit=projection_fit,
        )
        explicit = sampling is not None or temperature is not None
        envelope = source_filter_of(getattr(model, "config", None)).envelope != "none"
        if not explicit and envelope and self._sampling.temperature == DEFAULT_TEMPERATURE:
            logger.warning(
                "%s has an envelope prior but no tuned temperature: sampling at the default %g, which "
                "makes such models much quieter (tune one: experiments/tune_sampling.py --write)",
                "the model" if info is None else info.path,
                DEFAULT_TEMPERATURE,
            )
        self.compute_dtype, self.dtype_reason, self.dtype_choice = resolve_dtype(
            compute_dtype, model, self.device
        )
        self.max_frames = max_frames
        self._denoiser: Denoiser | None = None
        self._mel_module: nn.Module | None = None

    # ------------------------------------------------------------------ construction and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = "auto",
        *,
        denoise: float = 0.0,
        sampling: SamplingConfig | None = None,
        temperature: float | None = None,
        truncation: float | str | None = KEEP,
        excitation_rms: float | str | None = KEEP,
        pitch_strength: float | str | None = KEEP,
        mel_projection: float | str | None = KEEP,
        projection_iters: int | str | None = KEEP,
        projection_fit: int | str | None = KEEP,
    ) -> Vocoder:
        """Load a release by bundled name or directory (``None``: the default bundled release).

        ``dtype``: the compute dtype of synthesis: ``"auto"`` (default) picks bfloat16 where it was
        measured faster than float32 for this model on this machine, with its audio within tolerance
        (measured once, cached: :func:`waveflow_py.inference.precision.choose_dtype`), else float32;
        ``"fp32"``/``"bf16"``/``"fp16"`` force one; the weights
        stay float32 (``"float64"`` moves them to float64). ``sampling`` and the single settings
        ``temperature``, ``truncation``, ``excitation_rms``, ``pitch_strength``, ``mel_projection``,
        ``projection_iters``, ``projection_fit`` override the release's (see :class:`Vocoder`).
        """
        wanted = None if is_auto(dtype) else parse_dtype(dtype)
        weights = torch.float64 if wanted == torch.float64 else None
        model, info = load_release(name_or_dir, device=device, dtype=weights)
        if info.is_untrained:
            logger.warning("release %s has untrained (random) weights: its audio is noise", info.path)
        compute = None if wanted == torch.float64 else dtype
        vocoder = cls(
            model,
            info,
            denoise=denoise,
            sampling=sampling,
            temperature=temperature,
            truncation=truncation,
            excitation_rms=excitation_rms,
            pitch_strength=pitch_strength,
            mel_projection=mel_projection,
            projection_iters=projection_iters,
            projection_fit=projection_fit,
            compute_dtype=compute,
        )
        logger.info("compute dtype %s (%s)", vocoder.compute_dtype or vocoder.dtype, vocoder.dtype_reason)
        return vocoder

    def save_pretrained(
        self, directory: str | os.PathLike[str], provenance: dict[str, Any] | None = None
    ) -> Path:
        """Write this vocoder as a release (provenance defaults to the loaded release's); its sampling
        settings (:attr:`sampling`) are stored as the release's ``sampling`` block."""
        prov = provenance if provenance is not None else (self.info.provenance if self.info else None)
        if not prov:
            raise ValueError("provenance: this vocoder has none recorded; pass one (data, steps, date, ...)")
        return save_release(directory, self.model, provenance=prov, sampling=self.sampling)

    # ------------------------------------------------------------------ sampling settings
    def _resolve(self, sampling: SamplingConfig | None = None, **overrides: Any) -> SamplingConfig:
        """The one rule over the release level (``model.sampling``), checked against the model; a
        setting made inert by another is reported once per vocoder."""
        base = sampling_of(self.model) if not hasattr(self, "_sampling") else self._sampling
        settings = resolve_sampling(base, sampling, **overrides)
        check_for_model(settings, getattr(self.model, "config", None))
        reported = self.__dict__.setdefault("_reported", set())
        for line in inert_settings(settings):
            if line not in reported:
                reported.add(line)
                logger.warning("%s", line)
        return settings

    @property
    def sampling(self) -> SamplingConfig:
        """The sampling settings every call samples with (unless it overrides the temperature):
        temperature, truncation, excitation level, pitch strength, mel projection."""
        return self._sampling

    @sampling.setter
    def sampling(self, value: SamplingConfig) -> None:
        if not isinstance(value, SamplingConfig):
            raise ValueError(f"sampling: expected a SamplingConfig, got {type(value).__name__}")
        self._set(self._resolve(value))

    def _set(self, settings: SamplingConfig) -> None:
        self._sampling = settings
        self._denoiser = None  # its bias spectrum is measured with the settings

    @property
    def temperature(self) -> float:
        """The sampling temperature (noise std relative to the prior's training sigma)."""
        return self._sampling.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._set(self._resolve(temperature=value))

    @property
    def truncation(self) -> float | None:
        """Noise truncation in standard deviations (``None``: off)."""
        return self._sampling.truncation

    @truncation.setter
    def truncation(self, value: float | str | None) -> None:
        self._set(self._resolve(truncation=value))

    @property
    def excitation_rms(self) -> float | None:
        """The RMS each excitation frame is set to before the envelope synthesis (``None``: off; envelope
        priors only), see :func:`waveflow_py.sourcefilter.level.level_frames`."""
        return self._sampling.excitation_rms

    @excitation_rms.setter
    def excitation_rms(self, value: float | str | None) -> None:
        self._set(self._resolve(excitation_rms=value))

    @property
    def pitch_strength(self) -> float | None:
        """The pitch predictor's strength (``None``: as the model was built; pitch priors only)."""
        return self._sampling.pitch_strength

    @pitch_strength.setter
    def pitch_strength(self, value: float | str | None) -> None:
        self._set(self._resolve(pitch_strength=value))

    @property
    def mel_projection(self) -> float | None:
        """The mel projection's strength (``None``: off), see :mod:`waveflow_py.inference.projection`."""
        return self._sampling.mel_projection

    @mel_projection.setter
    def mel_projection(self, value: float | str | None) -> None:
        self._set(self._resolve(mel_projection=value))

    @property
    def projection_iters(self) -> int:
        """Griffin-Lim iterations after the mel projection (0: none)."""
        return self._sampling.projection_iters

    @projection_iters.setter
    def projection_iters(self, value: int | str | None) -> None:
        self._set(self._resolve(projection_iters=value))

    @property
    def projection_fit(self) -> int:
        """Updates per iteration of the projection's fitted magnitude (0: the mel's smooth magnitude)."""
        return self._sampling.projection_fit

    @projection_fit.setter
    def projection_fit(self, value: int | str | None) -> None:
        self._set(self._resolve(projection_fit=value))

    @property
    def mel_config(self) -> MelConfig:
        """The mel settings the model was trained on."""
        return self.model.config.mel

    @property
    def sample_rate(self) -> int:
        return int(self.mel_config.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.mel_config.hop_length)

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.model.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None) -> Vocoder:
        """Move the model's weights (and cached helpers) in place; returns ``self``. An ``"auto"`` compute
        dtype is chosen again for the new device."""
        self.model.to(device=device, dtype=parse_dtype(dtype))
        if self.dtype_choice is not None:  # "auto": measured again for the new device
            self.compute_dtype, self.dtype_reason, self.dtype_choice = resolve_dtype(
                "auto", self.model, self.device
            )
        self._denoiser = None
        self._mel_module = None
        return self

    def __repr__(self) -> str:
        where = str(self.info.path) if self.info else "in-memory"
        return (
            f"Vocoder({type(self.model).__name__}, {self.sample_rate} Hz, {self.mel_config.n_mels} mels, "
            f"{where}, device={self.device}, dtype={self.dtype}, compute_dtype={self.compute_dtype}, "
            f"temperature={self.temperature}, truncation={self.truncation}, "
            f"excitation_rms={self.excitation_rms}, pitch_strength={self.pitch_strength})"
        )

    # ------------------------------------------------------------------ features
    def prepare_mel(self, mel: Tensor | np.ndarray, mel_format: str = "ln", **fmt_params: Any) -> Tensor:
        """Any supported mel -> validated model-convention mel ``(B, n_mels, F)`` on the model's device.

        Conversion and checks (bin count, transposed input, NaN/inf, value range, a floor that belongs
        to another convention) are :func:`waveflow_py.audio.conventions.to_model_mel`'s; ``fmt_params``
        go to it (``stats``/``mean``/``std`` for log10, Coqui's dB settings, ``source_cfg``/``approximate``).
        A tensor is converted and validated on its own device (no round trip through the CPU).
        """
        from waveflow_py.audio.conventions import to_model_mel

        if isinstance(mel, Tensor):
            mel = mel.detach()
        batch = to_model_mel(mel, mel_format, self.mel_config, **fmt_params)
        return batch.to(device=self.device, dtype=self.dtype)

    def mel(self, audio: Tensor | np.ndarray) -> Tensor:
        """Features exactly as the model was trained on: ``(T,)`` -> ``(n_mels, F)``, ``(B, T)`` -> batch."""
        from waveflow_py.audio import MelSpectrogram

        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(np.ascontiguousarray(audio))
        if not isinstance(audio, Tensor) or audio.dim() not in (1, 2):
            shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
            raise ValueError(f"audio: expected a (T,) or (B, T) tensor, got {shape}")
        if self._mel_module is None:
            self._mel_module = MelSpectrogram(self.mel_config).to(self.device)
        with torch.inference_mode():
            out = self._mel_module(audio.to(self.device, torch.float32))
        return out[0] if audio.dim() == 1 else out

    # ------------------------------------------------------------------ synthesis
    def vocode(
        self,
        mel: Tensor | np.ndarray,
        lengths: Tensor | Sequence[int] | None = None,
        *,
        temperature: float | None = None,
        mel_format: str = "ln",
        denoise: float | None = None,
        generator: torch.Generator | None = None,
        **fmt_params: Any,
    ) -> Tensor:
        """Mel -> audio (float32, on the model's device).

        ``mel``: ``(n_mels, F)`` -> ``(F * hop,)``; ``(B, n_mels, F)`` -> ``(B, F * hop)``, where
        ``lengths`` (frames per item) mark a padded batch: item ``i`` is synthesised as if alone (the
        padding never reaches it) and its samples past ``lengths[i] * hop`` are zero (see
        :meth:`audio_lengths`). ``mel_format`` and ``fmt_params`` describe the front end's convention
        (see :mod:`waveflow_py.audio.conventions`); ``temperature`` overrides the vocoder's default;
        ``denoise`` overrides its default strength; ``generator`` makes the noise reproducible.
        """
        settings = resolve_sampling(self._sampling, temperature=temperature)
        strength = self.denoise_strength if denoise is None else check_denoise(denoise)
        single = (mel.dim() if isinstance(mel, Tensor) else np.ndim(mel)) == 2
        batch = self.prepare_mel(mel, mel_format, **fmt_params)
        lens = self._check_lengths(lengths, batch)
        with torch.inference_mode():
            audio, _ = synthesize(
                self.model,
                batch,
                lens,
                dtype=self.compute_dtype,
                generator=generator,
                sampling=settings,
                max_frames=self.max_frames,
            )
            if strength > 0:
                audio = self.denoise(audio, strength)
            if lens is not None:  # again after denoising, which spreads energy into the padding
                keep = (
                    torch.arange(audio.shape[-1], device=audio.device)[None]
                    < (lens * self.hop_length)[:, None]
                )
                audio = audio * keep
        return audio[0] if single else audio

    def audio_lengths(self, lengths: Tensor | Sequence[int]) -> Tensor:
        """Frames per item -> samples per item (``lengths * hop_length``)."""
        return torch.as_tensor(lengths, dtype=torch.long) * self.hop_length

    def vocode_many(
        self,
        mels: Sequence[Tensor | np.ndarray],
        *,
        batch_size: int = 8,
        temperature: float | None = None,
        mel_format: str = "ln",
        denoise: float | None = None,
        **fmt_params: Any,
    ) -> list[Tensor]:
        """Mels of different lengths ``[(n_mels, F_i)]`` -> audio ``[(F_i * hop,)]``, in batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        prepared = [self.prepare_mel(m, mel_format, **fmt_params) for m in mels]
        for i, m in enumerate(prepared):
            if m.shape[0] != 1:
                raise ValueError(
                    f"mels[{i}]: expected one mel (n_mels, frames), got a batch {tuple(m.shape)}"
                )
        out: list[Tensor] = []
        for start in range(0, len(prepared), batch_size):
            chunk = [m[0] for m in prepared[start : start + batch_size]]
            batch, lens = self.pad_mels(chunk)
            audio = self.vocode(batch, lens, temperature=temperature, denoise=denoise, mel_format="model")
            out.extend(a[: int(n)] for a, n in zip(audio, self.audio_lengths(lens), strict=True))
        return out

    def pad_mels(self, mels: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``[(n_mels, F_i)]`` model-convention mels -> ``(B, n_mels, max F)`` silence-padded, lengths."""
        if not mels:
            raise ValueError("mels: expected at least one mel, got none")
        lens = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
        longest = int(lens.max())
        batch = silent_mel(self.mel_config, longest, len(mels), device=self.device, dtype=self.dtype)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[-1]] = m.to(device=self.device, dtype=self.dtype)
        return batch, lens

    def _check_lengths(self, lengths: Tensor | Sequence[int] | None, batch: Tensor) -> Tensor | None:
        if lengths is None:
            return None
        lens = torch.as_tensor(lengths, dtype=torch.long, device=batch.device).reshape(-1)
        if lens.numel() != batch.shape[0] or bool((lens < 1).any()) or bool((lens > batch.shape[-1]).any()):
            raise ValueError(
                f"lengths: expected {batch.shape[0]} frame counts in 1..{batch.shape[-1]}, "
                f"got {lens.tolist()}"
            )
        return lens

    def resynthesize(
        self,
        audio: str | os.PathLike[str] | Tensor,
        *,
        sample_rate: int | None = None,
        resample: bool = False,
        temperature: float | None = None,
        denoise: float | None = None,
    ) -> Tensor:
        """Audio file or ``(T,)`` tensor -> mel -> audio: the vocoder's copy of a recording.

        A file or tensor at another rate than the model's raises ``AudioError`` unless ``resample``
        (for a tensor, give its ``sample_rate``; ``None`` means it is already at the model's rate).
        """
        from waveflow_py.audio import AudioError, load_audio

        if isinstance(audio, (str, os.PathLike)):
            wav, _ = load_audio(audio, self.sample_rate, resample=resample)
        else:
            if not isinstance(audio, Tensor) or audio.dim() != 1 or audio.numel() == 0:
                shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
                raise ValueError(f"audio: expected a non-empty (T,) tensor or a path, got {shape}")
            wav = audio.float()
            if sample_rate is not None and sample_rate != self.sample_rate:
                if not resample:
                    raise AudioError(
                        f"audio is {sample_rate} Hz but the model expects {self.sample_rate} Hz; "
                        "pass resample=True to convert it"
                    )
                from waveflow_py.audio import resample_audio

                wav = torch.from_numpy(resample_audio(wav.cpu().numpy(), sample_rate, self.sample_rate))
        features = self.mel(wav)
        out = self.vocode(features, temperature=temperature, denoise=denoise, mel_format="model")
        return out[: wav.numel()]

    def denoise(self, audio: Tensor, strength: float = 0.1) -> Tensor:
        """Remove the model's bias spectrum (WaveGlow-style, see :class:`Denoiser`) from ``audio``."""
        if self._denoiser is None:
            self._denoiser = Denoiser.from_model(self.model, sampling=self._sampling).to(self.device)
        return self._denoiser(audio, strength)

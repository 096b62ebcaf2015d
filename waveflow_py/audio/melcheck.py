"""Checks of a mel's values before it reaches a model: shape, finiteness, the value range a log mel of
this config can take, and the tell-tale signs of another convention (a dB mel, a linear mel, another
format's floor, a power mel, a compressed encoding). Errors say which ``--mel-format`` to use; see the
"Validation" section of docs/mel-formats.md.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from waveflow_py.audio.mel import mel_filter_bank
from waveflow_py.config import MelConfig

__all__ = ["as_mel_tensor", "check_mel", "check_raw_log_mel", "mel_value_range"]

logger = logging.getLogger(__name__)

_LN10 = math.log(10.0)


def as_mel_tensor(mel: Any, n_mels: int, dtype: torch.dtype | None = torch.float64) -> Tensor:
    """Tensor ``(B, n_mels, F)`` in ``dtype`` (``None``: float32 or float64 as given, no copy of such a
    tensor) from ``(n_mels, F)`` or ``(B, n_mels, F)``, with shape errors."""
    t = torch.as_tensor(np.asarray(mel) if not isinstance(mel, Tensor) else mel)
    if not t.is_floating_point():
        raise ValueError(f"mel: expected a float array, got dtype {t.dtype}")
    shape = tuple(t.shape)
    if t.dim() not in (2, 3):
        raise ValueError(f"mel: expected shape (n_mels, frames) or (batch, n_mels, frames), got {shape}")
    if shape[-2] != n_mels:
        if shape[-1] == n_mels:
            raise ValueError(
                f"mel: shape {shape} looks transposed (frames, n_mels); expected (n_mels={n_mels}, frames): "
                "pass mel.T (or swap the last two axes)"
            )
        raise ValueError(f"mel: expected {n_mels} mel bins on axis -2, got {shape[-2]} (shape {shape})")
    if shape[-1] < 1:
        raise ValueError(f"mel: no frames (shape {shape})")
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"mel: {bad} value(s) are NaN or infinite")
    return t if t.dim() == 3 else t.unsqueeze(0)


def mel_value_range(cfg: MelConfig) -> tuple[float, float]:
    """``(low, high)`` that a model-convention mel of audio in [-1, 1] can take (no stats).

    ``low`` is the log of the clamp; ``high`` the log of the largest filter's weight sum times the
    window sum (the largest possible ``|X|`` of a full-scale signal).
    """
    fb = mel_filter_bank(cfg)
    high = float(fb.sum(axis=1).max()) * (cfg.win_length / 2.0)
    lo, hi = math.log(cfg.clamp), math.log(high) * cfg.power
    return (lo, hi) if cfg.log == "ln" else (lo / _LN10, hi / _LN10)


def _format_hint(x: Tensor, cfg: MelConfig) -> tuple[str, bool]:
    """A suggestion for a mel that does not fit ``cfg``, and whether the evidence is conclusive.

    Conclusive: a floor (>= 1 % of the values at the minimum) that is another convention's clamp.
    """
    lo, hi = float(x.min()), float(x.max())
    floored = int((x <= lo + 1e-6).sum()) > 0.01 * x.numel()
    own_floor = math.log(cfg.clamp) if cfg.log == "ln" else math.log10(cfg.clamp)
    if floored and abs(lo - own_floor) < 1e-3:
        return "", False
    if hi > 20.0 or lo < -60.0:
        return "the values look like decibels: pass --mel-format db (Coqui) with its ref/min levels", False
    if floored and (abs(lo + 4.0) < 1e-3 or abs(lo) < 1e-6):
        return "the values look range-normalised dB (Coqui, [-4, 4] or [0, 4]): pass --mel-format db", True
    if cfg.log == "ln" and floored and any(abs(lo - v) < 1e-3 for v in (-5.0, -10.0)):
        return f"the floor {lo:g} is a log10 clamp: pass --mel-format log10 (ESPnet/ParallelWaveGAN)", True
    if cfg.log == "log10" and floored and any(abs(lo - math.log(v)) < 1e-3 for v in (1e-5, 1e-7)):
        return f"the floor {lo:g} is a natural-log clamp: pass --mel-format ln (Tacotron 2/HiFi-GAN)", True
    if -6.0 < lo and hi < 6.0 and abs(float(x.mean())) < 1.0:
        return (
            "the values look mean/std-normalised: pass the stats (--mel-stats) with --mel-format log10",
            False,
        )
    return "check the front end's mel settings against the model's (see docs/mel-formats.md)", False


def _looks_compressed(x: Tensor, low: float, high: float) -> bool:
    """Speech in ln has its median in the lower half of [log(clamp), full scale] and a 5-95 %
    spread of more than ~0.38 of that range; log10 and Coqui-dB encodings of the same speech sit
    higher and narrower (where these thresholds come from: docs/implementation-notes.md). A hint only:
    loud broadband noise looks the same, so this warns and never raises."""
    values = x.flatten()
    if values.numel() < 1000:
        return False
    values = values[:: max(1, values.numel() // 200_000)]
    q = torch.tensor([0.05, 0.5, 0.95], dtype=values.dtype, device=values.device)
    q05, q50, q95 = torch.quantile(values, q).tolist()
    span = high - low
    return (q50 - low) / span > 0.5 and (q95 - q05) / span < 0.38


def _refuse_linear(x: Tensor) -> None:
    """Raise for a mel that was never log-compressed: all values >= 0 with the heavy tail of a linear
    magnitude or power spectrum (median under 5 % of the maximum). A log mel of any real signal has
    values below 0 (every quiet bin is ``log(clamp)`` < 0) or, for loud broadband sound only, a median
    close to its maximum."""
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi <= 0:
        return
    values = x.flatten()[:: max(1, x.numel() // 200_000)]
    median = float(values.median())
    if median >= 0.05 * hi:
        return
    raise ValueError(
        f"mel values are all >= 0 (median {median:.3g}, max {hi:.3g}): this looks like a linear-magnitude "
        "or power mel, not a log mel. Log-compress it first: ln(max(mel, 1e-5)) for a magnitude mel, "
        "0.5 * ln(max(mel, 1e-10)) for a power mel (e.g. np.log(np.maximum(mel, 1e-5))), then vocode "
        "with --mel-format ln"
    )


def check_mel(mel: Any, mel_cfg: MelConfig, *, audio_length: int | None = None, tol: float = 1.0) -> Tensor:
    """Validate a model-convention mel and return it as a float tensor ``(B, n_mels, F)``.

    Checks: rank and bin count (with a hint when the array looks transposed), finiteness, the
    value range of :func:`mel_value_range` (``tol`` of slack at the top, tiny at the clamp floor;
    skipped when the config has mean/std stats), a floor that belongs to another format, and with
    ``audio_length`` that ``F * hop >= audio_length``. Errors suggest a ``--mel-format``.
    """
    x = as_mel_tensor(mel, mel_cfg.n_mels, dtype=None)  # validated as given: no float64 copy
    dtype = mel.dtype if isinstance(mel, Tensor) and mel.is_floating_point() else torch.float32
    if mel_cfg.mean is None and mel_cfg.std is None:
        _refuse_linear(x)
        low, high = mel_value_range(mel_cfg)
        lo, hi = float(x.min()), float(x.max())
        if lo < low - 1e-3 or hi > high + tol:
            unit = "ln" if mel_cfg.log == "ln" else "log10"
            raise ValueError(
                f"mel values span [{lo:.3g}, {hi:.3g}] but a {unit} mel of this model lies in "
                f"[{low:.3g}, {high:.3g}] ({unit}(clamp={mel_cfg.clamp:g}) .. full scale); "
                + (_format_hint(x, mel_cfg)[0] or "see docs/mel-formats.md")
            )
        hint, conclusive = _format_hint(x, mel_cfg)
        if conclusive:
            raise ValueError(
                f"mel does not look like this model's convention (clamp {mel_cfg.clamp:g}): {hint}"
            )
        if mel_cfg.log == "ln" and _looks_compressed(x, low, high):
            logger.warning(
                "mel values look compressed for a natural-log mel (high median, small spread): "
                "if the front end writes log10 or Coqui dB, pass --mel-format log10 / db"
            )
    if audio_length is not None and x.shape[-1] * mel_cfg.hop_length < audio_length:
        raise ValueError(
            f"mel has {x.shape[-1]} frames = {x.shape[-1] * mel_cfg.hop_length} samples at hop "
            f"{mel_cfg.hop_length}, fewer than the {audio_length} requested"
        )
    return x.to(dtype)


# natural-log values below this are no mel magnitude any front end writes (ln 1e-15; the lowest common
# floor is ln 1e-10 = -23): such a mel is in decibels
_DB_BELOW = -35.0


def _ln_range(cfg: MelConfig) -> tuple[float, float]:
    """:func:`mel_value_range` in natural-log units."""
    low, high = mel_value_range(cfg)
    return (low, high) if cfg.log == "ln" else (low * _LN10, high * _LN10)


def check_raw_log_mel(ln_mel: Tensor, cfg: MelConfig, fmt: str) -> None:
    """Check a decoded mel (natural log of the mel magnitude, as the front end wrote it, *before* it is
    clamped to the model's floor): refuse values no log mel takes (a dB mel, ``--mel-format`` ``fmt``),
    warn when the level looks like a power mel (twice the log magnitude: most values far under the
    model's floor, e.g. NeMo's mels)."""
    lo = float(ln_mel.min())
    if lo < _DB_BELOW:
        raise ValueError(
            f"mel values reach {lo:.3g} as --mel-format {fmt}, i.e. ln {lo:.3g}: far below any log floor "
            f"(ln 1e-10 = -23): the values look like decibels: pass --mel-format db (Coqui) with its "
            "ref/min levels, or convert them to ln (x * ln(10) / 20) first"
        )
    values = ln_mel.flatten()[:: max(1, ln_mel.numel() // 200_000)].double()
    if values.numel() < 100:
        return
    low, high = _ln_range(cfg)
    q05, q50 = torch.quantile(values, torch.tensor([0.05, 0.5], dtype=values.dtype, device=values.device))
    if float(q05) < low - 1.0 and float(q50) < low + 0.3 * (high - low):
        logger.warning(
            "mel level looks implausible for a %s magnitude mel: median %.3g, 5%% of the values under %.3g, "
            "below the model's floor ln(%g) = %.3g: a power mel (2 x ln magnitude, e.g. NeMo) must be halved "
            "first (0.5 * mel); a mel with a lower floor is fine",
            fmt,
            float(q50),
            float(q05),
            cfg.clamp,
            low,
        )

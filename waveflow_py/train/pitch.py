"""Train the learned pitch predictor (:class:`~waveflow_py.sourcefilter.pitchnet.MelPitchNet`) on a corpus:
``waveflow train-pitch DATA --out DIR``.

Labels are pYIN's F0 and voicing on each training file (the evaluation's own tracker and settings,
:func:`~waveflow_py.evaluation.pitch.track_pitch`), computed once per file and cached under
``DIR/labels/`` (keyed by the file's path, size and modification time), so a second run starts training
at once. The inputs are what the harmonic source gives the network at synthesis: the log-mel and the
periodicity analysis' autocorrelation
(:meth:`~waveflow_py.sourcefilter.periodicity.MelPeriodicity.correlation`).
Training: random crops of ``frames`` frames, Adam with a one-cycle schedule. The dev split (when the
corpus has one) is scored per speaker at the end with the evaluation's V/UV F1 and gross pitch error
definitions, on the mel frames, against pYIN on the reference.

Writes ``DIR/pitchnet.safetensors`` (the weights) and ``DIR/pitchnet.json`` (sizes, mel settings, dev
report), both atomically; a vocoder run takes them with ``train.pitch_net: DIR``
(:func:`load_pitch_net` checks that they fit the model).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from waveflow_py.atomic import atomic_write, atomic_write_text
from waveflow_py.config import MelConfig, to_dict
from waveflow_py.evaluation.pitch import GPE_THRESHOLD, PitchConfig, f1_from_counts

__all__ = ["PitchItem", "PitchTrainConfig", "load_pitch_net", "prepare_items", "score", "train_pitch_net"]

logger = logging.getLogger(__name__)

FORMAT = "waveflow-pitchnet"
WEIGHTS, META = "pitchnet.safetensors", "pitchnet.json"


@dataclass(frozen=True)
class PitchTrainConfig:
    """Optimisation of ``waveflow train-pitch``."""

    steps: int = 3000
    minutes: float | None = None  # wall-clock budget (stops early; None: the step count only)
    hidden: int = 128
    lr: float = 2e-3  # one-cycle peak
    batch: int = 16  # crops per step
    frames: int = 128  # frames per crop
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "hidden", "batch", "frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"minutes: expected a positive number, got {self.minutes!r}")


@dataclass
class PitchItem:
    """One file's network inputs and labels on the mel frames."""

    name: str
    speaker: str
    logmel: Tensor  # (n_mels, F) float32
    rho: Tensor  # (lags, F) float32
    f0: Tensor  # (F,) Hz, 0 where unvoiced
    voiced: Tensor  # (F,) bool


def _cache_key(path: Path) -> str:
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


def _pyin_labels(
    path: Path, audio: np.ndarray, sample_rate: int, cache: Path
) -> tuple[np.ndarray, np.ndarray]:
    """pYIN ``(f0 Hz with 0 where unvoiced, voiced bool)`` at its 10 ms frames, cached."""
    from waveflow_py.evaluation.pitch import track_pitch

    file = cache / f"{_cache_key(path)}.npz"
    if file.is_file():
        try:
            with np.load(file) as z:
                return z["f0"], z["voiced"].astype(bool)
        except (OSError, ValueError, KeyError):
            logger.warning("pitch label cache %s is unreadable: recomputed", file)
    track = track_pitch(audio, sample_rate, PitchConfig())
    f0, voiced = np.nan_to_num(track.f0).astype(np.float32), track.voiced
    atomic_write(file, lambda tmp: np.savez(tmp, f0=f0, voiced=voiced))
    return f0, voiced


def _on_mel_frames(values: np.ndarray, frames: int, mel: MelConfig) -> np.ndarray:
    """pYIN frame values (10 ms hop, centred) at the mel frames' times (``i * hop / sr``), nearest."""
    pcfg = PitchConfig()
    t = np.arange(frames) * mel.hop_length / mel.sample_rate
    idx = np.clip(np.round(t * pcfg.sample_rate / pcfg.hop_length).astype(int), 0, values.size - 1)
    return values[idx]


def _analysis(mel: MelConfig) -> tuple[Any, Any, int, int]:
    from waveflow_py.audio import MelSpectrogram
    from waveflow_py.sourcefilter.periodicity import MelPeriodicity, lag_range

    lo, hi = lag_range(mel)
    return MelSpectrogram(mel), MelPeriodicity(mel, lo, hi, lag="first"), lo, hi


def prepare_items(clips: list[Any], mel: MelConfig, cache: Path, progress: bool = True) -> list[PitchItem]:
    """Inputs and labels of ``clips`` (:class:`~waveflow_py.evaluation.clips.EvalClip`); an unreadable
    file is reported and skipped."""
    from waveflow_py.audio import AudioError, load_audio
    from waveflow_py.sourcefilter.pitchnet import lag_features

    mel_fn, periodicity, lo, hi = _analysis(mel)
    items: list[PitchItem] = []
    iterator = clips
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(clips, desc="pitch labels", unit="file")
    for clip in iterator:
        try:
            audio, _ = load_audio(clip.path, mel.sample_rate, resample=True)
        except AudioError as e:
            logger.warning("skipped %s: %s", clip.path, e)
            continue
        f0, voiced = _pyin_labels(Path(clip.path), audio.numpy(), mel.sample_rate, cache)
        with torch.no_grad():
            logmel = mel_fn(audio[None].float())
            rho = lag_features(periodicity.frame_analysis(logmel)[2], lo, hi)[0]
        frames = logmel.shape[-1]
        items.append(
            PitchItem(
                name=str(clip.clip_id),
                speaker=str(clip.speaker),
                logmel=logmel[0].float(),
                rho=rho.contiguous(),
                f0=torch.from_numpy(_on_mel_frames(f0, frames, mel).astype(np.float32)),
                voiced=torch.from_numpy(_on_mel_frames(voiced, frames, mel).astype(bool)),
            )
        )
    return items


def _batch(items: list[PitchItem], cfg: PitchTrainConfig, rng: np.random.Generator) -> tuple[Tensor, ...]:
    chosen = [items[i] for i in rng.integers(len(items), size=cfg.batch)]
    length = min(cfg.frames, *(it.logmel.shape[-1] for it in chosen))
    parts: list[list[Tensor]] = [[], [], [], []]
    for it in chosen:
        s = int(rng.integers(it.logmel.shape[-1] - length + 1))
        for p, v in zip(parts, (it.logmel, it.rho, it.f0, it.voiced), strict=True):
            p.append(v[..., s : s + length])
    return tuple(torch.stack(p) for p in parts)


@torch.no_grad()
def score(net: torch.nn.Module, items: list[PitchItem]) -> dict[str, dict[str, float]]:
    """Per speaker (and ``"all"``): V/UV F1 of the predicted voicing (probability >= 0.5) and the gross
    pitch error (share of frames voiced in both whose F0 is off by more than 20 %), on the mel frames,
    against pYIN on the reference."""
    from waveflow_py.sourcefilter.pitchnet import MelPitchNet

    counts: dict[str, np.ndarray] = {}
    was = net.training
    net.eval()
    for it in items:
        f0, prob = MelPitchNet.decode(net(it.logmel[None], it.rho[None]))
        pv, v = prob[0] >= 0.5, it.voiced
        both = pv & v
        bad = (torch.abs(f0[0][both] / it.f0[both] - 1) > GPE_THRESHOLD).sum()
        row = np.array(
            [
                float((pv & v).sum()),
                float((pv & ~v).sum()),
                float((~pv & v).sum()),
                float(both.sum()),
                float(bad),
            ]
        )
        for key in (it.speaker, "all"):
            counts[key] = counts.get(key, 0) + row
    net.train(was)
    out = {}
    for key, (tp, fp, fn, nb, bad) in counts.items():
        f1 = f1_from_counts(tp, fp, fn, empty=float("nan"))
        out[key] = {"vuv_f1": f1, "gpe": bad / nb if nb else float("nan"), "frames_voiced": tp + fn}
    return out


def train_pitch_net(
    data: str | Path, out_dir: str | Path, mel: MelConfig, cfg: PitchTrainConfig, progress: bool = True
) -> dict[str, Any]:
    """Train on ``data``'s train split (:func:`~waveflow_py.evaluation.clips.find_clips`), score the dev
    split, write ``out_dir/pitchnet.safetensors`` and ``pitchnet.json``; returns the JSON's content."""
    from safetensors.torch import save_file

    from waveflow_py.evaluation.clips import find_clips
    from waveflow_py.sourcefilter.periodicity import lag_range
    from waveflow_py.sourcefilter.pitchnet import MelPitchNet, pitch_loss

    if not Path(data).exists():
        raise FileNotFoundError(f"pitch training data not found: {data}")
    try:
        train_clips = find_clips(data, "train")
    except ValueError as e:
        raise ValueError(f"{data}: no train split to learn from ({e})") from e
    out = Path(out_dir)
    cache = out / "labels"
    cache.mkdir(parents=True, exist_ok=True)
    try:
        dev_clips = find_clips(data, "dev")
    except ValueError:
        dev_clips = []
        logger.info("%s: no dev split: the predictor is not scored", data)
    train = prepare_items(train_clips, mel, cache, progress)
    if not train:
        raise ValueError(f"{data}: no readable training file")
    dev = prepare_items(dev_clips, mel, cache, progress) if dev_clips else []
    lo, hi = lag_range(mel)
    torch.manual_seed(cfg.seed)
    net = MelPitchNet(mel.n_mels, hi - lo + 1, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    rng = np.random.default_rng(cfg.seed)
    start, step = time.monotonic(), 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="train-pitch", unit="step")
    for step in range(1, cfg.steps + 1):
        logmel, rho, f0, voiced = _batch(train, cfg, rng)
        bce, ce = pitch_loss(net(logmel, rho), f0, voiced)
        opt.zero_grad(set_to_none=True)
        (bce + ce).backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update()
            if step % 50 == 0:
                bar.set_postfix(bce=f"{float(bce):.3f}", ce=f"{float(ce):.3f}")
        if cfg.minutes is not None and time.monotonic() - start > 60 * cfg.minutes:
            logger.info("train-pitch: time budget of %g minutes reached at step %d", cfg.minutes, step)
            break
    if bar is not None:
        bar.close()
    net.eval()
    meta = {
        "format": FORMAT,
        "version": 1,
        "mel": to_dict(mel),
        "hidden": cfg.hidden,
        "lags": hi - lo + 1,
        "min_lag": lo,
        "max_lag": hi,
        "steps": step,
        "minutes": round((time.monotonic() - start) / 60, 2),
        "train_files": len(train),
        "config": to_dict(cfg),
        "labels": PitchConfig().describe(),
        "dev": score(net, dev) if dev else None,
    }
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write(out / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    atomic_write_text(out / META, json.dumps(meta, indent=2) + "\n")
    return meta


def load_pitch_net(path: str | Path, mel: MelConfig, hidden: int) -> dict[str, Tensor]:
    """The weights written by :func:`train_pitch_net` (``path``: its directory or the ``.safetensors``),
    checked against the model's mel settings and ``hidden``; ``ValueError`` names what differs."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    folder = p if p.is_dir() else p.parent
    weights, meta_file = folder / WEIGHTS, folder / META
    if not weights.is_file() or not meta_file.is_file():
        raise FileNotFoundError(
            f"pitch predictor: expected {WEIGHTS} and {META} in {folder} (waveflow train-pitch)"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_file}: unreadable ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_file}: not a {FORMAT} file")
    if meta.get("mel") != to_dict(mel):
        raise ValueError(f"{folder}: the pitch predictor was trained on other mel settings than the model's")
    if meta.get("hidden") != hidden:
        raise ValueError(
            f"{folder}: hidden {meta.get('hidden')} but the model's source_pitch_hidden is {hidden}"
        )
    try:
        return load_file(str(weights))
    except (OSError, SafetensorError) as e:
        raise ValueError(f"{weights}: unreadable ({e})") from e

"""Builds the pieces of a run from an :class:`ExperimentConfig`: device, process group, data, model, mel
front end (on the training device), optimizer, EMA, GradScaler, autocast and the DDP/compiled module."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from waveflow_py.config import ExperimentConfig
from waveflow_py.train.adversarial import Adversary, Discriminators, build_adversary
from waveflow_py.train.data import (
    DevSet,
    SegmentDataset,
    StepSampler,
    collate_segments,
    list_corpus,
    scan_audio,
)
from waveflow_py.train.distributed import DistInfo, cleanup_distributed, init_distributed
from waveflow_py.train.ema import EMA
from waveflow_py.train.objective import TrainingObjective

__all__ = ["RunParts", "build_parts", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` if CUDA is available, else ``cpu``; other names as given."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available (use 'auto' or 'cpu')")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


@dataclass
class RunParts:
    """Everything the loop needs; ``train_module(audio, mel, step, critic) -> ObjectiveTerms`` is the
    DDP/compiled :class:`~waveflow_py.train.objective.TrainingObjective` (``objective``, unwrapped);
    ``adversary``: the discriminators and their optimizer when the adversarial terms are on."""

    exp: ExperimentConfig
    dist: DistInfo
    device: torch.device
    model: nn.Module
    train_module: nn.Module
    objective: TrainingObjective
    mel_fn: nn.Module
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    scaler: Any
    amp_dtype: torch.dtype | None
    train_set: SegmentDataset
    dev: DevSet | None
    adversary: Adversary | None = None

    @property
    def critic(self) -> Discriminators | None:
        """The discriminators the objective's adversarial terms use (None: off)."""
        return None if self.adversary is None else self.adversary.critic

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def make_loader(self, start_step: int) -> DataLoader:
        cfg = self.exp.train
        sampler = StepSampler(cfg.batch_size, start_step, cfg.steps, self.dist.rank, self.dist.world_size)
        return DataLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            sampler=sampler,
            collate_fn=collate_segments,
            num_workers=self.exp.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )


def _load_data(exp: ExperimentConfig, out_dir: Path, is_main: bool) -> tuple[SegmentDataset, DevSet | None]:
    d = exp.data
    mel = exp.model_config().mel
    sr = mel.sample_rate
    min_train = max(int(d.min_seconds * sr), d.segment_length)
    train_scan = scan_audio(
        list_corpus(d, d.train_split), sr, min_train, cache=d.cache_audio, peak_normalize=d.peak_normalize
    )
    dev_paths: list[Path] = []
    try:
        dev_paths = list_corpus(d, d.dev_split)
    except FileNotFoundError as e:
        logger.warning("no dev split (%s): validation disabled", e)
    if d.dev_max_items is not None:
        dev_paths = spread(dev_paths, d.dev_max_items)
    dev_scan = scan_audio(
        dev_paths,
        sr,
        max(int(d.min_seconds * sr), mel.hop_length),
        cache=d.cache_audio,
        peak_normalize=d.peak_normalize,
    )
    logger.info("data: %s; %s", train_scan.summary(d.train_split), dev_scan.summary(d.dev_split))
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        scans = ((d.train_split, train_scan), (d.dev_split, dev_scan))
        lines = [f"{split}\t{path}\t{why}" for split, scan in scans for path, why in scan.skipped]
        (out_dir / "skipped.txt").write_text(
            f"# {len(lines)} file(s) skipped (split, path, reason)\n" + "".join(x + "\n" for x in lines),
            encoding="utf-8",
        )
    train_set = SegmentDataset(train_scan.items, d.segment_length, exp.train.seed, sr, d.peak_normalize)
    max_samples = None if d.dev_max_seconds is None else int(d.dev_max_seconds * sr)
    dev = None
    if dev_scan.items:
        dev = DevSet(dev_scan.items, mel.hop_length, max_samples, sr, d.peak_normalize)
    return train_set, dev


def spread(paths: list[Path], n: int) -> list[Path]:
    """``n`` of ``paths`` evenly spaced over the (sorted) list, so a capped dev set spans every speaker of a
    corpus sorted by speaker instead of being the first speaker's files."""
    if n >= len(paths):
        return list(paths)
    if n <= 1:
        return list(paths[:n])
    return [paths[round(i * (len(paths) - 1) / (n - 1))] for i in range(n)]


def _build_model(exp: ExperimentConfig, factory: Callable[[Any], nn.Module] | None) -> nn.Module:
    cfg = exp.model_config()
    if factory is not None:
        return factory(cfg)
    from waveflow_py.models import build_model

    return build_model(exp.model_type, cfg)


def _precision(exp: ExperimentConfig, device: torch.device) -> tuple[torch.dtype | None, Any]:
    prec = exp.train.precision
    if prec == "fp32":
        return None, None
    if device.type == "cpu" and prec == "bf16":
        logger.warning(
            "train.precision=bf16 on a CPU: faster than fp32 on some CPUs and slower on others with the "
            "same flags; measure it on this machine first (waveflow bench --dtype fp32 bf16)"
        )
        return torch.bfloat16, None
    if device.type != "cuda":
        logger.warning("train.precision=%s needs CUDA; training in fp32 on %s", prec, device)
        return None, None
    if prec == "bf16":
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _wrap(objective: TrainingObjective, dist: DistInfo, device: torch.device, compile: bool) -> nn.Module:
    """The objective module, in DistributedDataParallel when distributed, compiled when asked (one forward
    holds the NLL and the sampled terms, so DDP sees every gradient)."""
    module: nn.Module = objective
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        module = torch.compile(module)
    return module


def build_parts(
    exp: ExperimentConfig, out_dir: Path, model_factory: Callable[[Any], nn.Module] | None = None
) -> RunParts:
    cfg = exp.train
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    pre_device = resolve_device(cfg.device)
    dist = init_distributed(pre_device.type)
    device = resolve_device(cfg.device, dist.local_rank)
    try:
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        train_set, dev = _load_data(exp, out_dir, dist.is_main)
        from waveflow_py.audio import MelSpectrogram

        model = _build_model(exp, model_factory).to(device)
        mel_fn = MelSpectrogram(exp.model_config().mel).to(device)
        optimizer = torch.optim.Adam(
            model.parameters(),
            lr=cfg.lr,
            betas=tuple(cfg.adam_betas),
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
        )
        ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        amp_dtype, scaler = _precision(exp, device)
        # the sampling settings are the run's: the Trainer sets them (objective.sampling)
        objective = TrainingObjective(model, cfg.objective, mel_fn, seed=cfg.seed)
        objective.check_segment(exp.data.segment_length, exp.model_config().mel.hop_length)
        train_module = _wrap(objective, dist, device, cfg.compile)
        n_params = sum(p.numel() for p in model.parameters())
        logger.info(
            "model %s: %.3fM parameters on %s (%s)",
            exp.model_type,
            n_params / 1e6,
            device,
            "fp32" if amp_dtype is None and scaler is None else cfg.precision,
        )
        adversary = build_adversary(cfg.objective, dist, device) if cfg.objective.adversarial_on else None
        if adversary is not None:
            n_disc = sum(p.numel() for p in adversary.critic.parameters())
            logger.info("discriminators: %.3fM parameters (training only)", n_disc / 1e6)
        return RunParts(
            exp,
            dist,
            device,
            model,
            train_module,
            objective,
            mel_fn,
            optimizer,
            ema,
            scaler,
            amp_dtype,
            train_set,
            dev,
            adversary,
        )
    except BaseException:
        cleanup_distributed(dist)
        raise

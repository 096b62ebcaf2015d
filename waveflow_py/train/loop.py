"""The training loop: maximum likelihood training of a flow vocoder (WaveFlow, Ping et al. 2020; WaveGlow,
Prenger et al. 2019) with Adam, an LR schedule, gradient clipping, mixed precision on CUDA, DDP, optional
``torch.compile``, EMA weights, atomic checkpoints, exact resume and validation.

The loss is ``-model.log_prob(audio, mel).mean()`` in nats per sample; mels are computed on the training
device from the audio batch. The data for step ``s`` is a pure function of ``(seed, s, rank)`` (see
:mod:`waveflow_py.train.data`), so resuming from a checkpoint replays exactly what a straight run would do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from waveflow_py.config import UNSEEN_STFT_RESOLUTIONS, ExperimentConfig, source_filter_of, to_dict
from waveflow_py.flows.base import NonFiniteError
from waveflow_py.sampling import resolve_sampling
from waveflow_py.train import checkpoint as ckpt
from waveflow_py.train.distributed import DistInfo, all_gather_objects, any_true, barrier
from waveflow_py.train.init_weights import load_pitch_net_into, release_weights
from waveflow_py.train.logging import MetricsLogger, bits_per_sample
from waveflow_py.train.schedule import lr_at
from waveflow_py.train.setup import RunParts, build_parts

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer", "train"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised after ``train.max_nonfinite`` consecutive steps had a non-finite loss or gradient."""


@dataclass
class TrainResult:
    """What a run did: the final step, its directory, ``(step, loss)`` of this rank's last 100k steps and
    the dev history (rank 0)."""

    step: int
    out_dir: Path
    losses: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=100_000))
    dev: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    skipped_steps: int = 0
    release: Path | None = None
    stopped_by_budget: bool = False  # train.max_minutes ran out before train.steps


class Trainer:
    """Owns one run. ``Trainer(exp, out_dir, resume).run()``; see :func:`train`."""

    def __init__(
        self,
        exp: ExperimentConfig,
        out_dir: str | Path | None = None,
        resume: str | Path | bool | None = None,
        model_factory: Callable[[Any], nn.Module] | None = None,
    ) -> None:
        self.exp = exp
        self.cfg = exp.train
        self.out_dir = Path(out_dir if out_dir is not None else exp.train.out_dir)
        self.damaged: list[Path] = []  # damaged checkpoints skipped on resume: pruned at the next save
        if resume:  # fail fast, before the data are scanned
            resume, self.damaged = ckpt.find_checkpoint(self.out_dir if resume is True else resume)
        self.parts: RunParts = build_parts(exp, self.out_dir, model_factory)
        self.dist: DistInfo = self.parts.dist
        self.device = self.parts.device
        self.step = 0
        self.consecutive_nonfinite = 0
        self.skipped_steps = 0
        self.clock = _Clock()
        self.init_release: Path | None = None  # the release a fine-tuning run started from
        self._needs_pitch_net = False  # init_from added a learned pitch predictor (weights: train.pitch_net)
        self.result = TrainResult(0, self.out_dir)
        self.resumed = bool(resume)
        try:
            if resume:
                self._resume(resume)
            elif self.cfg.init_from:
                self._init_from(self.cfg.init_from)
                self.step = self.cfg.init_step
                if self.step:
                    logger.info(
                        "the run starts at step %d of %d (train.init_step)", self.step, exp.train.steps
                    )
            else:
                self._calibrate_envelope()
            if not resume:
                self._load_pitch_net()
        except BaseException:
            from waveflow_py.train.distributed import cleanup_distributed

            cleanup_distributed(self.dist)
            raise
        from waveflow_py.train.release_writer import inherited_sampling

        # a fine-tuning run keeps its release's tuned sampling settings: the model's release level (what
        # its release stores), and, under train.val_temperature when set, the run's (its validation and
        # its sampled objective terms, which listen as the release will; the one rule)
        self.release_sampling = inherited_sampling(self.init_release)
        self.parts.model.sampling = self.release_sampling
        self.sampling = resolve_sampling(self.release_sampling, temperature=self.cfg.val_temperature)
        self.parts.objective.sampling = self.sampling
        self.metrics = MetricsLogger(
            self.out_dir, enabled=self.dist.is_main, tensorboard=self.cfg.tensorboard
        )

    # ------------------------------------------------------------------ checkpoints
    def _config_dict(self) -> dict[str, Any]:
        d = to_dict(self.exp)
        d["model"] = to_dict(self.exp.model_config())  # resolved: the preset is folded in
        d["mel_preset"] = None
        return d

    def _save(self) -> None:
        p = self.parts
        rng = all_gather_objects(self.dist, ckpt.capture_rng())  # every rank's RNG, gathered on all
        if not self.dist.is_main:
            barrier(self.dist)
            return
        state = {
            "rng": rng,
            "world_size": self.dist.world_size,
            "data": {"next_step": self.step, "seed": self.cfg.seed},
            "scaler": p.scaler.state_dict() if p.scaler is not None else None,
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "skipped_steps": self.skipped_steps,
            "clock": self.clock.totals(),
            "init_from": None if self.init_release is None else str(self.init_release),
        }
        extra: dict[str, Any] = {}
        if p.adversary is not None:  # the discriminators: training-only files of the step directory
            extra, state["discriminator"] = p.adversary.checkpoint_parts()
        path = ckpt.save_checkpoint(
            self.out_dir / "checkpoints",
            self.step,
            model=p.model,
            optimizer=p.optimizer,
            config=self._config_dict(),
            state=state,
            ema=p.ema.state_dict() if p.ema is not None else None,
            keep_last_k=self.cfg.keep_last_k,
            damaged=self.damaged,
            extra=extra,
        )
        self.damaged = []
        logger.info("saved checkpoint %s", path)
        barrier(self.dist)

    def _resume(self, where: str | Path) -> None:
        data = ckpt.load_checkpoint(where, verify=False)  # resolve_checkpoint verified it in __init__
        ckpt.check_config_matches(data["config"], self._config_dict(), ("model_type", "model"))
        p = self.parts
        ckpt.load_model_weights(p.model, data["model"])
        ckpt.optimizer_from_files(p.optimizer, data["optimizer"], data["state"]["optimizer_param_groups"])
        if p.ema is not None:
            if "ema" not in data:
                raise ckpt.CheckpointMismatch(f"{data['path']}: has no EMA weights but train.ema_decay > 0")
            p.ema.load_state_dict(data["ema"])
        st = data["state"]
        if p.adversary is not None:
            p.adversary.restore(data["extra"], st.get("discriminator"), int(st["step"]))
        elif "discriminator" in data["extra"]:
            logger.info("the checkpoint's discriminators are not used: the adversarial terms are off")
        if p.scaler is not None and st.get("scaler"):
            p.scaler.load_state_dict(st["scaler"])
        rngs = st["rng"]
        if len(rngs) == self.dist.world_size:
            ckpt.restore_rng(rngs[self.dist.rank])
        else:
            logger.warning(
                "checkpoint has %d RNG state(s) for %d process(es): RNG not restored",
                len(rngs),
                self.dist.world_size,
            )
        self.step = int(st["step"])
        self.consecutive_nonfinite = int(st.get("consecutive_nonfinite", 0))
        self.skipped_steps = int(st.get("skipped_steps", 0))
        self.clock = _Clock(**st.get("clock", {}))
        self.init_release = Path(st["init_from"]) if st.get("init_from") else None
        if self.dist.is_main:
            _truncate_metrics(self.out_dir / "metrics.jsonl", self.step)
        logger.info("resumed from %s at step %d", data["path"], self.step)

    def _init_from(self, release: str) -> None:
        """Start from a release's weights (fine-tuning; ``init_weights.release_weights`` checks that its
        model fits). The optimizer starts fresh; the step at ``train.init_step`` (0 unless set)."""
        info, weights, self._needs_pitch_net = release_weights(self.exp, self.parts.model, release)
        ckpt.load_model_weights(self.parts.model, weights, what=f"release {info.path}")
        if self.parts.ema is not None:
            self.parts.ema.load_state_dict(self.parts.model.state_dict())
        self.init_release = info.path
        logger.info(
            "initialised the weights from release %s (%s)", info.path, info.provenance.get("steps", "?")
        )

    def _load_pitch_net(self) -> None:
        """``train.pitch_net`` into the harmonic source's learned pitch predictor (a run's start only)."""
        if (
            load_pitch_net_into(self.exp, self.parts.model, self._needs_pitch_net)
            and self.parts.ema is not None
        ):
            self.parts.ema.load_state_dict(self.parts.model.state_dict())

    def _calibrate_envelope(self, segments: int = 32) -> None:
        """A new run with an envelope prior: scale the excitation to unit variance on ``segments`` training
        segments (items ``2**61 + j``: the same on every rank, never a training step's data)."""
        model = self.parts.model
        calibrate = getattr(model, "calibrate_envelope", None)
        if calibrate is None or source_filter_of(model.config).envelope == "none":
            return
        ds = self.parts.train_set
        audio = torch.stack([ds[2**61 + j] for j in range(segments)]).to(self.device)
        with torch.no_grad():
            mel = self.parts.mel_fn(audio)
        scale = calibrate(audio, mel)
        if self.parts.ema is not None:
            self.parts.ema.load_state_dict(model.state_dict())
        logger.info("envelope calibrated on %d training segments (excitation scale %.4g)", segments, scale)

    # ------------------------------------------------------------------ one step
    def _train_step(self, audio: Tensor) -> tuple[dict[str, float], float | None]:
        """One optimizer step (then a discriminator step on the steps with the adversarial terms); returns
        ``(terms, grad_norm)``: the objective's terms (``"loss"``, the minimised sum, and ``"nll"`` always;
        the sampled terms and ``"disc_loss"`` on their steps), grad_norm None when the step was skipped."""
        p, cfg = self.parts, self.cfg
        for group in p.optimizer.param_groups:
            group["lr"] = lr_at(self.step, cfg)
        audio = audio.to(self.device, non_blocking=True)
        with torch.no_grad():
            mel = p.mel_fn(audio)
        p.optimizer.zero_grad(set_to_none=True)
        try:
            with p.autocast():
                terms = p.train_module(audio, mel, self.step, p.critic)
                loss = terms.loss(cfg.objective).float()
            values = {"loss": float(loss.detach()), **terms.scalars()}
        except NonFiniteError as e:  # an intermediate overflowed (e.g. an unbounded exp scale): the same
            logger.debug("step %d: %s", self.step, e)  # event as a non-finite loss, on this rank only
            values = {"loss": math.inf, "nll": math.inf}
        if any_true(self.dist, not math.isfinite(values["loss"]), self.device):
            return values, None
        if p.scaler is not None:
            p.scaler.scale(loss).backward()
            p.scaler.unscale_(p.optimizer)
        else:
            loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(p.model.parameters(), max_norm))
        if p.scaler is not None:  # fp16: the scaler skips overflowing steps itself and lowers the scale
            p.scaler.step(p.optimizer)
            p.scaler.update()
        elif not math.isfinite(grad_norm):
            return values, None
        else:
            p.optimizer.step()
        if p.ema is not None:
            p.ema.update(p.model)
        if p.adversary is not None and terms.crops is not None:
            values.update(p.adversary.step(*terms.crops))
        return values, grad_norm

    def _note_nonfinite(self, loss: float) -> None:
        self.consecutive_nonfinite += 1
        self.skipped_steps += 1
        logger.warning(
            "step %d: non-finite loss/gradient (loss=%s): step skipped (%d in a row, limit %d)",
            self.step,
            loss,
            self.consecutive_nonfinite,
            self.cfg.max_nonfinite,
        )
        if self.consecutive_nonfinite >= self.cfg.max_nonfinite:
            raise NonFiniteLossError(
                f"stopping at step {self.step}: {self.consecutive_nonfinite} consecutive non-finite losses "
                f"(train.max_nonfinite={self.cfg.max_nonfinite}); lower train.lr, set train.grad_clip, or "
                f"use fp32/bf16 instead of fp16; resume from the last checkpoint"
            )

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        from waveflow_py.train.validate import ValidationResult, clips_mrstft, dev_nll, vocode_clips

        p = self.parts
        if self.dist.is_main and p.dev is not None and len(p.dev) > 0:
            model = p.model
            was_training = model.training
            model.eval()
            ctx = p.ema.swapped_in(model) if p.ema is not None else contextlib.nullcontext(model)
            with ctx:
                nll = dev_nll(model, p.mel_fn, p.dev, self.device)
                l1, clips = vocode_clips(
                    model,
                    p.mel_fn,
                    p.dev,
                    self.cfg.val_clips,
                    self.sampling,
                    self.device,
                    self.cfg.seed,
                )
            model.train(was_training)
            res = ValidationResult(
                nll,
                l1,
                clips,
                mrstft=clips_mrstft(clips),
                mrstft_unseen=clips_mrstft(clips, UNSEEN_STFT_RESOLUTIONS),
            )
            self.metrics.scalars(self.step, "dev", {**res.scalars(), **self.clock.minutes()})
            self.result.dev.append((self.step, res.scalars()))
            spectral = "".join(
                f", {label} {value:.4f}"
                for label, value in (("mel L1", l1), ("MR-STFT", res.mrstft), ("unseen", res.mrstft_unseen))
                if value is not None
            )
            bits = bits_per_sample(nll)
            logger.info("step %d: dev NLL %.4f nats/sample (%.4f bits)%s", self.step, nll, bits, spectral)
            sr = self.exp.sample_rate
            for c in clips:
                self.metrics.audio(self.step, f"dev/{c.name}/generated", c.generated, sr)
                if self.step == self.cfg.val_every or not self.result.dev[:-1]:
                    self.metrics.audio(self.step, f"dev/{c.name}/reference", c.reference, sr)
                self.metrics.spectrogram(
                    self.step,
                    f"dev/{c.name}/mel",
                    [c.reference_mel, c.generated_mel],
                    ["reference", "generated"],
                )
        barrier(self.dist)

    # ------------------------------------------------------------------ main loop
    def run(self) -> TrainResult:
        from tqdm.auto import tqdm

        cfg, p = self.cfg, self.parts
        loader = p.make_loader(self.step)
        samples_per_step = cfg.batch_size * self.dist.world_size * self.exp.data.segment_length
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not (self.dist.is_main and cfg.progress),
            dynamic_ncols=True,
            unit="step",
        )
        p.model.train()
        t0, s0 = time.perf_counter(), self.step
        window: dict[str, list[float]] = {}  # finite steps' terms since the last log line (means logged)
        if not self.resumed and cfg.val_at_start:
            self._validate()
        budget = _Budget(cfg.max_minutes, cfg.budget_clock, self.clock)
        self.clock.start()
        try:
            for audio in loader:
                terms, grad_norm = self._train_step(audio)
                if grad_norm is None:
                    self._note_nonfinite(terms["loss"])
                else:
                    self.consecutive_nonfinite = 0
                    for key, value in terms.items():
                        window.setdefault(key, []).append(value)
                self.step += 1
                self.result.losses.append((self.step, terms["loss"]))
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    dt = max(time.perf_counter() - t0, 1e-9)
                    rate = (self.step - s0) / dt
                    means = {k: sum(v) / len(v) for k, v in window.items()}
                    self._log_train(means, grad_norm, rate, rate * samples_per_step)
                    mean = means.get("nll", float("nan"))
                    bar.set_postfix(
                        nll=f"{mean:.3f}",
                        steps_s=f"{rate:.2f}",
                        ksamples_s=f"{rate * samples_per_step / 1e3:.1f}",
                    )
                    t0, s0, window = time.perf_counter(), self.step, {}
                bar.update(1)
                self.clock.tick()
                out_of_time = self.step < cfg.steps and budget.spent()
                t_pause = time.perf_counter()  # validation and saving do not count in steps/s
                if self.step % cfg.val_every == 0 or self.step == cfg.steps or out_of_time:
                    self._validate()
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or out_of_time:
                    self._save()
                t0 += time.perf_counter() - t_pause
                self.clock.start()  # validation and checkpoints do not count as training time
                if out_of_time:
                    self.result.stopped_by_budget = True
                    logger.info(
                        "step %d: time budget of %s %s minutes spent: stopping (--resume goes on)",
                        self.step,
                        cfg.max_minutes,
                        cfg.budget_clock,
                    )
                    break
        finally:
            bar.close()
            self.metrics.close()
        self.result.step = self.step
        self.result.skipped_steps = self.skipped_steps
        if cfg.export_release and self.dist.is_main:
            self.result.release = self._export()
        return self.result

    def _log_train(
        self, means: dict[str, float], grad_norm: float | None, steps_s: float, samples_s: float
    ) -> None:
        """``means``: each objective term's mean over the finite steps since the last log line (``nll``
        NaN when there was none); ``grad_norm``: of the last step."""
        loss = means.get("nll", float("nan"))
        values = {
            **means,
            "nll": loss,
            "bits_per_sample": bits_per_sample(loss) if math.isfinite(loss) else loss,
            "lr": self.parts.optimizer.param_groups[0]["lr"],
            "steps_per_s": steps_s,
            "samples_per_s": samples_s,
            "skipped_steps": float(self.skipped_steps),
            **self.clock.minutes(),
        }
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        self.metrics.scalars(self.step, "train", values)
        logger.debug("step %d: nll %.4f grad %s", self.step, loss, grad_norm)

    def _export(self) -> Path | None:
        from waveflow_py.train.release_writer import run_provenance, write_release

        p = self.parts
        provenance = {
            "data": self.exp.data.root,
            "steps": self.step,
            "model_type": self.exp.model_type,
            "ema": p.ema is not None,
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "precision": self.cfg.precision,
            **run_provenance(self.clock.totals(), self.init_release),
        }
        ctx = p.ema.swapped_in(p.model) if p.ema is not None else contextlib.nullcontext(p.model)
        with ctx as model:
            return write_release(model.eval(), self.out_dir, provenance, sampling=self.release_sampling)


class _Clock:
    """Training time of the run so far (all sessions), wall and this process's CPU time, in seconds.

    Only optimizer steps count (``start()`` before, ``tick()`` after); validation and checkpoints do not.
    Stored in checkpoints, so learning curves can be drawn against CPU-minutes across resumes.
    """

    def __init__(self, wall_s: float = 0.0, cpu_s: float = 0.0) -> None:
        self.wall_s, self.cpu_s = float(wall_s), float(cpu_s)
        self._wall0: float | None = None
        self._cpu0 = 0.0

    def start(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def tick(self) -> None:
        if self._wall0 is not None:
            self.wall_s += time.perf_counter() - self._wall0
            self.cpu_s += time.process_time() - self._cpu0
        self.start()

    def totals(self) -> dict[str, float]:
        return {"wall_s": self.wall_s, "cpu_s": self.cpu_s}

    def minutes(self) -> dict[str, float]:
        return {"wall_minutes": self.wall_s / 60, "cpu_minutes": self.cpu_s / 60}


class _Budget:
    """``train.max_minutes`` of this invocation. ``"wall"``: elapsed time, everything included (a run given
    60 minutes ends after about 60 minutes). ``"cpu"``: this process's CPU time spent in optimizer steps
    only, validation excluded (fair between candidates that share a machine, whatever their dev cost)."""

    def __init__(self, minutes: float | None, clock: str, run_clock: _Clock) -> None:
        self.seconds = None if minutes is None else 60.0 * minutes
        self.clock, self.run_clock = clock, run_clock
        self.t0 = self._read()

    def _read(self) -> float:
        return self.run_clock.cpu_s if self.clock == "cpu" else time.perf_counter()

    def spent(self) -> bool:
        return self.seconds is not None and self._read() - self.t0 >= self.seconds


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after ``step`` by an interrupted run, so a resumed curve has no duplicates."""
    if not path.is_file():
        return
    keep = [r for r in MetricsLogger.read(path) if int(r["step"]) <= step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    tmp.replace(path)


def train(
    exp: ExperimentConfig,
    out_dir: str | Path | None = None,
    resume: str | Path | bool | None = None,
    model_factory: Callable[[Any], nn.Module] | None = None,
) -> TrainResult:
    """Train ``exp`` into ``out_dir`` (default ``exp.train.out_dir``). ``resume``: True (latest checkpoint of
    ``out_dir``), a run / checkpoints / step directory, or None. ``model_factory(model_config)`` replaces
    the registry model (tests)."""
    trainer = Trainer(exp, out_dir, resume, model_factory)
    try:
        return trainer.run()
    finally:
        from waveflow_py.train.distributed import cleanup_distributed

        cleanup_distributed(trainer.dist)

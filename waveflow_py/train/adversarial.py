"""A light adversarial stage for fine-tuning: small discriminators on the crops the objective samples.

Two families of discriminators judge a waveform ``(B, T)``:

* the multi-period discriminator of HiFi-GAN (Kong et al. 2020, "HiFi-GAN: Generative Adversarial Networks
  for Efficient and High Fidelity Speech Synthesis", NeurIPS): for each period ``p`` the signal, padded
  to a multiple of ``p``, is read as a ``(T / p, p)`` image and judged by 2-D convolutions with kernel
  ``(5, 1)`` and stride ``(3, 1)`` (the last one stride 1), so each column sees one phase of the period;
* the multi-resolution spectrogram discriminator of UnivNet (Jang et al. 2021, "UnivNet: A Neural Vocoder
  with Multi-Resolution Spectrogram Discriminators for High-Fidelity Waveform Generation", Interspeech):
  2-D convolutions with kernel ``(3, 9)`` (frequency, time), stride ``(1, 2)`` after the first, on the
  log-magnitude STFT (:func:`~waveflow_py.train.objective.stft_magnitude`: Hann window of ``n_fft``,
  centred frames, floored at 1e-7) at several ``(n_fft, hop)``.

Every convolution is weight-normalised and followed by a leaky ReLU (slope 0.1); a last convolution to one
channel gives the scores. The losses are least-squares GAN (Mao et al. 2017, "Least Squares Generative
Adversarial Networks", ICCV) and HiFi-GAN's feature matching, each the mean over the discriminators
(and the hidden layers), so a weight does not change meaning with the number of discriminators:

* discriminator: ``mean_k [ mean (D_k(x) - 1)^2 + mean D_k(x_hat)^2 ]``;
* generator: ``mean_k mean (D_k(x_hat) - 1)^2``;
* feature matching: ``mean_{k, l} mean |f_kl(x) - f_kl(x_hat)|`` over every hidden layer ``l``.

:class:`Adversary` owns the discriminators during training: their DDP wrapper, their Adam optimizer, the
discriminator step and their part of a checkpoint. Nothing here goes into a release.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.config import ObjectiveConfig
from waveflow_py.nn.weight_norm import wn
from waveflow_py.train import checkpoint as ckpt
from waveflow_py.train.distributed import DistInfo, any_true
from waveflow_py.train.objective import stft_magnitude

__all__ = [
    "Outputs",
    "PeriodDiscriminator",
    "SpectrogramDiscriminator",
    "Discriminators",
    "Adversary",
    "discriminator_loss",
    "generator_loss",
    "feature_matching_loss",
    "build_adversary",
]

logger = logging.getLogger(__name__)

_SLOPE = 0.1
# per discriminator: (scores (B, N), hidden features [(B, C, H, W), ...])
Outputs = list[tuple[Tensor, list[Tensor]]]


class _ConvStack(nn.Module):
    """Weight-normalised 2-D convolutions, each followed by a leaky ReLU, then a scoring convolution to one
    channel: ``(B, 1, H, W) -> (scores (B, N), hidden features)``."""

    def __init__(
        self,
        channels: Sequence[int],
        kernel: tuple[int, int],
        strides: Sequence[tuple[int, int]],
        post_kernel: tuple[int, int],
    ) -> None:
        super().__init__()
        pad = (kernel[0] // 2, kernel[1] // 2)
        ins = [1, *channels[:-1]]
        self.convs = nn.ModuleList(
            wn(nn.Conv2d(c_in, c_out, kernel, stride, pad))
            for c_in, c_out, stride in zip(ins, channels, strides, strict=True)
        )
        post_pad = (post_kernel[0] // 2, post_kernel[1] // 2)
        self.post = wn(nn.Conv2d(channels[-1], 1, post_kernel, 1, post_pad))

    def forward(self, h: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), _SLOPE)
            features.append(h)
        return self.post(h).flatten(1), features


class PeriodDiscriminator(nn.Module):
    """One period of HiFi-GAN's multi-period discriminator.

    ``(B, T) -> (scores (B, N), features)``: ``x`` is padded at the end to a multiple of ``period``
    (reflection; zeros when shorter than the padding) and read as ``(B, 1, T' / period, period)``; one
    ``(5, 1)`` convolution per entry of ``channels``, stride ``(3, 1)`` but the last (stride 1).
    """

    def __init__(self, period: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.period = int(period)
        strides = [(3, 1)] * (len(channels) - 1) + [(1, 1)]
        self.stack = _ConvStack(channels, (5, 1), strides, (3, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        B, T = x.shape
        pad = (-T) % self.period
        h = x[:, None]
        if pad:
            h = F.pad(h, (0, pad), mode="reflect" if pad < T else "constant")
        return self.stack(h.reshape(B, 1, (T + pad) // self.period, self.period))


class SpectrogramDiscriminator(nn.Module):
    """One resolution of UnivNet's multi-resolution spectrogram discriminator.

    ``(B, T) -> (scores (B, N), features)``: the log-magnitude STFT ``(B, 1, n_fft // 2 + 1, frames)``
    judged by one ``(3, 9)`` convolution per entry of ``channels`` (stride 1, then ``(1, 2)``: time
    halves), then a ``(3, 3)`` scoring convolution.
    """

    def __init__(self, n_fft: int, hop: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.n_fft, self.hop = int(n_fft), int(hop)
        strides = [(1, 1)] + [(1, 2)] * (len(channels) - 1)
        self.stack = _ConvStack(channels, (3, 9), strides, (3, 3))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.stack(stft_magnitude(x, self.n_fft, self.hop).log()[:, None])


class Discriminators(nn.Module):
    """The multi-period and multi-resolution spectrogram discriminators together.

    ``forward(x (B, T)) -> Outputs``: per discriminator (periods first, then resolutions), the scores
    ``(B, N_k)`` and the hidden features.
    """

    def __init__(
        self,
        periods: Sequence[int],
        period_channels: Sequence[int],
        resolutions: Sequence[tuple[int, int]],
        resolution_channels: Sequence[int],
    ) -> None:
        super().__init__()
        if not periods and not resolutions:
            raise ValueError("Discriminators: no period and no resolution: nothing would judge the audio")
        judges: list[nn.Module] = [PeriodDiscriminator(p, period_channels) for p in periods]
        judges += [SpectrogramDiscriminator(n, h, resolution_channels) for n, h in resolutions]
        self.judges = nn.ModuleList(judges)

    @classmethod
    def from_config(cls, cfg: ObjectiveConfig) -> Discriminators:
        return cls(
            cfg.disc_periods, cfg.disc_period_channels, cfg.disc_resolutions, cfg.disc_resolution_channels
        )

    def forward(self, x: Tensor) -> Outputs:
        if x.dim() != 2 or x.shape[-1] < 2:
            raise ValueError(
                f"Discriminators: expected audio (batch, samples >= 2), got shape {tuple(x.shape)}"
            )
        return [judge(x) for judge in self.judges]

    def generator_terms(
        self, reference: Tensor, generated: Tensor, feature_matching: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """``(least-squares generator loss, feature-matching L1 or None)`` of ``generated`` against
        ``reference`` (both ``(B, T)``). The discriminators' parameters get no gradient; ``generated``
        does. ``feature_matching=False`` skips the reference's forward pass."""
        with _frozen(self):
            fake = self(generated)
            fm = None
            if feature_matching:
                with torch.no_grad():
                    real = self(reference)
                fm = feature_matching_loss(real, fake)
        return generator_loss(fake), fm


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """The parameters of ``module`` need no gradient inside (the graph built here never reaches them)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def discriminator_loss(real: Outputs, fake: Outputs) -> Tensor:
    """Least-squares discriminator loss: real scores -> 1, fake scores -> 0 (mean over discriminators)."""
    terms = [((r - 1) ** 2).mean() + (f**2).mean() for (r, _), (f, _) in zip(real, fake, strict=True)]
    return torch.stack(terms).mean()


def generator_loss(fake: Outputs) -> Tensor:
    """Least-squares generator loss: fake scores -> 1 (mean over discriminators)."""
    return torch.stack([((f - 1) ** 2).mean() for f, _ in fake]).mean()


def feature_matching_loss(real: Outputs, fake: Outputs) -> Tensor:
    """Mean absolute difference of the hidden features of real and fake audio, averaged over every
    (discriminator, layer); the real features are constants."""
    terms = [
        (r.detach() - f).abs().mean()
        for (_, real_feats), (_, fake_feats) in zip(real, fake, strict=True)
        for r, f in zip(real_feats, fake_feats, strict=True)
    ]
    return torch.stack(terms).mean()


def _split(outputs: Outputs, n: int) -> tuple[Outputs, Outputs]:
    """Outputs of a batch ``cat([a (n, T), b])`` as the outputs of ``a`` and of ``b``."""
    first = [(s[:n], [f[:n] for f in feats]) for s, feats in outputs]
    second = [(s[n:], [f[n:] for f in feats]) for s, feats in outputs]
    return first, second


class Adversary:
    """The discriminators of a run, their (DDP) training step, optimizer and checkpoint part.

    Args:
        critic: the discriminators (on the training device).
        cfg: the ``train.objective`` settings (``disc_lr``, ``disc_betas``, ``adversarial_from``, ...).
        dist: the process group (DDP around ``critic`` when distributed).
        device: the training device.
    """

    FILES = ("discriminator", "discriminator_optimizer")  # the checkpoint's safetensors files (stems)

    def __init__(
        self, critic: Discriminators, cfg: ObjectiveConfig, dist: DistInfo, device: torch.device
    ) -> None:
        self.critic, self.cfg, self.dist, self.device = critic, cfg, dist, device
        self.module: nn.Module = critic
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.module = DistributedDataParallel(critic, device_ids=ids)
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.disc_lr, betas=tuple(cfg.disc_betas))

    def step(self, reference: Tensor, generated: Tensor) -> dict[str, float]:
        """One discriminator step on real ``reference`` and (detached) ``generated`` crops ``(B, T)``:
        ``{"disc_loss": loss}``, or ``{}`` when the loss or its gradient is not finite on some rank (the
        step is skipped on every rank)."""
        self.optimizer.zero_grad(set_to_none=True)
        n = reference.shape[0]
        with torch.autocast(device_type=self.device.type, enabled=False):
            real, fake = _split(self.module(torch.cat([reference, generated.detach()])), n)
            loss = discriminator_loss(real, fake)
        value = float(loss.detach())
        if any_true(self.dist, not math.isfinite(value), self.device):
            logger.warning("discriminator loss %s is not finite: discriminator step skipped", value)
            return {}
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(self.critic.parameters(), float("inf")))
        if not math.isfinite(norm):  # gradients are all-reduced: every rank agrees
            logger.warning("discriminator gradient norm %s is not finite: discriminator step skipped", norm)
            return {}
        self.optimizer.step()
        return {"disc_loss": value}

    def checkpoint_parts(self) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
        """``(safetensors files by stem, plain state for state.json)`` of the discriminators."""
        tensors, groups = ckpt.optimizer_to_files(self.optimizer)
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in self.critic.state_dict().items()}
        return {"discriminator": weights, "discriminator_optimizer": tensors}, {
            "optimizer_param_groups": groups
        }

    def restore(
        self, extra: Mapping[str, Mapping[str, Tensor]], state: Mapping[str, Any] | None, step: int
    ) -> None:
        """Load the discriminators and their optimizer from a checkpoint of step ``step`` (``extra``: its
        extra safetensors files, ``state``: its ``state.json["discriminator"]``). A checkpoint without them
        starts fresh discriminators only if no step before ``step`` had the adversarial terms; otherwise
        :class:`~waveflow_py.train.checkpoint.CheckpointMismatch`."""
        if "discriminator" not in extra:
            first = self.cfg.first_adversarial_step()
            if step > first:
                raise ckpt.CheckpointMismatch(
                    f"the checkpoint of step {step} has no discriminator weights, but with "
                    f"train.objective.adversarial_from={self.cfg.adversarial_from} the adversarial terms "
                    f"were on from step {first}; set train.objective.adversarial_from >= {step} to start "
                    f"fresh discriminators"
                )
            logger.info("fresh discriminators: the adversarial terms start at step %d", first)
            return
        try:
            ckpt.load_model_weights(self.critic, extra["discriminator"], what="discriminator")
        except ckpt.CheckpointMismatch as e:
            raise ckpt.CheckpointMismatch(
                f"{e} (set train.objective.disc_periods/disc_resolutions/*_channels to the checkpoint's)"
            ) from e
        groups = (state or {}).get("optimizer_param_groups")
        if groups is None:
            raise ckpt.CheckpointMismatch(
                "the checkpoint has discriminator weights but no discriminator optimizer"
            )
        ckpt.optimizer_from_files(self.optimizer, extra.get("discriminator_optimizer", {}), groups)
        for group in self.optimizer.param_groups:  # this run's settings win
            group["lr"], group["betas"] = self.cfg.disc_lr, tuple(self.cfg.disc_betas)


def build_adversary(cfg: ObjectiveConfig, dist: DistInfo, device: torch.device) -> Adversary:
    """The run's discriminators (from ``cfg``, on ``device``) with their optimizer."""
    return Adversary(Discriminators.from_config(cfg).to(device), cfg, dist, device)

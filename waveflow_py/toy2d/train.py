"""Train flows on the 2-D toy data sets and score them by held-out negative log-likelihood.

``run_toy2d(config)`` trains every requested family on every requested data set (Adam with a
cosine-decayed learning rate, fresh samples each step), scores each on a fixed held-out sample in
nats, and fits the single full-covariance Gaussian (maximum likelihood) that every flow must beat.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from waveflow_py.flows import Flow
from waveflow_py.toy2d.data import DATASETS, get_dataset
from waveflow_py.toy2d.families import FAMILIES, build_flow

__all__ = [
    "Toy2DConfig",
    "ToyResult",
    "GaussianBaseline",
    "train_flow",
    "heldout_nll",
    "run_toy2d",
]

logger = logging.getLogger(__name__)


@dataclass
class Toy2DConfig:
    """Settings of a toy-2D run (loadable from YAML with :func:`waveflow_py.config.load_yaml`)."""

    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    steps: int = 2000  # optimisation steps per (family, data set)
    family_steps: dict[str, int] = field(default_factory=dict)  # per-family override, e.g. {cnf: 400}
    batch_size: int = 256  # fresh samples per step
    lr: float = 1e-3  # Adam learning rate, cosine-decayed to 0 over the run
    family_lr: dict[str, float] = field(default_factory=dict)  # per-family override, e.g. {planar: 5e-3}
    grad_clip: float = 10.0  # max gradient norm (0: off)
    hidden_features: int = 64  # width of every conditioner / dynamics net
    test_size: int = 10_000  # held-out samples for the NLL
    gaussian_fit_size: int = 100_000  # samples the Gaussian baseline is fitted on
    seed: int = 0  # seeds models, training samples and the held-out set
    grid_size: int = 120  # heat-map resolution per axis
    extent: float = 4.5  # heat maps cover [-extent, extent]^2

    def __post_init__(self) -> None:
        for name in self.families:
            if name not in FAMILIES:
                raise ValueError(f"families: unknown family {name!r}; expected some of {list(FAMILIES)}")
        for name in self.datasets:
            get_dataset(name)
        for name, steps in self.family_steps.items():
            if name not in FAMILIES or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"family_steps: expected {{family: positive int}}, got {name!r}: {steps!r}")
        for name, lr in self.family_lr.items():
            if name not in FAMILIES or not isinstance(lr, (int, float)) or not lr > 0:
                raise ValueError(f"family_lr: expected {{family: positive number}}, got {name!r}: {lr!r}")
        for name in ("steps", "batch_size", "hidden_features", "test_size", "gaussian_fit_size", "grid_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not (self.lr > 0 and self.extent > 0 and self.grad_clip >= 0):
            raise ValueError(
                f"expected lr > 0, extent > 0, grad_clip >= 0; got {self.lr}, {self.extent}, {self.grad_clip}"
            )
        if not self.families or not self.datasets:
            raise ValueError("families and datasets must each name at least one entry")

    def steps_for(self, family: str) -> int:
        return self.family_steps.get(family, self.steps)

    def lr_for(self, family: str) -> float:
        return float(self.family_lr.get(family, self.lr))


@dataclass
class ToyResult:
    """Held-out NLL (nats per 2-D point) of one family on one data set."""

    family: str
    dataset: str
    nll: float
    steps: int
    lr: float
    seconds: float
    parameters: int


class GaussianBaseline:
    """Single Gaussian with the maximum-likelihood mean and full covariance of ``x (N, D)``."""

    def __init__(self, x: Tensor) -> None:
        x = x.double()
        self.mean = x.mean(dim=0)
        centred = x - self.mean
        self.cov = centred.T @ centred / x.shape[0]
        self.dist = torch.distributions.MultivariateNormal(self.mean, covariance_matrix=self.cov)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.dist.log_prob(x.double()).to(x.dtype)


def train_flow(
    flow: Flow,
    sample: Callable[[int, torch.Generator], Tensor],
    steps: int,
    *,
    batch_size: int = 256,
    lr: float = 1e-3,
    grad_clip: float = 10.0,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Maximum likelihood by Adam on fresh batches; returns the per-step loss (NLL in nats)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    losses = []
    flow.train()
    for step in range(steps):
        x = sample(batch_size, gen)
        loss = -flow.log_prob(x).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(flow.parameters(), grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    flow.eval()
    return losses


@torch.no_grad()
def log_prob_batched(model: Flow | GaussianBaseline, x: Tensor, batch: int = 4096) -> Tensor:
    """``model.log_prob`` over ``x`` in chunks (keeps CNF / IAF evaluation memory bounded)."""
    return torch.cat([model.log_prob(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def heldout_nll(model: Flow | GaussianBaseline, x: Tensor) -> float:
    """Mean negative log-likelihood of ``x`` in nats per point."""
    return float(-log_prob_batched(model, x).double().mean())


def run_toy2d(
    cfg: Toy2DConfig, on_step: Callable[[str, str, int, float], None] | None = None
) -> tuple[list[ToyResult], dict[str, float], dict[str, float | None], dict[tuple[str, str], Flow]]:
    """Train and score every (family, data set) pair.

    Returns ``(results, gaussian_nll, data_entropy, flows)``: flow results, the fitted Gaussian's
    held-out NLL per data set, the true entropy per data set where the density is known (estimated
    on the held-out sample, else ``None``), and the trained flows keyed by ``(dataset, family)``.
    """
    results: list[ToyResult] = []
    gaussian: dict[str, float] = {}
    entropy: dict[str, float | None] = {}
    flows: dict[tuple[str, str], Flow] = {}
    for d_index, dname in enumerate(cfg.datasets):
        data = get_dataset(dname)
        test = data.sample(cfg.test_size, torch.Generator().manual_seed(10_000 + cfg.seed + d_index))
        fit = data.sample(cfg.gaussian_fit_size, torch.Generator().manual_seed(20_000 + cfg.seed + d_index))
        gaussian[dname] = heldout_nll(GaussianBaseline(fit), test)
        entropy[dname] = None if data.log_prob is None else float(-data.log_prob(test).double().mean())
        for fname in cfg.families:
            torch.manual_seed(cfg.seed)
            flow = build_flow(fname, hidden_features=cfg.hidden_features, seed=cfg.seed)
            init = data.sample(1024, torch.Generator().manual_seed(30_000 + cfg.seed + d_index))
            with torch.no_grad():  # data-dependent initialisation (ActNorm)
                flow.log_prob(init)
            steps = cfg.steps_for(fname)
            start = time.perf_counter()
            train_flow(
                flow,
                data.sample,
                steps,
                batch_size=cfg.batch_size,
                lr=cfg.lr_for(fname),
                grad_clip=cfg.grad_clip,
                generator=torch.Generator().manual_seed(cfg.seed + d_index),
                on_step=None if on_step is None else (lambda s, v, d=dname, f=fname: on_step(d, f, s, v)),
            )
            nll = heldout_nll(flow, test)
            seconds = time.perf_counter() - start
            n_params = sum(p.numel() for p in flow.parameters())
            logger.info(
                "%s on %s: held-out NLL %.3f nats (%d steps, %.1f s)", fname, dname, nll, steps, seconds
            )
            results.append(ToyResult(fname, dname, nll, steps, cfg.lr_for(fname), seconds, n_params))
            flows[(dname, fname)] = flow
    return results, gaussian, entropy, flows

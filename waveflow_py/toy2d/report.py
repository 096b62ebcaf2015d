"""Outputs of a toy-2D run: the Markdown NLL table and the PNG grid of learned densities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from waveflow_py.flows import Flow
from waveflow_py.toy2d.data import get_dataset
from waveflow_py.toy2d.families import FAMILY_TITLES
from waveflow_py.toy2d.train import Toy2DConfig, ToyResult, log_prob_batched

__all__ = ["results_table", "write_results", "plot_densities"]


def results_table(
    results: Sequence[ToyResult], gaussian: dict[str, float], entropy: dict[str, float | None]
) -> str:
    """Markdown table: a row per family (plus the Gaussian and the true entropy), a column per data set."""
    datasets = list(gaussian)
    families = list(dict.fromkeys(r.family for r in results))
    by = {(r.family, r.dataset): r for r in results}
    head = "| model | " + " | ".join(get_dataset(d).title for d in datasets) + " | params | steps | lr |"
    lines = [head, "|" + "---|" * (len(datasets) + 4)]
    gauss = " | ".join(f"{gaussian[d]:.3f}" for d in datasets)
    lines.append(f"| single Gaussian (full-cov. MLE) | {gauss} | 5 | - | - |")
    best = {d: min(r.nll for r in results if r.dataset == d) for d in datasets}
    for f in families:
        row = [by[(f, d)] for d in datasets]
        cells = " | ".join(f"**{r.nll:.3f}**" if r.nll == best[r.dataset] else f"{r.nll:.3f}" for r in row)
        lines.append(
            f"| {FAMILY_TITLES[f]} | {cells} | {row[0].parameters} | {row[0].steps} | {row[0].lr:g} |"
        )
    ent = " | ".join("n/a" if entropy[d] is None else f"{entropy[d]:.3f}" for d in datasets)
    lines.append(f"| *true density (entropy, the lowest possible)* | {ent} | - | - | - |")
    return "\n".join(lines)


def write_results(
    path: str | Path,
    cfg: Toy2DConfig,
    results: Sequence[ToyResult],
    gaussian: dict[str, float],
    entropy: dict[str, float | None],
    command: str,
) -> None:
    """Write ``results.md``: the NLL table (nats per point, held-out, lower is better), timings, command."""
    times = "\n".join(
        f"| {FAMILY_TITLES[r.family]} | {get_dataset(r.dataset).title} | {r.steps} | {r.seconds:.1f} |"
        for r in results
    )
    text = f"""# Toy 2-D density estimation: held-out NLL

Held-out negative log-likelihood in **nats per 2-D point**, mean over {cfg.test_size} fresh samples
(lower is better). Every flow trains with Adam (learning rate in the table, cosine decay to 0),
batch {cfg.batch_size} fresh samples per step, gradient-norm clip {cfg.grad_clip}, hidden width
{cfg.hidden_features}, seed {cfg.seed}. The Gaussian is the maximum-likelihood fit (mean and full
covariance) on {cfg.gaussian_fit_size} samples. The last row is the data's own entropy (estimated on
the held-out sample with the true density) where that density is known in closed form: the lowest
NLL any model can reach. Best flow per data set in bold.

{results_table(results, gaussian, entropy)}

Command:

```
{command}
```

Training and scoring time per run (one CPU thread):

| model | data set | steps | seconds |
|---|---|---|---|
{times}
"""
    Path(path).write_text(text, encoding="utf-8")


@torch.no_grad()
def plot_densities(
    path: str | Path,
    cfg: Toy2DConfig,
    flows: dict[tuple[str, str], Flow],
    *,
    n_scatter: int = 20_000,
    dpi: int = 72,
) -> None:
    """PNG grid: one row per data set; columns are data samples, then each family's density ``p(x)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(d for d, _ in flows))
    families = list(dict.fromkeys(f for _, f in flows))
    n, lim = cfg.grid_size, cfg.extent
    axis = torch.linspace(-lim, lim, n)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    cols = 1 + len(families)
    fig, axes = plt.subplots(len(datasets), cols, figsize=(1.9 * cols, 1.9 * len(datasets)), squeeze=False)
    for i, dname in enumerate(datasets):
        data = get_dataset(dname)
        pts = data.sample(n_scatter, torch.Generator().manual_seed(cfg.seed + 99))
        ax = axes[i][0]
        box = [[-lim, lim], [-lim, lim]]
        ax.hist2d(pts[:, 0].numpy(), pts[:, 1].numpy(), bins=n // 2, range=box, cmap="viridis")
        ax.set_ylabel(data.title, fontsize=9)
        for j, fname in enumerate(families, start=1):
            density = log_prob_batched(flows[(dname, fname)], grid).exp().reshape(n, n)
            axes[i][j].imshow(
                density.numpy(),
                origin="lower",
                extent=(-lim, lim, -lim, lim),
                cmap="viridis",
                interpolation="nearest",
            )
    for j, title in enumerate(["data samples"] + [FAMILY_TITLES[f] for f in families]):
        axes[0][j].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)

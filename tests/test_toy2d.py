"""Toy 2-D recipe: the flows really learn (held-out NLL beats a fitted Gaussian), plus the plumbing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from waveflow_py.cli import main
from waveflow_py.toy2d import (
    DATASETS,
    FAMILIES,
    GaussianBaseline,
    Toy2DConfig,
    build_flow,
    get_dataset,
    heldout_nll,
    train_flow,
)

MARGIN = 0.3  # nats per point the flows must gain over the single Gaussian


@pytest.mark.parametrize("family", ["maf", "realnvp"])
def test_flow_beats_fitted_gaussian_on_two_moons(family: str) -> None:
    data = get_dataset("moons")
    test = data.sample(4000, torch.Generator().manual_seed(1))
    gaussian = heldout_nll(GaussianBaseline(data.sample(20_000, torch.Generator().manual_seed(2))), test)
    flow = build_flow(family, hidden_features=32)
    losses = train_flow(
        flow, data.sample, 400, batch_size=256, lr=3e-3, generator=torch.Generator().manual_seed(3)
    )
    nll = heldout_nll(flow, test)
    assert losses[-1] < losses[0]
    assert nll <= gaussian - MARGIN, f"{family}: held-out NLL {nll:.3f} vs Gaussian {gaussian:.3f}"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_samplers_are_seeded_and_shaped(name: str) -> None:
    data = get_dataset(name)
    a = data.sample(500, torch.Generator().manual_seed(0))
    b = data.sample(500, torch.Generator().manual_seed(0))
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    assert a.abs().max() < 6
    if data.log_prob is not None:  # the true density is positive on its own samples
        assert torch.isfinite(data.log_prob(a)).all()


def test_true_densities_integrate_to_one() -> None:
    axis = torch.linspace(-6, 6, 601)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    cell = float(axis[1] - axis[0]) ** 2
    for name in ("checkerboard", "8gaussians"):
        mass = float(get_dataset(name).log_prob(grid).exp().sum()) * cell  # type: ignore[misc]
        assert math.isclose(mass, 1.0, abs_tol=0.02), (name, mass)


def test_gaussian_baseline_recovers_a_gaussian() -> None:
    g = torch.Generator().manual_seed(0)
    chol = torch.tensor([[1.5, 0.0], [0.8, 0.5]])
    x = torch.randn(50_000, 2, generator=g) @ chol.T + torch.tensor([1.0, -2.0])
    fit = GaussianBaseline(x)
    assert torch.allclose(fit.cov.float(), chol @ chol.T, atol=0.05)
    entropy = 1 + math.log(2 * math.pi) + 0.5 * math.log(float(torch.det(chol @ chol.T)))
    assert math.isclose(heldout_nll(fit, x), entropy, abs_tol=0.02)


def test_every_family_builds_and_scores() -> None:
    x = get_dataset("8gaussians").sample(64, torch.Generator().manual_seed(0))
    for family in FAMILIES:
        flow = build_flow(family, hidden_features=8)
        with torch.no_grad():
            logp = flow.log_prob(x)
        assert logp.shape == (64,) and torch.isfinite(logp).all(), family


def test_bad_names_raise_value_error() -> None:
    with pytest.raises(ValueError, match="family"):
        build_flow("radial")
    with pytest.raises(ValueError, match="data set"):
        get_dataset("spirals")
    with pytest.raises(ValueError, match="families"):
        Toy2DConfig(families=["bogus"])
    with pytest.raises(ValueError, match="family_steps"):
        Toy2DConfig(family_steps={"cnf": 0})


def test_cli_writes_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    rc = main(
        [
            "toy2d",
            "--families",
            "maf",
            "nice",
            "--datasets",
            "moons",
            "--steps",
            "5",
            "--set",
            "test_size=200",
            "--set",
            "grid_size=20",
            "--set",
            "gaussian_fit_size=1000",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    text = (out / "results.md").read_text()
    assert "| MAF |" in text and "| NICE |" in text and "single Gaussian" in text
    assert "waveflow toy2d --families maf nice --datasets moons --steps 5" in text
    assert (out / "densities.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["toy2d", "--families", "nope", "-o", str(out)]) == 2

"""Toy 2-D density estimation: data sets, one builder per flow family, training, NLL, plots.

Audio-agnostic (imports only :mod:`waveflow_py.flows` and :mod:`waveflow_py.config`); the
``waveflow toy2d`` command and ``recipes/toy2d`` run it. Shows that every flow family learns:
each must beat a fitted single Gaussian in held-out NLL.
"""

from waveflow_py.toy2d.data import DATASETS, ToyDataset, get_dataset
from waveflow_py.toy2d.families import FAMILIES, FAMILY_TITLES, build_flow
from waveflow_py.toy2d.report import plot_densities, results_table, write_results
from waveflow_py.toy2d.train import (
    GaussianBaseline,
    Toy2DConfig,
    ToyResult,
    heldout_nll,
    run_toy2d,
    train_flow,
)

__all__ = [
    "DATASETS",
    "ToyDataset",
    "get_dataset",
    "FAMILIES",
    "FAMILY_TITLES",
    "build_flow",
    "Toy2DConfig",
    "ToyResult",
    "GaussianBaseline",
    "train_flow",
    "heldout_nll",
    "run_toy2d",
    "results_table",
    "write_results",
    "plot_densities",
]

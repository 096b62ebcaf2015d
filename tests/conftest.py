"""Shared test setup: deterministic, single-threaded torch (CI has 2 cores), no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> object:
    """``dtype="auto"`` measurements go to a temporary cache, never the user's (measured once per run)."""
    old = os.environ.get("WAVEFLOW_CACHE_DIR")
    os.environ["WAVEFLOW_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("WAVEFLOW_CACHE_DIR", None)
    else:
        os.environ["WAVEFLOW_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(int(os.environ.get("WAVEFLOW_TEST_THREADS", "1")))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared speech data not found at {SHARED_DATA}")
    return SHARED_DATA

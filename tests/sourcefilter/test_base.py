"""The shared base of the source-filter flows (waveflow_py.sourcefilter.base): the backend rule both
filters follow, the compiled-loop call, and one compilation per loop."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.sourcefilter import base
from waveflow_py.sourcefilter.base import check_backend, compiled, pick_backend, run_compiled
from waveflow_py.sourcefilter.lpc import _allpole_loop

needs_numba = pytest.mark.skipif(not base.numba_available(), reason="numba not installed")


def test_backend_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(1, 4)
    leaf = torch.zeros(1, 4, requires_grad=True)
    with pytest.raises(
        ValueError, match=r"backend: expected one of \('auto', 'numba', 'torch'\), got 'cuda'"
    ):
        check_backend("cuda")
    assert pick_backend("torch", x, (x,)) == "torch"
    assert pick_backend("auto", x, (leaf,)) == "torch"  # autograd needed
    with torch.no_grad():
        assert pick_backend("auto", x, (leaf,)) == ("numba" if base.numba_available() else "torch")
    with pytest.raises(ValueError, match="backend 'numba' does not support autograd"):
        pick_backend("numba", x, (leaf,))
    monkeypatch.setattr(base, "numba_available", lambda: False)
    assert pick_backend("auto", x, (x,)) == "torch"


@needs_numba
def test_run_compiled_copies_in_and_out() -> None:
    """The all-pole loop of order 1 through the shared call: ``out[n] = g e[n] + a out[n - 1]``."""
    e = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    a = torch.tensor([[[0.5]], [[-0.25]]], dtype=torch.float64)  # (B, F, p): one segment of 3 samples
    gain = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    state = torch.tensor([[1.0], [-1.0]])
    out, new_state = run_compiled(_allpole_loop, e, state, a, gain, 3)
    want, prev = torch.empty_like(e), state[:, 0]
    for n in range(3):
        prev = gain[:, 0].float() * e[:, n] + a[:, 0, 0].float() * prev
        want[:, n] = prev
    torch.testing.assert_close(out, want)
    assert out.dtype == new_state.dtype == torch.float32
    torch.testing.assert_close(new_state, want[:, -1:])
    torch.testing.assert_close(state, torch.tensor([[1.0], [-1.0]]))  # the caller's state is not written
    assert compiled(_allpole_loop) is compiled(_allpole_loop)  # compiled once per process

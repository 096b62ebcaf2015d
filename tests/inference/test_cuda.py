"""GPU fast path: CPU fallback equals the cached inverse; on CUDA (when present) graph == eager."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.inference.cuda import CudaGraphInverse, fast_inverse
from waveflow_py.inference.synthesis import run_inverse


def test_fast_inverse_falls_back_to_cached_inverse_on_cpu(tiny_model) -> None:
    mel, z = torch.randn(2, 6, 5), torch.randn(2, 5 * tiny_model.hop_length)
    torch.testing.assert_close(fast_inverse(tiny_model, z, mel), run_inverse(tiny_model, z, mel))
    with pytest.raises(ValueError, match="CUDA"):
        CudaGraphInverse(tiny_model, 2, 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: graph capture not testable")
def test_cuda_graph_replay_equals_eager(tiny_model) -> None:
    model = tiny_model.cuda()
    mel, z = torch.randn(2, 6, 5, device="cuda"), torch.randn(2, 5 * model.hop_length, device="cuda")
    graphed = CudaGraphInverse(model, 2, 5)
    eager = run_inverse(model, z, mel)
    torch.testing.assert_close(graphed(z, mel), eager, atol=1e-5, rtol=1e-5)
    z2 = torch.randn_like(z)
    torch.testing.assert_close(graphed(z2, mel), run_inverse(model, z2, mel), atol=1e-5, rtol=1e-5)

"""GPU fast path: the CPU fallback equals the plain inverse and inverts the forward; on CUDA (when
present) graph == eager."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.inference.cuda import CudaGraphInverse, fast_inverse
from waveflow_py.inference.synthesis import run_inverse


def test_fast_inverse_on_cpu_equals_the_plain_inverse_and_recovers_audio(tiny_model) -> None:
    hop = tiny_model.hop_length
    gen = torch.Generator().manual_seed(0)
    mel, audio = torch.randn(2, 6, 5, generator=gen), 0.3 * torch.randn(2, 5 * hop, generator=gen)
    with torch.no_grad():
        z, _ = tiny_model(audio, mel)
        plain, _ = tiny_model.inverse(z, mel)  # the reference inverse, no cache
    fast = fast_inverse(tiny_model, z, mel)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, audio, atol=1e-4, rtol=1e-4)  # z = model(audio) inverts back
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

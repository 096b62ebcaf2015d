"""GPU fast path: the model's cached inverse captured once in a CUDA graph and replayed.

WaveFlow's cached inverse (:class:`~waveflow_py.flows.causal.RowCache`) runs ``h`` rows x ``n_flows``
flows x ``n_layers`` layers of small kernels; on a GPU their launch overhead, not arithmetic, dominates
at batch 1. :class:`CudaGraphInverse` captures the **same** ``model.inverse(z, mel, cache=...)`` (no
third code path) for one input shape with ``torch.cuda.CUDAGraph`` and replays it: one launch for the
whole synthesis. Inputs are copied into static buffers; the result is copied out. The graph holds the
first synthesis stage (``model.inverse_excitation``, the flows); the envelope stage
(``model.envelope_synthesis``, a recursive filter, identity without an envelope) then runs eagerly over
each item's whole excitation, so the result equals ``model.inverse``.

Capture needs the inverse to be free of host synchronisation (no ``.item()``/``bool(tensor)``, no
host-to-device copies of pageable memory). If capture fails, :class:`CudaGraphInverse` logs why and
runs the inverse eagerly, so the fast path never breaks synthesis. :func:`fast_inverse` picks the best
available path: CUDA -> graph (cached per shape and dtype), otherwise the plain cached inverse.

Fused element-wise kernels for the row step live in :mod:`waveflow_py.inference.triton_kernels`
(selected by :func:`~waveflow_py.inference.ops.select_gate_ops`). ``waveflow bench`` measures their speed
where CUDA exists (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from waveflow_py.inference.core import model_param, new_cache, run_envelope
from waveflow_py.sampling import SamplingConfig

__all__ = ["CudaGraphInverse", "fast_inverse"]

log = logging.getLogger(__name__)


class CudaGraphInverse:
    """``model.inverse(z, mel, cache=new_cache(model, dtype))`` for ``z (batch, samples)`` and
    ``mel (batch, n_mels, frames)`` on a CUDA device, its flows captured in a graph (the envelope stage
    runs after the replay); call it with tensors of exactly those shapes.

    ``graphed`` tells whether capture succeeded (otherwise calls run eagerly, same results).
    Weights are read when the graph is captured: after changing them, build a new instance.
    """

    def __init__(
        self, model: nn.Module, batch: int, frames: int, *, dtype: torch.dtype | None = None, warmup: int = 2
    ) -> None:
        p = next(model.parameters())
        if p.device.type != "cuda":
            raise ValueError(f"CudaGraphInverse: expected a model on a CUDA device, got {p.device}")
        self.model, self.dtype = model, dtype
        n_mels = model.config.mel.n_mels
        self.z = torch.zeros(batch, frames * int(model.hop_length), device=p.device, dtype=p.dtype)
        self.mel = torch.zeros(batch, n_mels, frames, device=p.device, dtype=p.dtype)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: Tensor | None = None
        try:
            self._capture(warmup)
        except RuntimeError as e:  # capture-unsafe op in the inverse: fall back to eager
            log.warning("CUDA graph capture failed, running eagerly: %s", str(e).splitlines()[0])
            self.graph, self.out = None, None
            torch.cuda.synchronize(p.device)

    @property
    def graphed(self) -> bool:
        return self.graph is not None

    def _run(self) -> Tensor:
        with torch.no_grad():
            excitation, _ = self.model.inverse_excitation(
                self.z, self.mel, cache=new_cache(self.model, self.dtype)
            )
        return excitation

    def _capture(self, warmup: int) -> None:
        side = torch.cuda.Stream(device=self.z.device)
        side.wait_stream(torch.cuda.current_stream(self.z.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (allocator, cuBLAS handles, kernels)
            for _ in range(max(1, warmup)):
                self._run()
        torch.cuda.current_stream(self.z.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._run()
        self.graph, self.out = graph, out

    def __call__(self, z: Tensor, mel: Tensor, sampling: SamplingConfig | None = None) -> Tensor:
        """Audio ``(batch, samples)`` (a fresh tensor) for noise ``z`` and ``mel`` of the captured shapes
        (``sampling``: the envelope stage's settings, ``None``: the model's)."""
        if tuple(z.shape) != tuple(self.z.shape) or tuple(mel.shape) != tuple(self.mel.shape):
            raise ValueError(
                f"CudaGraphInverse: captured for z {tuple(self.z.shape)} and mel {tuple(self.mel.shape)}, "
                f"got {tuple(z.shape)} and {tuple(mel.shape)}"
            )
        self.z.copy_(z)
        self.mel.copy_(mel)
        if self.graph is None:
            excitation = self._run()
        else:
            self.graph.replay()
            assert self.out is not None
            excitation = self.out.clone()  # the graph's static output is overwritten by the next replay
        return run_envelope(self.model, excitation, self.mel, sampling=sampling)[0]


def fast_inverse(
    model: nn.Module,
    z: Tensor,
    mel: Tensor,
    *,
    dtype: torch.dtype | None = None,
    graphs: dict[tuple, CudaGraphInverse] | None = None,
    sampling: SamplingConfig | None = None,
) -> Tensor:
    """The fastest available inverse: on CUDA a (per-shape cached in ``graphs``) :class:`CudaGraphInverse`,
    elsewhere the plain cached inverse (:func:`~waveflow_py.inference.core.run_inverse`). Returns float32
    audio ``(B, T)``, equal to ``model.inverse(z, mel, sampling=sampling)``."""
    from waveflow_py.inference.core import run_inverse

    p = model_param(model)
    z, mel = z.to(p.device, p.dtype), mel.to(p.device, p.dtype)
    if p.device.type != "cuda":
        return run_inverse(model, z, mel, cached=True, dtype=dtype, sampling=sampling)
    hop = int(model.hop_length)
    if z.shape[1] != mel.shape[-1] * hop:
        raise ValueError(f"fast_inverse: expected z of {mel.shape[-1] * hop} samples, got {tuple(z.shape)}")
    key = (z.shape[0], mel.shape[-1], dtype)
    graphs = {} if graphs is None else graphs
    if key not in graphs:
        graphs[key] = CudaGraphInverse(model, z.shape[0], mel.shape[-1], dtype=dtype)
    return graphs[key](z, mel, sampling)

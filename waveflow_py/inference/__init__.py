"""Fast synthesis around the models: batched exact synthesis, streaming, low-precision error, the GPU
fast path (CUDA graphs + fused Triton kernels, with plain PyTorch fallbacks), the denoiser and the mel
projection.

Heavy or optional pieces (``bench``, ``triton_kernels``) are imported from their modules on demand.
"""

from waveflow_py.inference.core import DEFAULT_TEMPERATURE, draw_noise
from waveflow_py.inference.cuda import CudaGraphInverse, fast_inverse
from waveflow_py.inference.denoiser import Denoiser
from waveflow_py.inference.ops import TorchGateOps, select_gate_ops
from waveflow_py.inference.precision import precision_error
from waveflow_py.inference.projection import project_to_mel
from waveflow_py.inference.receptive import context_frames, receptive_field
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.inference.synthesis import DEFAULT_MAX_FRAMES, new_cache, run_inverse, synthesize
from waveflow_py.sampling import SamplingConfig, resolve_sampling

__all__ = [
    "synthesize",
    "SamplingConfig",
    "resolve_sampling",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_MAX_FRAMES",
    "draw_noise",
    "run_inverse",
    "new_cache",
    "StreamingSynthesizer",
    "precision_error",
    "receptive_field",
    "context_frames",
    "CudaGraphInverse",
    "fast_inverse",
    "TorchGateOps",
    "select_gate_ops",
    "Denoiser",
    "project_to_mel",
]

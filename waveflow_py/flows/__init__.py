"""Audio-agnostic normalizing-flow library. One contract for every transform:

``forward(x, context=None) -> (y, logabsdet)``, ``inverse(y, context=None) -> (x, logabsdet)``,
``logabsdet`` of shape ``(batch,)``.
"""

from waveflow_py.flows.base import (
    Composite,
    Flow,
    Inverse,
    InverseNotAvailable,
    Transform,
    check_context,
    check_tensor,
    sum_except_batch,
)
from waveflow_py.flows.distributions import StandardNormal

__all__ = [
    "Transform",
    "Composite",
    "Inverse",
    "Flow",
    "InverseNotAvailable",
    "StandardNormal",
    "check_tensor",
    "check_context",
    "sum_except_batch",
]

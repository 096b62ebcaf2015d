"""Say exactly how a set of tensors fails to fit a module (for checkpoints and releases)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

__all__ = ["describe_mismatch"]


def describe_mismatch(
    expected: Mapping[str, Tensor], given: Mapping[str, Tensor], source: str = "weights", limit: int = 8
) -> str | None:
    """``None`` if ``given`` has exactly ``expected``'s keys and shapes, else a message naming every
    shape mismatch (tensor, both shapes) and the missing and unexpected keys (at most ``limit`` each)."""

    def more(items: list[str]) -> str:
        return " ..." if len(items) > limit else ""

    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f"{k}: {source} {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if shapes:
        parts.append("shape mismatch: " + "; ".join(shapes[:limit]) + more(shapes))
    if missing:
        parts.append(f"missing keys {missing[:limit]}{more(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:limit]}{more(unexpected)}")
    return "; ".join(parts) or None

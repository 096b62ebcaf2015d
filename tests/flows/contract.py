"""Reusable checks of the flow contract (plain helpers, importable by any test).

``from tests.flows.contract import check_invertible, check_logdet_jacobian, ...``. Every helper
takes a transform ``t``, an input batch ``x`` and an optional ``context`` and asserts one property:

* :func:`check_invertible`: ``inverse(forward(x)) == x`` and the two logabsdets cancel;
* :func:`check_logdet_jacobian`: logabsdet equals ``log|det J|`` of the autograd Jacobian (both
  directions), one batch element at a time; run it in float64 on small inputs;
* :func:`check_gradients`: every parameter gets a non-zero gradient (call :func:`perturb_parameters`
  first so zero-initialised last layers do not hide the rest);
* :func:`check_state_dict_roundtrip`: a fresh instance loaded (through safetensors) gives the same
  outputs in both directions;
* :func:`check_bad_inputs`: NaN, wrong size, wrong rank, a missing / unexpected / wrong-batch
  context raise ``ValueError``.

:func:`contract_suite` turns a table of :class:`Case` into the parametrized tests of all five, so every
package's transforms run the one suite (``tests/flows/test_contract.py``,
``tests/sourcefilter/test_contract.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

__all__ = [
    "Case",
    "contract_suite",
    "check_bad_inputs",
    "check_gradients",
    "check_invertible",
    "check_logdet_jacobian",
    "check_state_dict_roundtrip",
    "perturb_parameters",
    "to_double",
]


def to_double(t: nn.Module, *tensors: Tensor | None) -> tuple:
    """A float64 deep copy of ``t`` and of each tensor (``None`` stays ``None``)."""
    return (copy.deepcopy(t).double(), *[None if a is None else a.double() for a in tensors])


@torch.no_grad()
def perturb_parameters(t: nn.Module, std: float = 0.2, seed: int = 1234) -> None:
    """Add ``N(0, std^2)`` noise to every floating parameter (deterministic given ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    for p in t.parameters():
        if p.is_floating_point():
            p.add_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device))


def _run(t: nn.Module, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
    return t.inverse(x, context) if inverse else t(x, context)


def check_invertible(
    t: nn.Module, x: Tensor, context: Tensor | None = None, *, atol: float = 1e-4
) -> tuple[Tensor, Tensor]:
    """Assert ``inverse(forward(x)) == x`` (and ``forward(inverse(x)) == x``), logdets of shape
    ``(B,)`` that cancel; returns ``forward``'s ``(y, logabsdet)``."""
    y, ld = t(x, context)
    assert y.shape == x.shape, f"forward changed the shape {tuple(x.shape)} -> {tuple(y.shape)}"
    assert ld.shape == (x.shape[0],), f"logabsdet shape {tuple(ld.shape)} != ({x.shape[0]},)"
    assert torch.isfinite(y).all() and torch.isfinite(ld).all()
    x_back, ld_inv = t.inverse(y, context)
    assert ld_inv.shape == (x.shape[0],)
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=atol, rtol=0)
    # the other way round: inverse first
    x2, ld2 = t.inverse(x, context)
    y2, ld2_fwd = t(x2, context)
    torch.testing.assert_close(y2, x, atol=atol, rtol=0)
    torch.testing.assert_close(ld2 + ld2_fwd, torch.zeros_like(ld2), atol=atol, rtol=0)
    return y, ld


def _jacobian_logdet(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    jac = torch.autograd.functional.jacobian(fn, x)
    n = x.numel()
    return torch.linalg.slogdet(jac.reshape(n, n))[1]


def check_logdet_jacobian(
    t: nn.Module,
    x: Tensor,
    context: Tensor | None = None,
    *,
    atol: float = 1e-6,
    directions: Sequence[str] = ("forward", "inverse"),
) -> None:
    """Assert logabsdet == log|det d out / d in| from autograd, per batch element, per direction.

    Use float64 (see :func:`to_double`) and small inputs: the Jacobian is ``numel x numel``.
    """
    for direction in directions:
        inverse = direction == "inverse"
        _, ld = _run(t, x, context, inverse)
        for i in range(x.shape[0]):
            ctx = None if context is None else context[i : i + 1]

            def fn(xi: Tensor, ctx: Tensor | None = ctx, inverse: bool = inverse) -> Tensor:
                return _run(t, xi.unsqueeze(0), ctx, inverse)[0].reshape(-1)

            expected = _jacobian_logdet(fn, x[i])
            torch.testing.assert_close(
                ld[i], expected, atol=atol, rtol=0, msg=lambda m, d=direction, i=i: f"{d}[{i}]: {m}"
            )


def check_gradients(
    t: nn.Module,
    x: Tensor,
    context: Tensor | None = None,
    *,
    directions: Sequence[str] = ("forward", "inverse"),
) -> None:
    """Assert every parameter (and the input) gets a finite, non-zero gradient from a loss on
    ``(out, logabsdet)``."""
    for direction in directions:
        t.zero_grad(set_to_none=True)
        x_in = x.detach().clone().requires_grad_(True)
        out, ld = _run(t, x_in, context, direction == "inverse")
        (0.5 * out.pow(2).sum() - ld.sum()).backward()
        assert x_in.grad is not None and bool(x_in.grad.abs().sum() > 0), f"{direction}: no input gradient"
        missing = [
            name
            for name, p in t.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
        ]
        assert not missing, f"{direction}: no gradient reached {missing}"
        for name, p in t.named_parameters():
            assert torch.isfinite(p.grad).all(), f"{direction}: non-finite gradient in {name}"
    t.zero_grad(set_to_none=True)


def check_state_dict_roundtrip(
    factory: Callable[[], nn.Module], t: nn.Module, x: Tensor, context: Tensor | None = None
) -> None:
    """A fresh ``factory()`` loaded with ``t``'s state (saved and read back with safetensors, as
    releases are) gives the same outputs as ``t`` in both directions."""
    state = {k: v.contiguous() for k, v in t.state_dict().items()}
    fresh = factory().to(dtype=x.dtype)
    fresh.load_state_dict(st_load(st_save(state)))
    for inverse in (False, True):
        want = _run(t, x, context, inverse)
        got = _run(fresh, x, context, inverse)
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])


def check_bad_inputs(
    t: nn.Module,
    x: Tensor,
    context: Tensor | None = None,
    *,
    feature_dim: int = 1,
    context_features: int = 2,
    vector_only: bool = False,
) -> None:
    """Assert ``ValueError`` for bad inputs, in both directions.

    ``feature_dim``: the dimension whose size the transform checks; ``context_features``: width of
    the unexpected context offered to an unconditional transform; ``vector_only``: the transform
    takes ``(B, D)`` only, so ``(B, D, 1)`` must be refused too.
    """
    bad_inputs = {
        "NaN": x.clone().index_put_((torch.tensor(0),), torch.tensor(float("nan"), dtype=x.dtype)),
        "wrong size": torch.cat([x, x.narrow(feature_dim, 0, 1)], dim=feature_dim),
        "rank": x[0],
    }
    if vector_only:
        bad_inputs["rank 3"] = x.unsqueeze(-1)
    for method in (t.forward, t.inverse):
        for what, bad in bad_inputs.items():
            with pytest.raises(ValueError):
                method(bad, context)
                pytest.fail(f"{method.__name__} accepted input with {what}")
        if context is None:
            with pytest.raises(ValueError):
                method(x, torch.zeros(x.shape[0], context_features, dtype=x.dtype))
        else:
            with pytest.raises(ValueError):
                method(x, None)
            if x.shape[0] > 1:
                with pytest.raises(ValueError):
                    method(x, context[:1])
            with pytest.raises(ValueError):
                method(x, context.clone().fill_(float("nan")))


@dataclass(frozen=True)
class Case:
    """One transform of the contract suite: how to build it and the shapes it takes."""

    factory: Callable[[], nn.Module]
    shape: tuple[int, ...]
    context: tuple[int, ...] | None = None
    feature_dim: int = 1
    vector_only: bool = False
    context_scale: float = 1.0  # the random context is N(0, context_scale^2) (LPC: keep filters stable)
    any_length: bool = False  # every length is valid (no "wrong size" input to refuse)


def _build(case: Case, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Tensor, Tensor | None]:
    """The transform (float32 unless asked), warmed up on the batch (ActNorm's data-dependent init) and
    with every parameter perturbed (zero-initialised output layers would make it the identity)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(case.shape, generator=gen).to(dtype)
    ctx = None
    if case.context is not None:
        ctx = case.context_scale * torch.randn(case.context, generator=gen).to(dtype)
    t = case.factory().to(dtype)
    with torch.no_grad():
        t(x, ctx)
    perturb_parameters(t, std=0.2)
    return t, x, ctx


def contract_suite(cases: dict[str, Case], identity_ok: tuple[str, ...] = ()) -> tuple[Callable, ...]:
    """The five contract tests over ``cases`` (assign them to ``test_*`` names of a test module).
    ``identity_ok``: name prefixes of cases that may map the test batch to itself (permutations)."""
    names = pytest.mark.parametrize("name", list(cases))

    @names
    def test_invertible_float32(name: str) -> None:
        t, x, ctx = _build(cases[name])
        y, _ = check_invertible(t, x, ctx, atol=1e-4)
        if not name.startswith(identity_ok):
            assert not torch.allclose(y, x, atol=1e-3), "the perturbed transform should not be the identity"

    @names
    def test_logdet_matches_autograd_jacobian_float64(name: str) -> None:
        t, x, ctx = _build(cases[name])
        t64, x64, ctx64 = to_double(t, x, ctx)
        check_logdet_jacobian(t64, x64[:2], None if ctx64 is None else ctx64[:2], atol=1e-7)

    @names
    def test_gradients_reach_every_parameter(name: str) -> None:
        t, x, ctx = _build(cases[name], torch.float64)
        check_gradients(t, x, ctx)

    @names
    def test_state_dict_roundtrip(name: str) -> None:
        t, x, ctx = _build(cases[name])
        check_state_dict_roundtrip(cases[name].factory, t, x, ctx)

    @names
    def test_bad_inputs_raise_value_error(name: str) -> None:
        case = cases[name]
        if case.any_length:
            pytest.skip("every length is valid; its other bad inputs are tested beside the transform")
        t, x, ctx = _build(case)
        check_bad_inputs(t, x, ctx, feature_dim=case.feature_dim, vector_only=case.vector_only)

    return (
        test_invertible_float32,
        test_logdet_matches_autograd_jacobian_float64,
        test_gradients_reach_every_parameter,
        test_state_dict_roundtrip,
        test_bad_inputs_raise_value_error,
    )

"""Coupling layers: NICE's additive coupling and RealNVP's affine coupling, one implementation.

A mask splits the input into an *identity* part ``x_a`` (copied) and a *transformed* part ``x_b``;
a conditioner network sees ``x_a`` (and an optional context) and outputs the parameters that act on
``x_b`` elementwise (Dinh et al. 2014, "NICE"; Dinh et al. 2017, "Density estimation using Real
NVP"). Two mask kinds cover every shape:

* **feature / channel masks** (a boolean vector over dimension 1: ``"alternating"``, ``"half"`` or an
  explicit tensor). The conditioner gets ``x[:, identity]`` of shape ``(B, C_a, ...)`` and must return
  ``(B, k * C_b, ...)``. This serves vectors ``(B, D)``, channel halves of audio ``(B, C, T)``
  (WaveGlow) and channel masks of images ``(B, C, H, W)``.
* **spatial masks** (``"checkerboard"`` or an explicit ``(H, W)`` tensor) for ``(B, C, H, W)``:
  the conditioner gets ``x * mask`` of shape ``(B, C, H, W)`` and returns ``(B, k * C, H, W)``.

The conditioner output is ``k`` chunks along dimension 1: ``shift`` (additive) or ``(shift,
raw_scale)`` (affine). It is called as ``conditioner(x_a)`` or, for a conditional layer,
``conditioner(x_a, context)`` -- the context (e.g. an upsampled mel ``(B, n_mels, T)``) is passed
through untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from waveflow_py.flows.base import Transform, check_context, check_tensor, sum_except_batch
from waveflow_py.flows.nets import MLP, ConvNet2d

__all__ = [
    "AdditiveCoupling",
    "AffineCoupling",
    "Coupling",
    "DiagonalScaling",
    "SCALE_FUNCTIONS",
    "checkerboard_mask",
    "feature_mask",
    "log_scale_from_raw",
]

SCALE_FUNCTIONS = ("tanh", "exp", "sigmoid")


def log_scale_from_raw(raw: Tensor, kind: str = "tanh", bound: float = 3.0) -> Tensor:
    """Map an unconstrained network output to a log-scale.

    * ``"tanh"`` (default): ``bound * tanh(raw / bound)``, a soft clamp of the log-scale to
      ``(-bound, bound)``; the identity near 0, so a zero-initialised net gives scale 1.
    * ``"exp"``: ``raw`` itself (scale ``exp(raw)``, unbounded; WaveGlow's original choice).
    * ``"sigmoid"``: ``log sigmoid(raw + 2)`` (Glow), scale in ``(0, 1)``, 0.88 at ``raw = 0``.
    """
    if kind == "tanh":
        return bound * torch.tanh(raw / bound)
    if kind == "exp":
        return raw
    if kind == "sigmoid":
        return F.logsigmoid(raw + 2.0)
    raise ValueError(f"scale must be one of {SCALE_FUNCTIONS}, got {kind!r}")


def feature_mask(features: int, kind: str = "alternating", parity: bool = False) -> Tensor:
    """Boolean mask over ``features`` (True = identity part).

    ``"alternating"``: even indices are identity; ``"half"``: the first ``features // 2`` are
    identity (WaveGlow's channel halves). ``parity=True`` swaps the roles.
    """
    if kind == "alternating":
        mask = torch.arange(features) % 2 == 0
    elif kind == "half":
        mask = torch.arange(features) < features // 2
    else:
        raise ValueError(f"feature mask kind must be 'alternating' or 'half', got {kind!r}")
    return ~mask if parity else mask


def checkerboard_mask(height: int, width: int, parity: bool = False) -> Tensor:
    """Boolean ``(height, width)`` checkerboard (True = identity part), RealNVP's spatial mask."""
    i = torch.arange(height).unsqueeze(1)
    j = torch.arange(width).unsqueeze(0)
    mask = (i + j) % 2 == 0
    return ~mask if parity else mask


class Coupling(Transform):
    """Shared machinery of coupling layers; subclasses define the elementwise map.

    Args:
        features: size of dimension 1 (vector features or channels).
        conditioner: ``nn.Module`` called as ``net(x_a)`` / ``net(x_a, context)``; when ``None`` a
            zero-initialised :class:`~waveflow_py.flows.nets.MLP` (feature masks, inputs ``(B, D)``)
            or :class:`~waveflow_py.flows.nets.ConvNet2d` (checkerboard) is built.
        mask: ``"alternating"``, ``"half"``, ``"checkerboard"``, a bool tensor ``(features,)`` or
            ``(H, W)`` (True = identity part).
        parity: swap the identity and transformed parts of a named mask.
        hidden_features, num_layers: size of the default conditioner.
        context_features: context size for the default conditioner (makes the layer conditional).
        conditional: whether the layer takes a context (default: ``context_features is not None``);
            set it to ``True`` with a conditioner that takes ``(x_a, context)``.
    """

    params_per_feature: int = 1

    def __init__(
        self,
        features: int,
        conditioner: nn.Module | None = None,
        *,
        mask: str | Tensor = "alternating",
        parity: bool = False,
        hidden_features: int = 64,
        num_layers: int = 2,
        context_features: int | None = None,
        conditional: bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"features must be a positive int, got {features!r}")
        self.features = features
        self.parity = bool(parity)
        self.conditional = (context_features is not None) if conditional is None else bool(conditional)
        self.accepts_context = self.conditional
        k = self.params_per_feature
        self.spatial = isinstance(mask, str) and mask == "checkerboard"
        self._block: str | None = None
        self.register_buffer("spatial_mask", None)
        if isinstance(mask, Tensor) and mask.dim() == 2:
            self.spatial = True
            self.register_buffer("spatial_mask", mask.to(torch.bool).clone())
        if self.spatial:
            self._ndims: tuple[int, ...] = (4,)
            if conditioner is None:
                conditioner = ConvNet2d(
                    features, k * features, hidden_features, num_layers, context_channels=context_features
                )
        else:
            vec = feature_mask(features, mask, parity) if isinstance(mask, str) else mask.to(torch.bool)
            if vec.shape != (features,):
                raise ValueError(f"mask: expected shape ({features},) or (H, W), got {tuple(vec.shape)}")
            identity, transformed = vec.nonzero().flatten(), (~vec).nonzero().flatten()
            if identity.numel() == 0 or transformed.numel() == 0:
                raise ValueError(
                    f"mask must leave both parts non-empty, got {identity.numel()} identity and "
                    f"{transformed.numel()} transformed features"
                )
            self.register_buffer("identity_idx", identity)
            self.register_buffer("transformed_idx", transformed)
            self.register_buffer("merge_idx", torch.argsort(torch.cat([identity, transformed])))
            # contiguous halves (WaveGlow's channel split) use views instead of gathers
            n_a = identity.numel()
            self._block = (
                "prefix"
                if identity.tolist() == list(range(n_a))
                else "suffix"
                if identity.tolist() == list(range(features - n_a, features))
                else None
            )
            self._ndims = (2, 3, 4)
            if conditioner is None:
                self._ndims = (2,)
                conditioner = MLP(
                    identity.numel(),
                    k * transformed.numel(),
                    hidden_features,
                    num_layers,
                    context_features=context_features,
                )
        self.conditioner = conditioner

    # -- elementwise map, defined by subclasses -------------------------------------------------
    def _map(self, x: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _unmap(self, y: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    # -- shared plumbing ------------------------------------------------------------------------
    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        check_tensor(x, name=name, ndims=self._ndims, dim_sizes={1: self.features})
        check_context(context, expected=self.conditional, batch=x.shape[0])

    def _params(self, x_a: Tensor, context: Tensor | None, channels: int) -> list[Tensor]:
        out = self.conditioner(x_a) if context is None else self.conditioner(x_a, context)
        k = self.params_per_feature
        want = (x_a.shape[0], k * channels, *x_a.shape[2:])
        if tuple(out.shape) != want:
            raise ValueError(f"conditioner output: expected shape {want}, got {tuple(out.shape)}")
        return list(out.chunk(k, dim=1))

    def _mask_for(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if self.spatial_mask is None:
            return checkerboard_mask(h, w, self.parity).to(x.device)
        if tuple(self.spatial_mask.shape) != (h, w):
            raise ValueError(
                f"input: expected spatial size {tuple(self.spatial_mask.shape)}, got {tuple(x.shape)}"
            )
        return self.spatial_mask

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        fn = self._unmap if inverse else self._map
        if self.spatial:
            keep = self._mask_for(x)
            params = self._params(x * keep.to(x.dtype), context, self.features)
            y, ld = fn(x, params)
            y = torch.where(keep, x, y)
            if ld is None:
                return y, x.new_zeros(x.shape[0])
            return y, sum_except_batch(ld.masked_fill(keep, 0.0))
        n_a = self.identity_idx.numel()
        if self._block == "prefix":
            x_a, x_b = x.narrow(1, 0, n_a), x.narrow(1, n_a, self.features - n_a)
        elif self._block == "suffix":
            x_b, x_a = x.narrow(1, 0, self.features - n_a), x.narrow(1, self.features - n_a, n_a)
        else:
            x_a, x_b = x.index_select(1, self.identity_idx), x.index_select(1, self.transformed_idx)
        y_b, ld = fn(x_b, self._params(x_a, context, x_b.shape[1]))
        if self._block == "prefix":
            y = torch.cat([x_a, y_b], dim=1)
        elif self._block == "suffix":
            y = torch.cat([y_b, x_a], dim=1)
        else:
            y = torch.cat([x_a, y_b], dim=1).index_select(1, self.merge_idx)
        return y, (x.new_zeros(x.shape[0]) if ld is None else sum_except_batch(ld))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x, context, "input")
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y, context, "inverse input")
        return self._couple(y, context, inverse=True)


class AdditiveCoupling(Coupling):
    """NICE additive coupling ``y_b = x_b + t(x_a)``, volume preserving (Dinh et al. 2014).

    Shapes ``(B, D)``, ``(B, C, T)``, ``(B, C, H, W)``; see :class:`Coupling` for the arguments.
    The conditioner returns ``t`` with the shape of ``x_b``. ``logabsdet`` is zero.
    """

    params_per_feature = 1

    def _map(self, x: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        return x + params[0], None

    def _unmap(self, y: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        return y - params[0], None


class AffineCoupling(Coupling):
    """RealNVP affine coupling ``y_b = x_b * exp(log_s(x_a)) + t(x_a)`` (Dinh et al. 2017).

    Shapes ``(B, D)``, ``(B, C, T)``, ``(B, C, H, W)``; see :class:`Coupling` for the arguments.
    The conditioner returns ``(t, raw)`` stacked along dimension 1 (twice the channels of ``x_b``)
    and ``log_s = log_scale_from_raw(raw, scale, scale_bound)``: by default a tanh soft clamp to
    ``(-3, 3)`` (numerically stable, identity at a zero-initialised net); ``scale="exp"`` is
    WaveGlow's unbounded ``exp(raw)``, ``scale="sigmoid"`` Glow's ``sigmoid(raw + 2)``.
    ``logabsdet = sum(log_s)`` over the transformed entries.
    """

    params_per_feature = 2

    def __init__(
        self,
        features: int,
        conditioner: nn.Module | None = None,
        *,
        scale: str = "tanh",
        scale_bound: float = 3.0,
        **kwargs: object,
    ) -> None:
        if scale not in SCALE_FUNCTIONS:
            raise ValueError(f"scale must be one of {SCALE_FUNCTIONS}, got {scale!r}")
        if scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        super().__init__(features, conditioner, **kwargs)  # type: ignore[arg-type]
        self.scale = scale
        self.scale_bound = float(scale_bound)

    def _map(self, x: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        shift, raw = params
        log_s = log_scale_from_raw(raw, self.scale, self.scale_bound)
        return x * torch.exp(log_s) + shift, log_s

    def _unmap(self, y: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        shift, raw = params
        log_s = log_scale_from_raw(raw, self.scale, self.scale_bound)
        return (y - shift) * torch.exp(-log_s), -log_s


class DiagonalScaling(Transform):
    """NICE's diagonal scaling layer ``y = x * exp(log_scale)`` along dimension 1 (Dinh et al. 2014).

    ``log_scale`` has shape ``(features,)`` (initialised to 0); inputs ``(B, features, ...)``;
    ``logabsdet = sum(log_scale) * positions`` where positions is the number of entries per channel.
    """

    accepts_context = False

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.log_scale = nn.Parameter(torch.zeros(features))

    def _run(self, x: Tensor, context: Tensor | None, sign: float, name: str) -> tuple[Tensor, Tensor]:
        check_tensor(x, name=name, ndims=(2, 3, 4), dim_sizes={1: self.features})
        check_context(context, expected=False, batch=x.shape[0])
        ls = sign * self.log_scale.reshape(1, -1, *([1] * (x.dim() - 2)))
        positions = x[0, 0].numel()
        return x * torch.exp(ls), (sign * self.log_scale.sum() * positions) * x.new_ones(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, context, 1.0, "input")

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(y, context, -1.0, "inverse input")
